/* host/feed.h — batches from the prefetcher to the backend, overlapped with the step.
 *
 * Two backend slots take turns: batch i+1 is uploaded into one on the backend's copy
 * queue while step i computes from the other. The compute queue waits for a slot's
 * upload (a fence) before its transform (crop, flip, normalise into one fixed x) and
 * the copy of its labels into one fixed lab; the copy queue waits for that transform
 * (another fence) before it refills the slot. x and lab never move, so a step
 * captured in a CUDA graph reads each new batch from the same addresses.
 *
 * The decoded set on the backend: once the prefetcher holds every decoded image
 * (after the first epoch, or at once from a cache file), feed_epoch can upload the
 * whole set ([n, R, R, 3] uint8; 10,000 images at R = 256 are 2 GB); once every
 * rank's feed has it, the caller turns the prefetcher's pixel copies off
 * (prefetch_set_pixels): from then on a batch is its list rows, crops and labels (a
 * few KB), and the transform gathers its images by row.
 *
 * A feed takes rows [row0, row0 + n) of each batch: all of it with one rank, rank r's
 * slice with several. It never gives a batch back to the prefetcher: the caller does,
 * after feed_retire (or feed_drain) of every feed that took a slice of it.
 *
 * Usage per epoch:
 *   feed_epoch(f, ...); prefetch_begin_epoch(pf, e, ...);
 *   prefetch_next(pf, &b) → feed_push(f, &b, row0, n)
 *   loop: feed_pop(f, &x, &lab, &n) → stepper_launch(x, lab, n)
 *         → prefetch_next + feed_push of the next batch (overlaps the step)
 *         → stepper_finish → feed_retire(f) → prefetch_release of the finished batch
 * Functions returning int give 0, or -1 with a message in err. */
#ifndef DATH_FEED_H
#define DATH_FEED_H

#include <stddef.h>

#include "../loader/prefetch.h"
#include "backend.h"

typedef struct dath_feed dath_feed;

enum { FEED_DATA_AUTO = -1, FEED_DATA_NO = 0, FEED_DATA_YES = 1 };

/* B images a batch of side R cropped to S, C labels. data_on_device: FEED_DATA_AUTO
 * keeps the decoded set in backend memory when it takes at most half of the free
 * backend memory, FEED_DATA_YES always (an error when it does not fit), FEED_DATA_NO
 * never. */
dath_feed *feed_create(const dath_backend *be, dath_ctx *ctx, dath_prefetch *pf, int B, int R,
                       int S, int C, int data_on_device, char *err, size_t err_len);
void feed_free(dath_feed *f);

/* Before prefetch_begin_epoch: uploads the decoded set when it is complete and
 * allowed (once). note receives a line saying so, or "". */
int feed_epoch(dath_feed *f, char *note, size_t note_len, char *err, size_t err_len);

/* Queues the upload of rows [row0, row0 + n) of b (at most two batches pushed and not
 * yet retired). */
int feed_push(dath_feed *f, const prefetch_batch *b, int row0, int n, char *err, size_t err_len);

/* Queues the transform of the oldest pushed batch; *x [B,3,S,S] and *lab [B,C] are
 * the fixed backend buffers it fills, *n its images. Returns -1 when none is pushed. */
int feed_pop(dath_feed *f, const float **x, const float **lab, int *n, char *err, size_t err_len);

/* Frees the slots of popped batches once their uploads are done (call after the step
 * that used them has finished); their host buffers may then go back to the prefetcher. */
void feed_retire(dath_feed *f);

/* Frees every slot once its upload is done (end of an epoch, or a stop). */
void feed_drain(dath_feed *f);

/* 1 when the decoded set is in backend memory. */
int feed_data_on_device(const dath_feed *f);

#endif
