/* host/evaluate.h — encoding image lists to packed codes and MAP of a model, for
 * `dath encode`, `dath eval --model` and the training loop's periodic evaluation.
 *
 * Codes are packed as numpy.packbits packs them: bit j of a code (1 when h_j >= 0)
 * is bit 7 − (j mod 8) of byte j / 8. Ownership: buffers returned through pointer
 * arguments are malloc'd and belong to the caller. Functions return 0, or -1 with a
 * message in err. */
#ifndef DATH_EVALUATE_H
#define DATH_EVALUATE_H

#include <stddef.h>
#include <stdint.h>
#include "backend.h"
#include "model.h"
#include "../loader/list.h"

/* Encodes every image of list (centre crop, no dropout) in batches of `batch`; images
 * over max_pixels (≤ 0: image.h's default) are refused as unreadable.
 * codes [n_ok, (K+7)/8] packed; kept [n_ok] the list rows encoded (images that fail
 * to decode are left out and reported on stderr); *n_ok their count.
 * progress: 1 draws a progress bar on stderr when it is a terminal. */
int evaluate_encode(const dath_backend *be, dath_ctx *ctx, const dath_model *m,
                    const dath_list *list, int batch, int64_t max_pixels, int progress, uint8_t **codes,
                    int **kept, int *n_ok, char *err, size_t err_len);

/* Encodes query_list and db_list and returns MAP@topk (topk 0 = all; zero-hit
 * queries count 0, DESIGN.md §5). */
int evaluate_model_map(const dath_backend *be, dath_ctx *ctx, const dath_model *m,
                       const char *query_list, const char *db_list, const char *root,
                       int topk, int64_t max_pixels, double *map, char *err, size_t err_len);

#endif
