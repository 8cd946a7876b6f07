/* host/cmd_train.c — `dath train`: its options, their checks, and --resume; the loop
 * itself is host/train.c.
 *
 * The options marked OPT_RUN make up the run's configuration: the checkpoint stores
 * them as a command line ("args") and as JSON ("config", also log.jsonl's first line).
 * --resume DIR re-reads DIR/last.safetensors: its options first, then this command
 * line's (which may override some, e.g. --epochs), and the position (epoch, batch,
 * step) it was written at. The batches of a partly done epoch are regenerated and
 * skipped, so a resumed run computes exactly the steps an uninterrupted one would
 * (bit-identical on the CPU backend).
 *
 * Several processes (mpirun, srun, DATH_RANK/DATH_WORLD: host/dist.h): every process
 * parses the same command line and reads the same checkpoint; rank 0 alone prepares
 * --out (temporaries, the log's trim, the room for checkpoints). A failure on any
 * process after the bootstrap ends the whole run (dist_abort: MPI_Abort), so no
 * process waits for one that has gone. The number of processes is not part of the
 * run's configuration: a run may resume with another number (the same global batch). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../loader/list.h"
#include "backend.h"
#include "cli.h"
#include "dist.h"
#include "feed.h"
#include "model.h"
#include "opts.h"
#include "train.h"

typedef struct train_opts {
    const char *train, *root, *init, *out, *resume, *query, *database, *cache;
    int variant, device, precision, conv, data_on_device;   /* indices into their choices */
    int bits, epochs, batch, size, eval_every, topk, workers, strict, max_steps, log_every, no_graphs, ranks;
    float lr, wd, beta, gamma, margin, max_mp, bucket_mb, comm_timeout;
    const char *bucket_trace;
    uint64_t seed;
} train_opts;

static const char *const TRAIN_DATA_ON_DEVICE[] = {"auto", "yes", "no", NULL};
static const int TRAIN_DATA_MODE[] = {FEED_DATA_AUTO, FEED_DATA_YES, FEED_DATA_NO};

/* --bucket-mb's default as text, from host/step.h */
#define STEP_BUCKET_MB_STR2(x) #x
#define STEP_BUCKET_MB_STR1(x) STEP_BUCKET_MB_STR2(x)
#define STEP_BUCKET_MB_STR STEP_BUCKET_MB_STR1(STEP_BUCKET_MB_DEFAULT)

/* The option table. OPT_RUN: the run's configuration (stored in the checkpoint, read
 * back by --resume, logged); the rest belong to one invocation (where and how fast it
 * runs, where it stops). */
