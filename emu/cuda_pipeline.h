/* emu/cuda_pipeline.h — as CUDA's, the pipeline primitives (cuda_pipeline_primitives.h). */
#ifndef DATH_EMU_CUDA_PIPELINE_H
#define DATH_EMU_CUDA_PIPELINE_H
#include "cuda_pipeline_primitives.h"
#endif
