/* host/encoder.h — the encode pass on a backend: uint8 images [B, R, R, 3] (the
 * cached unit, R = transform_cache_side(S)) → the centre-crop transform → a forward
 * pass without dropout → h [B, K] on the host; and the encoding of a whole image list
 * to packed codes, the one way images are encoded (`dath encode`, `dath eval --model`,
 * MAP during training).
 *
 * The transform and the forward are captured in a CUDA graph the second time a full
 * batch is encoded (the first runs eagerly, as a warm-up outside capture) and
 * replayed after that, so encoding a batch costs an upload, one graph launch and a
 * download; a partial batch runs eagerly. The CPU backend runs the same calls eagerly.
 * Used by `dath encode`, `dath eval --model`, MAP during training, and the encoding
 * latency benchmark (bench/bench_encode.c). */
#ifndef DATH_ENCODER_H
#define DATH_ENCODER_H

#include <stdint.h>

#include "backend.h"
#include "model.h"
#include "../loader/list.h"

typedef struct dath_encoder dath_encoder;

/* Scratch the encoder's ops need: pass at least this to the backend's ctx_init. */
size_t encoder_work_bytes(const dath_model *m, int batch);

/* An encoder of up to `batch` images, m's parameters uploaded. NULL with a message. */
dath_encoder *encoder_create(const dath_backend *be, dath_ctx *ctx, const dath_model *m, int batch,
                             char *err, size_t err_len);
void encoder_free(dath_encoder *e);

/* The host buffer (host_alloc: pinned on CUDA) to fill with B ≤ batch images. */
uint8_t *encoder_images(dath_encoder *e);

/* Encodes the first B images of encoder_images into h [B, K] (host). Returns 0, or
 * -1 with a message. */
int encoder_run(dath_encoder *e, int B, float *h, char *err, size_t err_len);
/* The same from images [B, R, R, 3] of the caller's (host_alloc memory of the backend,
 * e.g. a prefetcher's batch). */
int encoder_run_from(dath_encoder *e, const uint8_t *images, int B, float *h, char *err, size_t err_len);

/* Packs the signs of h [B, K] into codes [B, (K+7)/8] as numpy.packbits packs them: bit
 * j is 1 when h_j ≥ 0 (bit 7 − j%8 of byte j/8), padding bits 0. */
void encoder_pack(uint8_t *codes, const float *h, int B, int K);

/* The features of the same pass (`dath features`): feat [B, 4096] host, the fused f that
 * the hash layer reads (stream ENCODER_FUSED) or ReLU(fc7) of stream s (0 ≤ s <
 * nstreams, model.h's order; net.h's net_fused / net_fc7). Returns 0, or -1 with a
 * message. */
enum { ENCODER_FUSED = -1 };
int encoder_features_from(dath_encoder *e, const uint8_t *images, int B, int stream, float *feat, char *err,
                          size_t err_len);

/* Encodes every image of list l (centre crop, no dropout) in batches of `batch` list
 * rows, decoded by the prefetcher's workers (loader/prefetch.h, encode mode; `workers`
 * threads, ≤ 0: one per core) while the previous batch is encoded. Images that fail
 * to decode, or have more than max_pixels pixels (≤ 0: image.h's default), are left
 * out, the first few named on stderr. codes [n_ok, (K+7)/8] packed as numpy.packbits
 * packs them (bit j is 1 when h_j ≥ 0, bit 7 − j%8 of byte j/8); kept [n_ok] the list
 * rows encoded, in list order; both malloc'd, the caller's. progress: a progress bar on
 * stderr when it is a terminal. Returns 0, or -1 with a message. */
int encoder_encode_list(const dath_backend *be, dath_ctx *ctx, const dath_model *m, const dath_list *l,
                        int batch, int workers, int64_t max_pixels, int progress, uint8_t **codes, int **kept,
                        int *n_ok, char *err, size_t err_len);

/* The same pass over list l (decoded and batched as above), keeping features instead
 * of codes: feat [n_ok, 4096] (encoder_features_from's, for `stream`), kept [n_ok] the
 * rows; both malloc'd, the caller's (16 KB an image: the whole list is held in memory).
 * Returns 0, or -1 with a message. */
int encoder_features_list(const dath_backend *be, dath_ctx *ctx, const dath_model *m, const dath_list *l,
                          int batch, int workers, int64_t max_pixels, int progress, int stream, float **feat,
                          int **kept, int *n_ok, char *err, size_t err_len);

/* The net the encoder runs (the cost model names parameter pointers through it). */
struct dath_net *encoder_net(dath_encoder *e);

/* Graphs on (1, the default) or off (0). Batches replayed from a graph so far. */
void encoder_set_graphs(dath_encoder *e, int on);
long encoder_replayed(const dath_encoder *e);

#endif
