/* emu/cuda_pipeline_primitives.h — CUDA's pipeline primitives (the asynchronous
 * global-to-shared copies, cp.async on sm_80+) for the CPU emulator, with the semantics
 * the CUDA Programming Guide gives them:
 *   __pipeline_memcpy_async(dst, src, size, zfill)  submits a copy of size − zfill bytes
 *       from global src to shared dst followed by zfill zero bytes (size 4, 8 or 16; both
 *       pointers aligned to it; src is not read when zfill = size);
 *   __pipeline_commit()        closes the thread's submitted copies into a batch;
 *   __pipeline_wait_prior(N)   waits until all but the N most recent batches completed.
 * A copy completes at some moment between its submission and the wait that covers it,
 * and other threads see it only after a barrier that follows that wait. The emulator
 * lands every copy at its submission in schedule A and at the covering wait in schedule B
 * (README.md, "Asynchronous copies"), so that a read before the wait or the barrier, and
 * a copy into a buffer other threads still read, both make the schedules differ. */
#ifndef DATH_EMU_CUDA_PIPELINE_PRIMITIVES_H
#define DATH_EMU_CUDA_PIPELINE_PRIMITIVES_H

#include "cuda_runtime.h"

#ifdef __cplusplus
static inline void __pipeline_memcpy_async(void *dst_shared, const void *src_global,
                                           size_t size_and_align, size_t zfill = 0) {
    ::emu::pipeline_memcpy_async(dst_shared, src_global, size_and_align, zfill);
}
static inline void __pipeline_commit(void) { ::emu::pipeline_commit(); }
static inline void __pipeline_wait_prior(size_t prior) { ::emu::pipeline_wait_prior(prior); }
#endif

#endif