#define TRAIN_SPEC(o)                                                                                      \
    {                                                                                                      \
        {"train", OPT_STR, &(o).train, NULL, "training list (path and C 0/1 labels a line)", OPT_RUN},     \
        {"root", OPT_STR, &(o).root, "", "directory the lists' paths are relative to", OPT_RUN},          \
        {"variant", OPT_ENUM, &(o).variant, "dath", "the network (the paper's Table 3)", OPT_RUN, variant_names}, \
        {"bits", OPT_INT, &(o).bits, "64", "hash code length K", OPT_POSITIVE | OPT_RUN},                  \
        {"epochs", OPT_INT, &(o).epochs, "200", "epochs to train (in all, counting resumed ones)", OPT_POSITIVE | OPT_RUN}, \
        {"batch", OPT_INT, &(o).batch, "128", "batch size (the global batch)", OPT_POSITIVE | OPT_RUN},   \
        {"lr", OPT_FLOAT, &(o).lr, "1e-5", "RMSProp learning rate", OPT_POSITIVE | OPT_RUN},              \
        {"wd", OPT_FLOAT, &(o).wd, "1e-5", "weight decay", OPT_NONNEG | OPT_RUN},                         \
        {"beta", OPT_FLOAT, &(o).beta, "1", "weight β of J2 (classification)", OPT_NONNEG | OPT_RUN},     \
        {"gamma", OPT_FLOAT, &(o).gamma, "0.01", "weight γ of J3 (quantisation)", OPT_NONNEG | OPT_RUN},  \
        {"margin", OPT_FLOAT, &(o).margin, "5", "triplet margin α of J1", OPT_NONNEG | OPT_RUN},          \
        {"init", OPT_STR, &(o).init, NULL, "torchvision AlexNet safetensors for the trunks", OPT_RUN},    \
        {"input-size", OPT_INT, &(o).size, "224", "input side S (at least 63)", OPT_POSITIVE | OPT_RUN},  \
        {"seed", OPT_U64, &(o).seed, "0", "seed of initialisation, order, crops, flips, dropout", OPT_RUN}, \
        {"out", OPT_STR, &(o).out, "out", "directory for last.safetensors, model.safetensors, log.jsonl"}, \
        {"resume", OPT_STR, &(o).resume, NULL, "continue the run whose checkpoint is DIR/last.safetensors"}, \
        {"eval-every", OPT_INT, &(o).eval_every, "0", "MAP every E epochs (needs --query and --database)", OPT_NONNEG | OPT_RUN}, \
        {"query", OPT_STR, &(o).query, NULL, "query list for MAP", OPT_RUN},                              \
        {"database", OPT_STR, &(o).database, NULL, "database list for MAP", OPT_RUN},                     \
        {"topk", OPT_INT, &(o).topk, "5000", "MAP@K (0: all)", OPT_NONNEG | OPT_RUN},                     \
        {"device", OPT_ENUM, &(o).device, "auto", "where to train", 0, backend_devices},                    \
        {"precision", OPT_ENUM, &(o).precision, "fp32", "GEMM precision (tf32, bf16: CUDA, sm_80+)", 0, backend_precisions}, \
        {"conv", OPT_ENUM, &(o).conv, "implicit", "CUDA convolutions: implicit GEMMs or im2col + cuBLAS (the CPU ignores it)", 0, backend_conv_algos}, \
        {"workers", OPT_INT, &(o).workers, "0", "decoding threads (0: one per core)", OPT_NONNEG},        \
        {"strict", OPT_FLAG, &(o).strict, "0", "stop at the first unreadable image instead of skipping it"}, \
        {"cache", OPT_STR, &(o).cache, NULL, "directory for the decoded-image cache file"},               \
        {"max-megapixels", OPT_FLOAT, &(o).max_mp, "64", "refuse (skip) images of more pixels, read from the header before decoding", OPT_POSITIVE | OPT_RUN}, \
        {"max-steps", OPT_INT, &(o).max_steps, "0", "stop (with a checkpoint) after this global step", OPT_NONNEG}, \
        {"log-every", OPT_INT, &(o).log_every, "0", "plain progress line every N steps (0: each epoch)", OPT_NONNEG}, \
        {"data-on-device", OPT_ENUM, &(o).data_on_device, "auto", "keep the decoded set in device memory after the first epoch (auto: when it fits in half the free memory)", 0, TRAIN_DATA_ON_DEVICE}, \
        {"no-graphs", OPT_FLAG, &(o).no_graphs, "0", "run every step eagerly instead of replaying a CUDA graph"}, \
        {"ranks", OPT_INT, &(o).ranks, "1", "data-parallel ranks in this process: GPUs 0..N-1 over NCCL (CUDA), threads (CPU); --batch is split evenly (several processes: see mpirun, srun, DATH_WORLD)", OPT_POSITIVE}, \
        {"bucket-mb", OPT_FLOAT, &(o).bucket_mb, STEP_BUCKET_MB_STR, "gradient buckets all-reduced while the backward runs, at most this many MiB each (0: one all-reduce after the backward)", OPT_NONNEG}, \
        {"comm-timeout", OPT_FLOAT, &(o).comm_timeout, "300", "seconds a process waits for the others before it stops the run, naming them", OPT_POSITIVE}, \
        {"bucket-trace", OPT_STR, &(o).bucket_trace, NULL, "rank 0 writes the first bucketed step's schedule and trace here (JSON lines)"}, \
        {0}                                                                                                \
    }

static const char *TRAIN_SYNOPSIS = "--train L --root DIR [--variant V --bits K --epochs E ...] --out DIR | --resume DIR";

/* A whole number 0..max from the checkpoint's metadata. Returns 0, or -1 with a message
 * naming the file and the key. */
