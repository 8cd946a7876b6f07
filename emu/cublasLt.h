/* emu/cublasLt.h — the cuBLASLt handle dath creates (emu/README.md). No
 * cuBLASLt operation is emulated: dath only creates and destroys the handle. */
#ifndef DATH_EMU_CUBLASLT_H
#define DATH_EMU_CUBLASLT_H

#include "cublas_v2.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct emu_blaslt *cublasLtHandle_t;

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h);
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h);

#ifdef __cplusplus
}
#endif

#endif
