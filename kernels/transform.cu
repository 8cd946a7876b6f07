/* kernels/transform.cu — CUDA twin of kernels/transform.c: the uint8 HWC cached batch
 * (or the rows `index` names of a decoded set in device memory) → cropped, flipped,
 * normalised float NCHW network input, in one pass (contract in transform.h).
 *
 * A thread per output pixel (b, y, x): it reads the three bytes of the source pixel
 * (cx + (flip ? S−1−x : x), cy + y) and writes one float to each of the three channel
 * planes, so the writes of a warp are consecutive floats of a plane. The value of a
 * byte in a channel is a pure function of (byte, channel); each block first fills a
 * 3×256 table of ((v/255) − mean_c) / std_c in shared memory, computed with the
 * reference's operations rounded one at a time, and then looks values up: the output
 * is the reference's bits, without two divisions per element. */
#include "cuda_common.cuh"

extern "C" {
#include "transform.h"
}

enum {
    TRANSFORM_THREADS = 256,
    TRANSFORM_MAX_BLOCKS = 4096   /* grid-stride beyond this: the table is built once a block */
};

/* ImageNet mean and std by value (the header's arrays live in host memory). */
typedef struct transform_norm {
    float mean[3], std[3];
} transform_norm;

static __global__ void __launch_bounds__(TRANSFORM_THREADS)
transform_batch_kernel(float *__restrict__ out, const uint8_t *__restrict__ in,
                       const int32_t *__restrict__ crop,
                       const int32_t *__restrict__ index, int B, int R, int S,
                       transform_norm nrm) {
    __shared__ float lut[3][256];                       /* [channel][byte] */
    for (int t = threadIdx.x; t < 3 * 256; t += blockDim.x) {
        int c = t / 256, v = t % 256;
        float mean = c == 0 ? nrm.mean[0] : c == 1 ? nrm.mean[1] : nrm.mean[2];
        float sd = c == 0 ? nrm.std[0] : c == 1 ? nrm.std[1] : nrm.std[2];
        lut[c][v] = __fdiv_rn(__fsub_rn(__fdiv_rn((float)v, 255.0f), mean), sd);
    }
    __syncthreads();

    const size_t plane = (size_t)S * S;
    const size_t npix = (size_t)B * plane;
    for (size_t idx = blockIdx.x * (size_t)blockDim.x + threadIdx.x; idx < npix;
         idx += (size_t)gridDim.x * blockDim.x) {
        int b = (int)(idx / plane);
        int rem = (int)(idx % plane);
        int y = rem / S, x = rem % S;
        int cx = crop[3 * b + 0], cy = crop[3 * b + 1], flip = crop[3 * b + 2];
        int sx = cx + (flip ? S - 1 - x : x);
        size_t i = index ? (size_t)index[b] : (size_t)b;                  /* source image */
        const uint8_t *px = in + ((i * R + cy + y) * R + sx) * 3;           /* [3] */
        float *o = out + (size_t)b * 3 * plane + rem;                      /* plane 0 */
        o[0] = lut[0][px[0]];
        o[plane] = lut[1][px[1]];
        o[2 * plane] = lut[2][px[2]];
    }
}

extern "C" void transform_batch_cuda(float *out, const uint8_t *in, const int32_t *crop,
                                     const int32_t *index, int B, int R, int S,
                                     dath_ctx *ctx) {
    if (B <= 0 || S <= 0) return;
    transform_norm nrm;
    for (int c = 0; c < 3; c++) {
        nrm.mean[c] = TRANSFORM_MEAN[c];
        nrm.std[c] = TRANSFORM_STD[c];
    }
    size_t npix = (size_t)B * S * S;
    size_t blocks = (npix + TRANSFORM_THREADS - 1) / TRANSFORM_THREADS;
    if (blocks > TRANSFORM_MAX_BLOCKS) blocks = TRANSFORM_MAX_BLOCKS;
    transform_batch_kernel<<<(unsigned)blocks, TRANSFORM_THREADS, 0, DATH_STREAM(ctx)>>>(
        out, in, crop, index, B, R, S, nrm);
    CUDA_LAUNCH_CHECK();
}