static int train_meta_u64(const dath_model *ck, const char *path, const char *key, uint64_t max, uint64_t *v,
                          char *err, size_t err_len) {
    const char *s = model_meta(ck, key);
    if (!s) {
        snprintf(err, err_len, "%s: no '%s' in its metadata (not a complete dath training checkpoint)", path, key);
        return -1;
    }
    uint64_t x = 0;
    const char *q = s;
    for (; *q >= '0' && *q <= '9'; q++) {
        uint64_t d = (uint64_t)(*q - '0');
        if (x > (max - d) / 10) break;
        x = x * 10 + d;
    }
    if (q == s || *q) {
        snprintf(err, err_len, "%s: metadata '%s' is '%.40s', not a whole number from 0 to %" PRIu64, path, key, s, max);
        return -1;
    }
    *v = x;
    return 0;
}

int cmd_train(int argc, char **argv) {
    train_opts o;
    memset(&o, 0, sizeof o);
    opt_spec spec[] = TRAIN_SPEC(o);
    char err[8192];
    dath_model *ck = NULL;
    char *ck_args = NULL;   /* the checkpoint's option string, split in place into av */
    char **av = argv;
    int ac = argc;
    uint64_t ck_epoch = 0, ck_batch = 0, ck_step = 0;   /* the checkpoint's position */
    /* --resume: the checkpoint's options first, then this command line's */
    for (int i = 1; i < argc; i++) {
        const char *dir = NULL;
        if (!strcmp(argv[i], "--resume") && i + 1 < argc) dir = argv[i + 1];
        else if (!strncmp(argv[i], "--resume=", 9)) dir = argv[i] + 9;
        if (!dir) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/last.safetensors", dir);
        ck = model_load(path, err, sizeof err);
        if (!ck) { fprintf(stderr, "dath train: --resume: %s\n", err); return 1; }
        const char *args = model_meta(ck, "args");
        if (!args || !ck->rms) { fprintf(stderr, "dath train: --resume: %s is not a training checkpoint\n", path); model_free(ck); return 1; }
        if (train_meta_u64(ck, path, "epoch", INT32_MAX, &ck_epoch, err, sizeof err) ||
            train_meta_u64(ck, path, "batch_in_epoch", INT32_MAX, &ck_batch, err, sizeof err) ||
            train_meta_u64(ck, path, "step", UINT64_MAX, &ck_step, err, sizeof err)) {
            fprintf(stderr, "dath train: --resume: %s\n", err);
            model_free(ck);
            return 1;
        }
        ck_args = strdup(args);
        int words = 1;
        for (const char *p = args; *p; p++) words += *p == '\t';
        av = calloc((size_t)argc + (size_t)words + 4, sizeof(char *));
        if (!ck_args || !av) { fprintf(stderr, "dath train: --resume: out of memory\n"); model_free(ck); free(ck_args); free(av); return 1; }
        ac = 0;
        av[ac++] = argv[0];
        for (char *t = strtok(ck_args, "\t"); t; t = strtok(NULL, "\t")) av[ac++] = t;
        av[ac++] = "--out";
        av[ac++] = (char *)dir;
        for (int j = 1; j < argc; j++) av[ac++] = argv[j];
        break;
    }
    int rc = opts_parse("dath train", TRAIN_SYNOPSIS, spec, ac, av, NULL, 0, NULL, err, sizeof err);
    dath_list *l = NULL;
    dath_model *m = ck;
    char args[8192], config[8192], invocation[8192];
    dath_dist dist = {.world = 1};
    if (rc) {
        if (rc < 0) fprintf(stderr, "dath train: %s\n", err);
        rc = rc < 0 ? 2 : 0;
        goto out;
    }
    /* the processes of the run: each parses the same command line and continues from here */
    if (dist_init(&dist, o.comm_timeout, err, sizeof err)) {
        fprintf(stderr, "dath train: %s\n", err);
        rc = 2;
        goto out;
    }
    int me = dist.rank;
    if (dist.world > 1)
        fprintf(stderr, "dath train: rank %d of %d (bootstrap %s), host %s, local rank %d, pid %d\n", dist.rank,
                dist.world, dist_kind_name(dist.kind), dist.host, dist.local_rank, (int)getpid());
    rc = 2;
    if (!o.train) { fprintf(stderr, "dath train: --train is required (see dath train --help)\n"); goto out; }
    if (o.batch < 2) { fprintf(stderr, "dath train: --batch %d: at least 2 (triplets need pairs)\n", o.batch); goto out; }
    if (o.eval_every && (!o.query || !o.database)) { fprintf(stderr, "dath train: --eval-every needs --query and --database\n"); goto out; }
    if (o.batch % o.ranks || o.batch / o.ranks < 1) {
        fprintf(stderr, "dath train: --ranks %d: at least 1, and --batch %d must be a multiple of it\n", o.ranks, o.batch);
        goto out;
    }
    const dath_backend *be = backend_choose(backend_devices[o.device], err, sizeof err);
    if (!be) { fprintf(stderr, "dath train: %s\n", err); goto out; }
    if (opts_to_args(spec, OPT_RUN, args, sizeof args) < 0 || opts_to_json(spec, OPT_RUN, config, sizeof config) < 0 ||
        opts_to_json(spec, 0, invocation, sizeof invocation) < 0) {
        fprintf(stderr, "dath train: the run's options are too long to record\n");
        goto out;
    }

    /* the list is validated whole before anything else */
    rc = 1;
    if (!(l = list_read(o.train, o.root, err, sizeof err))) { fprintf(stderr, "dath train: %s\n", err); goto out; }
    if (ck) {
        if (ck->variant != (dath_variant)o.variant || ck->K != o.bits || ck->S != o.size) {
            fprintf(stderr, "dath train: --resume: the checkpoint is %s, %d bits, input %d; the options say %s, %d, %d\n",
                    variant_name(ck->variant), ck->K, ck->S, variant_names[o.variant], o.bits, o.size);
            rc = 2;
            goto out;
        }
    } else {
        if (!(m = model_create((dath_variant)o.variant, o.bits, l->C, o.size, err, sizeof err))) {
            fprintf(stderr, "dath train: %s\n", err);
            rc = 2;
            goto out;
        }
        model_init_default(m, o.seed);
        if (o.init && model_init_alexnet(m, o.init, err, sizeof err)) { fprintf(stderr, "dath train: --init %s\n", err); goto out; }
    }
    if (l->C != m->C) {
        fprintf(stderr, "dath train: %s has %d labels a line; the checkpoint has %d classes\n", o.train, l->C, m->C);
        rc = 2;
        goto out;
    }
    if (me == 0 && mkdir(o.out, 0755) && errno != EEXIST) { fprintf(stderr, "dath train: --out %s: %s\n", o.out, strerror(errno)); goto out; }
    if (me == 0 && train_prepare_dir(o.out, m, ck != NULL, ck_step, (int)ck_epoch, err, sizeof err)) {
        fprintf(stderr, "dath train: %s%s\n", ck ? "--resume: " : "", err);
        goto out;
    }
    train_config c = {.be = be, .m = m, .list = l, .list_file = o.train, .root = o.root, .out = o.out,
                      .cache = o.cache, .epochs = o.epochs, .batch = o.batch, .ranks = o.ranks,
                      .precision = o.precision, .conv_algo = o.conv, .data_mode = TRAIN_DATA_MODE[o.data_on_device],
                      .graphs = !o.no_graphs, .workers = o.workers, .strict = o.strict,
                      .max_steps = o.max_steps, .log_every = o.log_every, .eval_every = o.eval_every,
                      .topk = o.topk, .query = o.query, .database = o.database,
                      .max_pixels = (int64_t)((double)o.max_mp * 1e6), .seed = o.seed,
                      .start_epoch = (int)ck_epoch, .skip_batches = (int)ck_batch, .start_step = ck_step,
                      .resumed = ck != NULL, .config_args = args, .config_json = config,
                      .dist = &dist, .bucket_bytes = (size_t)((double)o.bucket_mb * (1 << 20)),
                      .comm_timeout_s = o.comm_timeout, .bucket_trace = o.bucket_trace,
                      .invocation_json = invocation};
    step_config_default(&c.step);
    c.step.lr = o.lr; c.step.wd = o.wd; c.step.beta = o.beta; c.step.gamma = o.gamma; c.step.margin = o.margin;
    c.step.multi = l->multi; c.step.seed = o.seed; c.step.dropout = 1;
    rc = train_run(&c);
out:
    if (l) list_free(l);
    model_free(m);
    if (av != argv) free(av);
    free(ck_args);
    /* several processes: a failure here ends every one of them; a good end meets the others */
    if (rc && (dist.world > 1 || dist.mpi_inited)) {
        if (dist.world > 1) fprintf(stderr, "dath train: rank %d: stopping the run (exit %d)\n", dist.rank, rc);
        dist_abort(&dist, rc);
    }
    dist_finalize(&dist);
    return rc;
}
