/* host/train.h — the training loop of `dath train` (host/cmd_train.c keeps the options
 * and the resume; this is what they drive).
 *
 * Epoch e's batches come from the prefetcher (loader/prefetch.h): a permutation keyed
 * by (seed, e), random crops and flips keyed by (seed, e, sample), every image decoded
 * once (first epoch) and cached. Each batch: upload, fused crop/flip/normalise on the
 * backend, one step (host/step.h, through the ranks of host/ranks.h), a line in
 * OUT/log.jsonl. Every epoch ends with a summary line, the periodic MAP (encoded on the
 * training backend, ranked there: host/retrieval.h), OUT/loss.png redrawn from the log
 * (host/losscurve.h) and OUT/last.safetensors.
 *
 * OUT/log.jsonl: a {"config":{…},"start_step":N} line where a run starts or resumes
 * (the run's configuration, the same object the checkpoint records), then a line a
 * step and a summary an epoch (README). Checkpoints (OUT/last.safetensors, atomic)
 * after every epoch, on SIGINT/SIGTERM (after the current step) and at max_steps:
 * parameters, RMSProp state and, in the metadata, the position (epoch, batch within
 * it, global step), the seed, the run's options as a command line ("args", what a
 * resumed run parses again) and as JSON ("config"). A step with a non-finite loss
 * stops the run and leaves the last checkpoint as it was; so does a failed write.
 *
 * Several processes (dist, host/dist.h): each trains its slice of every global batch
 * and decodes only its share of the list (host/ranks.h, loader/prefetch.h); rank 0
 * alone writes log.jsonl, the checkpoints, model.safetensors and the progress, and
 * evaluates while the others wait for it; a signal on any process stops every one
 * after the same step (the stop votes of host/step.h), with rank 0's checkpoint. */
#ifndef DATH_TRAIN_H
#define DATH_TRAIN_H

#include <stdint.h>

#include "../loader/list.h"
#include "backend.h"
#include "model.h"
#include "step.h"

struct dath_dist;

typedef struct train_config {
    const dath_backend *be;
    dath_model *m;                /* the parameters (and RMSProp state) to train: the caller's */
    const dath_list *list;
    const char *list_file, *root, *out, *cache;   /* cache: NULL, or the cache file's directory */
    int epochs, batch, ranks, precision;          /* batch: the global batch; precision DATH_* */
    int conv_algo;                                /* DATH_CONV_* (CUDA) */
    int data_mode, graphs, workers, strict;       /* FEED_DATA_*; 1: CUDA graphs */
    int max_steps, log_every;                     /* 0: none */
    int eval_every, topk;                         /* MAP every E epochs (0: never) at K (0: all) */
    const char *query, *database;                 /* the MAP's lists (with eval_every) */
    int64_t max_pixels;
    uint64_t seed;
    step_config step;                             /* losses, RMSProp, dropout on */
    /* where the run starts: (0, 0, 0) for a fresh one, a checkpoint's position when resumed */
    int start_epoch, skip_batches;
    uint64_t start_step;
    int resumed;
    const char *config_args, *config_json;        /* the run configuration (host/opts.h OPT_RUN) */
    const struct dath_dist *dist;                 /* the processes (NULL: this one alone) */
    size_t bucket_bytes;                          /* gradient buckets' cap (host/step.h) */
    double comm_timeout_s;                        /* every communication wait's bound */
    const char *bucket_trace;                     /* rank 0 writes the first bucketed step's trace there (NULL: no) */
    const char *invocation_json;                  /* every option of this invocation (log.jsonl) */
} train_config;

/* Trains from c's start to c->epochs (or to a stop), writing OUT/log.jsonl, the
 * checkpoints and, at the end, OUT/model.safetensors. Prints its progress and any
 * error on stderr. Returns the process exit status: 0 when the run finished or stopped
 * cleanly (a signal, max_steps: the checkpoint says where to resume), 1 otherwise. */
int train_run(const train_config *c);

/* Before a run writes into DIR: removes the temporaries a killed writer left beside
 * last.safetensors and model.safetensors, checks that DIR holds two checkpoints of m
 * (the next is written beside the last one), and on a resume trims log.jsonl to the
 * checkpoint's position (steps ≤ step, summaries of epochs ≤ epochs_done; the steps
 * after it run again). Returns 0, or -1 with a message. */
int train_prepare_dir(const char *dir, const dath_model *m, int resumed, uint64_t step, int epochs_done,
                      char *err, size_t err_len);

#endif
