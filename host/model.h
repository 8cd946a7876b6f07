/* host/model.h — DATH's parameters: the variants, the flat parameter layout, the
 * safetensors keys (DESIGN.md §1), initialisation, loading and saving.
 *
 * All parameters live in one flat float buffer `theta` (host memory here; net.h puts
 * a copy on the backend). params[i] gives each tensor's key, shape and offset; the
 * order is the order of the network (stream by stream, then hash, then cls), and the
 * gradient buffer and RMSProp state use the same layout.
 *
 * Ownership: model_* functions that return a dath_model * give the caller a model to
 * free with model_free. Functions returning int give 0 on success and -1 with a
 * message in err. */
#ifndef DATH_MODEL_H
#define DATH_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../kernels/conv.h"

typedef enum { VARIANT_DATH, VARIANT_S, VARIANT_C, VARIANT_N, VARIANT_1 } dath_variant;

/* What a stream puts between conv5 and the last max-pool. */
typedef enum { ATTN_NONE, ATTN_PAM, ATTN_CAM, ATTN_BOTH } attn_kind;

#define MODEL_MAX_PARAMS 64
#define MODEL_MAX_STREAMS 2
#define MODEL_HIDDEN 4096      /* fc6/fc7 width */
#define MODEL_POOL 6           /* adaptive average pool output side */
#define MODEL_C5 256           /* conv5 channels */
#define MODEL_CQ 32            /* PAM query/key channels (C5/8) */

/* Every tensor of the flat buffers (parameters, gradients, RMSProp state; host and
 * backend) starts at a multiple of 128 bytes, so that every GEMM operand and every
 * vectorised kernel sees an aligned base whatever the tensors before it (the one-float γ
 * of the attention modules would otherwise leave everything after them 4-byte aligned).
 * The gaps hold zeros: no op reads or writes them but RMSProp, whose update of a zero
 * parameter with a zero gradient is zero. Files are unchanged: tensors are saved and
 * loaded one by one. */
#define MODEL_ALIGN_FLOATS 32

typedef struct model_param {
    char name[64];        /* safetensors key, e.g. "pam.features.0.weight" */
    int ndim;
    int64_t shape[4];
    size_t offset, numel; /* in floats, into the flat buffer */
    int fan_in;           /* for PyTorch's default initialisation; 0 for gamma */
} model_param;

/* Indices of one stream's parameters in params[] (-1 when absent). */
typedef struct stream_params {
    char prefix[16];      /* "pam", "cam", "plain", "trunk" */
    attn_kind attn;
    int conv_w[5], conv_b[5];
    int wq, bq, wk, bk, wv, bv, pam_gamma, cam_gamma;
    int fc6_w, fc6_b, fc7_w, fc7_b;
} stream_params;

typedef struct dath_model {
    dath_variant variant;
    int K, C, S;             /* bits, classes, input size */
    int nstreams;
    stream_params streams[MODEL_MAX_STREAMS];
    int hash_w, hash_b, cls_w, cls_b;
    int nparams;
    model_param params[MODEL_MAX_PARAMS];
    size_t n;                /* floats in the flat buffer: every tensor starts at a multiple
                                of MODEL_ALIGN_FLOATS, the gaps between them are zero */
    size_t count;            /* parameters: the tensors' elements, without the gaps */
    float *theta;            /* [n] host */
    float *rms;              /* [n] host RMSProp state, or NULL when none was loaded */
    /* metadata read from a file (NULL for a fresh model), owned */
    int nmeta;
    char **meta_keys, **meta_values;
} dath_model;

const char *variant_name(dath_variant v);             /* "dath", "dath-s", ... */
extern const char *const variant_names[];            /* indexed by dath_variant, NULL-terminated */
int variant_parse(const char *s, dath_variant *v);    /* 0 ok, -1 unknown */

/* The trunk's five convolutions for a batch of B images of side S (a max-pool follows
 * conv1 and conv2). The one table of AlexNet's geometry. */
void model_conv_shapes(conv2d_shape shapes[5], int B, int S);

/* Smallest input size the AlexNet trunk accepts (63). */
int model_min_input(void);

/* Lays out the parameters of a variant; theta zeroed. NULL with a message when the
 * sizes are invalid. */
dath_model *model_create(dath_variant v, int K, int C, int S, char *err, size_t err_len);
void model_free(dath_model *m);

/* PyTorch's default initialisation (Kaiming-uniform weights, uniform biases, γ = 0),
 * from the counter-based generator keyed by seed: the same seed gives the same bits. */
void model_init_default(dath_model *m, uint64_t seed);

/* Copies a torchvision AlexNet safetensors file's features.* / classifier.1.* /
 * classifier.4.* into every stream's trunk (classifier.6 ignored). */
int model_init_alexnet(dath_model *m, const char *path, char *err, size_t err_len);

/* Index of a parameter by key, or -1. */
int model_find(const dath_model *m, const char *name);

/* Saves theta (and rms as rmsprop.<key> when with_rms and m->rms) with metadata
 * (variant, bits, classes, input_size, plus extra key/value pairs), atomically. */
int model_save(const dath_model *m, const char *path, int with_rms, int nextra,
               const char *const *extra_keys, const char *const *extra_values,
               char *err, size_t err_len);

/* Loads a model or checkpoint written by model_save (rms when present). */
dath_model *model_load(const char *path, char *err, size_t err_len);

/* Metadata value of a loaded model, or NULL. */
const char *model_meta(const dath_model *m, const char *key);

#endif
