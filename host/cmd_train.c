/* host/cmd_train.c — `dath train`: the training loop.
 *
 * Epoch e's batches come from the prefetcher (loader/prefetch.h): a permutation keyed
 * by (seed, e), random crops and flips keyed by (seed, e, sample), every image decoded
 * once (first epoch) and cached. Each batch: upload, fused crop/flip/normalise on the
 * backend, one step (host/step.h), a line in DIR/log.jsonl.
 *
 * Checkpoints: DIR/last.safetensors after every epoch, on SIGINT/SIGTERM (after the
 * current step) and at --max-steps: parameters, RMSProp state and, in the metadata,
 * the position (epoch, batch within it, global step), the seed and the run's options
 * as a command line. --resume DIR re-reads those options (the command line may
 * override some, e.g. --epochs) and continues from the position: the batches of a
 * partly done epoch are regenerated and skipped, so a resumed run computes exactly
 * the steps an uninterrupted one would (bit-identical on the CPU backend).
 * Writes are atomic; a step with a non-finite loss stops the run and leaves the last
 * checkpoint as it was. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "../loader/list.h"
#include "../loader/prefetch.h"
#include "atomic.h"
#include "backend.h"
#include "cli.h"
#include "comm.h"
#include "evaluate.h"
#include "feed.h"
#include "ranks.h"
#include "model.h"
#include "net.h"
#include "opts.h"
#include "step.h"

/* A step whose stepper_finish returns within this many seconds was over before the
 * host had fetched the next batch: the device waited for data (on an asynchronous
 * backend; on the CPU backend every step computes inside stepper_launch). */
#define TRAIN_IDLE_S 50e-6

static volatile sig_atomic_t train_stop;
static void train_on_signal(int sig) { train_stop = sig; }

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

typedef struct train_opts {
    const char *train, *root, *variant, *init, *out, *resume, *query, *database, *device, *precision, *cache;
    const char *data_on_device;
    int bits, epochs, batch, size, eval_every, topk, workers, strict, max_steps, log_every, no_graphs, ranks;
    float lr, wd, beta, gamma, margin, max_mp;
    uint64_t seed;
} train_opts;

#define TRAIN_SPEC(o)                                                                                      \
    {                                                                                                      \
        {"train", OPT_STR, &(o).train, NULL, "training list (path and C 0/1 labels a line)"},              \
        {"root", OPT_STR, &(o).root, "", "directory the lists' paths are relative to"},                  \
        {"variant", OPT_STR, &(o).variant, "dath", "dath, dath-s, dath-c, dath-n or dath-1"},             \
        {"bits", OPT_INT, &(o).bits, "64", "hash code length K", OPT_POSITIVE},                                         \
        {"epochs", OPT_INT, &(o).epochs, "200", "epochs to train (in all, counting resumed ones)", OPT_POSITIVE},       \
        {"batch", OPT_INT, &(o).batch, "128", "batch size (the global batch)", OPT_POSITIVE},                          \
        {"lr", OPT_FLOAT, &(o).lr, "1e-5", "RMSProp learning rate", OPT_POSITIVE},                                     \
        {"wd", OPT_FLOAT, &(o).wd, "1e-5", "weight decay", OPT_NONNEG},                                               \
        {"beta", OPT_FLOAT, &(o).beta, "1", "weight β of J2 (classification)", OPT_NONNEG},                           \
        {"gamma", OPT_FLOAT, &(o).gamma, "0.01", "weight γ of J3 (quantisation)", OPT_NONNEG},                        \
        {"margin", OPT_FLOAT, &(o).margin, "5", "triplet margin α of J1", OPT_NONNEG},                                \
        {"init", OPT_STR, &(o).init, NULL, "torchvision AlexNet safetensors for the trunks"},             \
        {"input-size", OPT_INT, &(o).size, "224", "input side S (at least 63)", OPT_POSITIVE},                          \
        {"seed", OPT_U64, &(o).seed, "0", "seed of initialisation, order, crops, flips, dropout"},        \
        {"out", OPT_STR, &(o).out, "out", "directory for last.safetensors, model.safetensors, log.jsonl"}, \
        {"resume", OPT_STR, &(o).resume, NULL, "continue the run whose checkpoint is DIR/last.safetensors"}, \
        {"eval-every", OPT_INT, &(o).eval_every, "0", "MAP every E epochs (needs --query and --database)", OPT_NONNEG}, \
        {"query", OPT_STR, &(o).query, NULL, "query list for MAP"},                                       \
        {"database", OPT_STR, &(o).database, NULL, "database list for MAP"},                              \
        {"topk", OPT_INT, &(o).topk, "5000", "MAP@K (0: all)", OPT_NONNEG},                                           \
        {"device", OPT_STR, &(o).device, "auto", "auto, cpu or cuda"},                                    \
        {"precision", OPT_STR, &(o).precision, "fp32", "fp32, tf32 or bf16 (CUDA, sm_80+)"},              \
        {"workers", OPT_INT, &(o).workers, "0", "decoding threads (0: one per core)", OPT_NONNEG},                    \
        {"strict", OPT_FLAG, &(o).strict, "0", "stop at the first unreadable image instead of skipping it"}, \
        {"cache", OPT_STR, &(o).cache, NULL, "directory for the decoded-image cache file"},               \
        {"max-megapixels", OPT_FLOAT, &(o).max_mp, "64", "refuse (skip) images of more pixels, read from the header before decoding", OPT_POSITIVE}, \
        {"max-steps", OPT_INT, &(o).max_steps, "0", "stop (with a checkpoint) after this global step", OPT_NONNEG},   \
        {"log-every", OPT_INT, &(o).log_every, "0", "plain progress line every N steps (0: each epoch)", OPT_NONNEG},  \
        {"data-on-device", OPT_STR, &(o).data_on_device, "auto", "keep the decoded set in device memory after the first epoch: auto (when it fits in half the free memory), yes, no"}, \
        {"no-graphs", OPT_FLAG, &(o).no_graphs, "0", "run every step eagerly instead of replaying a CUDA graph"}, \
        {"ranks", OPT_INT, &(o).ranks, "1", "data-parallel ranks: GPUs 0..N-1 over NCCL (CUDA), threads (CPU); --batch is split evenly", OPT_POSITIVE}, \
        {0}                                                                                                \
    }

static const char *TRAIN_SYNOPSIS = "--train L --root DIR [--variant V --bits K --epochs E ...] --out DIR | --resume DIR";

/* The options that define the run, as a command line stored in the checkpoint. */
static void train_args_string(const train_opts *o, char *buf, size_t len) {
    snprintf(buf, len,
             "--train\t%s\t--root\t%s\t--variant\t%s\t--bits\t%d\t--epochs\t%d\t--batch\t%d\t--lr\t%.9g\t--wd\t%.9g\t"
             "--beta\t%.9g\t--gamma\t%.9g\t--margin\t%.9g\t--input-size\t%d\t--seed\t%" PRIu64 "\t--topk\t%d\t"
             "--eval-every\t%d\t--max-megapixels\t%.9g%s%s%s%s",
             o->train, o->root, o->variant, o->bits, o->epochs, o->batch, o->lr, o->wd, o->beta, o->gamma,
             o->margin, o->size, o->seed, o->topk, o->eval_every, o->max_mp, o->query ? "\t--query\t" : "",
             o->query ? o->query : "", o->database ? "\t--database\t" : "", o->database ? o->database : "");
}

/* Writes DIR/last.safetensors (atomic). */
static int train_checkpoint(train_ranks *rk, dath_model *m, const train_opts *o, const char *args, int epoch,
                            int batch_in_epoch, uint64_t step, const char *path, char *err, size_t err_len) {
    ranks_download(rk, m);
    char e[32], b[32], s[32], seed[32];
    snprintf(e, sizeof e, "%d", epoch);
    snprintf(b, sizeof b, "%d", batch_in_epoch);
    snprintf(s, sizeof s, "%" PRIu64, step);
    snprintf(seed, sizeof seed, "%" PRIu64, o->seed);
    const char *keys[] = {"epoch", "batch_in_epoch", "step", "seed", "rng", "args"};
    const char *vals[] = {e, b, s, seed, "philox4x32-10 keyed by (seed, epoch|step, sample): no state beyond these", args};
    return model_save(m, path, 1, 6, keys, vals, err, err_len);
}

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

/* --resume: the log keeps only what the checkpoint holds, so that the steps computed
 * again are not logged twice: step lines with step ≤ `step`, epoch summaries of the
 * `epochs_done` finished epochs, other lines as they are; a last line cut short (the
 * writer was killed) goes too. Rewritten atomically when anything is dropped. Returns
 * the number of lines dropped (0 when there is no log), or -1 with a message. */
static int train_trim_log(const char *path, uint64_t step, int epochs_done, char *err, size_t err_len) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : (snprintf(err, err_len, "%s: %s", path, strerror(errno)), -1);
    struct stat st;
    char *text = NULL, *out = NULL;
    int dropped = -1;
    if (fstat(fileno(f), &st) || !(text = malloc((size_t)st.st_size + 1)) || !(out = malloc((size_t)st.st_size + 1)) ||
        fread(text, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        snprintf(err, err_len, "%s: cannot read it to trim it to the checkpoint", path);
        goto done;
    }
    text[st.st_size] = 0;
    size_t kept = 0;
    dropped = 0;
    for (char *p = text, *end = text + st.st_size; p < end;) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        int keep = eol != NULL;
        if (keep) {
            *eol = 0;   /* the line is a C string now */
            const char *at;
            if (!strncmp(p, "{\"epoch_end\":", 13)) keep = strtol(p + 13, NULL, 10) <= epochs_done;
            else if (!strncmp(p, "{\"epoch\":", 9) && (at = strstr(p, ",\"step\":")))
                keep = strtoull(at + 8, NULL, 10) <= step;
            *eol = '\n';
        }
        char *next = eol ? eol + 1 : end;
        if (keep) {
            memcpy(out + kept, p, (size_t)(next - p));
            kept += (size_t)(next - p);
        } else {
            dropped++;
        }
        p = next;
    }
    if (dropped) {
        const void *parts[1] = {out};
        if (atomic_write(path, parts, &kept, 1, err, err_len)) dropped = -1;
    }
done:
    fclose(f);
    free(text);
    free(out);
    return dropped;
}

/* The run writes DIR/last.safetensors after every epoch: the new one beside the last one
 * until it is complete, so DIR's file system must hold two (the existing one counting as
 * held), and model.safetensors (half a checkpoint) at the end, when the temporary is
 * gone. Checked up front, so that a full disk stops the run before it trains, not an
 * epoch later. Returns 0 (also when the free space cannot be read), or -1 with a message. */
static int train_check_space(const char *dir, const char *ckpath, const dath_model *m, char *err, size_t err_len) {
    const double ck = (double)m->n * sizeof(float) * 2 + (1 << 20);   /* parameters + RMSProp state + header */
    struct stat st;
    double have = stat(ckpath, &st) == 0 ? (double)st.st_size : 0;
    double need = 2 * ck - (have < ck ? have : ck);
    struct statvfs vs;
    if (statvfs(dir, &vs) != 0) return 0;
    double avail = (double)vs.f_bavail * vs.f_frsize;
    if (avail >= need) return 0;
    snprintf(err, err_len, "--out %s: %.2f GiB free, the run needs %.2f GiB there (two checkpoints of %.2f GiB: "
             "the next is written beside the last one before it replaces it%s)", dir, avail / (1 << 30),
             need / (1 << 30), ck / (1 << 30), have > 0 ? ", which is already there" : "");
    return -1;
}

/* A JSON number, or null when v is not finite (JSON has no NaN). buf [32]. */
static const char *train_json_num(char *buf, double v) {
    if (isfinite(v)) snprintf(buf, 32, "%.9g", v);
    else snprintf(buf, 32, "null");
    return buf;
}

static void progress(int tty, int epoch, int epochs, int bi, int nb, double ips, double loss, double eta) {
    if (!tty) return;
    int w = 30, f = nb > 0 ? (int)((double)w * bi / nb) : 0;
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < f ? '#' : '.';
    bar[w] = 0;
    fprintf(stderr, "\repoch %d/%d [%s] %d/%d  %.1f img/s  J %.4f  ETA %02d:%02d:%02d ", epoch + 1, epochs, bar, bi, nb,
            ips, loss, (int)(eta / 3600), (int)fmod(eta / 60, 60), (int)fmod(eta, 60));
    fflush(stderr);
}

/* Fetches the next batch of the epoch into *b, past the first `skip` (those a resumed
 * run already trained: released at once and counted in *bi) and past any batch too
 * small to give every rank a row. Returns 0, 1 at the end of the epoch, or -1 with a
 * message in err. */
static int train_fetch(dath_prefetch *pf, train_ranks *rk, prefetch_batch *b, int skip, int *fetched, int *bi,
                       char *err, size_t err_len) {
    int r;
    while ((r = prefetch_next(pf, b, err, err_len)) == 0 && (*fetched < skip || ranks_rows(rk, b->n) < 1)) {
        prefetch_release(pf, b);
        (*fetched)++;
        (*bi)++;
    }
    if (r == 0) (*fetched)++;
    return r;
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
        av = calloc((size_t)argc + 64, sizeof(char *));
        ac = 0;
        av[ac++] = argv[0];
        for (char *t = strtok(ck_args, "\t"); t && ac < 60; t = strtok(NULL, "\t")) av[ac++] = t;
        av[ac++] = "--out";
        av[ac++] = (char *)dir;
        for (int j = 1; j < argc; j++) av[ac++] = argv[j];
        break;
    }
    int rc = opts_parse("dath train", TRAIN_SYNOPSIS, spec, ac, av, NULL, 0, NULL, err, sizeof err);
    if (rc) { if (rc < 0) fprintf(stderr, "dath train: %s\n", err); model_free(ck); return rc < 0 ? 2 : 0; }
    if (!o.train) { fprintf(stderr, "dath train: --train is required (see dath train --help)\n"); model_free(ck); return 2; }
    dath_variant v;
    if (variant_parse(o.variant, &v)) { fprintf(stderr, "dath train: --variant '%s': expected dath, dath-s, dath-c, dath-n or dath-1\n", o.variant); return 2; }
    if (o.batch < 2) { fprintf(stderr, "dath train: --batch %d: at least 2 (triplets need pairs)\n", o.batch); return 2; }
    if (o.epochs < 1) { fprintf(stderr, "dath train: --epochs %d: at least 1\n", o.epochs); return 2; }
    if (o.eval_every && (!o.query || !o.database)) { fprintf(stderr, "dath train: --eval-every needs --query and --database\n"); return 2; }
    if (strcmp(o.data_on_device, "auto") && strcmp(o.data_on_device, "yes") && strcmp(o.data_on_device, "no")) {
        fprintf(stderr, "dath train: --data-on-device '%s': expected auto, yes or no\n", o.data_on_device);
        return 2;
    }
    int prec = backend_precision_parse(o.precision);
    if (prec < 0) { fprintf(stderr, "dath train: --precision '%s': expected fp32, tf32 or bf16\n", o.precision); return 2; }
    if (o.ranks < 1 || o.batch % o.ranks || o.batch / o.ranks < 1) {
        fprintf(stderr, "dath train: --ranks %d: at least 1, and --batch %d must be a multiple of it\n", o.ranks, o.batch);
        return 2;
    }
    const dath_backend *be = backend_choose(o.device, err, sizeof err);
    if (!be) { fprintf(stderr, "dath train: %s\n", err); return 2; }

    /* the list is validated whole before anything else */
    dath_list *l = list_read(o.train, o.root, err, sizeof err);
    if (!l) { fprintf(stderr, "dath train: %s\n", err); model_free(ck); return 1; }
    dath_model *m = ck;
    int start_epoch = 0, skip_batches = 0;
    uint64_t step = 0;
    if (ck) {
        start_epoch = (int)ck_epoch;
        skip_batches = (int)ck_batch;
        step = ck_step;
        if (ck->variant != v || ck->K != o.bits || ck->S != o.size) {
            fprintf(stderr, "dath train: --resume: the checkpoint is %s, %d bits, input %d; the options say %s, %d, %d\n",
                    variant_name(ck->variant), ck->K, ck->S, o.variant, o.bits, o.size);
            list_free(l); model_free(ck);
            return 2;
        }
    } else {
        m = model_create(v, o.bits, l->C, o.size, err, sizeof err);
        if (!m) { fprintf(stderr, "dath train: %s\n", err); list_free(l); return 2; }
        model_init_default(m, o.seed);
        if (o.init && model_init_alexnet(m, o.init, err, sizeof err)) {
            fprintf(stderr, "dath train: --init %s\n", err);
            list_free(l); model_free(m);
            return 1;
        }
    }
    if (l->C != m->C) {
        fprintf(stderr, "dath train: %s has %d labels a line; the checkpoint has %d classes\n", o.train, l->C, m->C);
        list_free(l); model_free(m);
        return 2;
    }
    if (mkdir(o.out, 0755) && errno != EEXIST) {
        fprintf(stderr, "dath train: --out %s: %s\n", o.out, strerror(errno));
        list_free(l); model_free(m);
        return 1;
    }
    char args[8192], ckpath[4096], logpath[4096], final[4096];
    train_args_string(&o, args, sizeof args);
    snprintf(ckpath, sizeof ckpath, "%s/last.safetensors", o.out);
    snprintf(logpath, sizeof logpath, "%s/log.jsonl", o.out);
    snprintf(final, sizeof final, "%s/model.safetensors", o.out);
    /* temporaries of a run killed while it wrote a checkpoint (kill -9, power loss) */
    uint64_t stale_bytes = 0, stale_more = 0;
    int stale = atomic_remove_stale(ckpath, &stale_bytes);
    stale += atomic_remove_stale(final, &stale_more);
    if (stale)
        fprintf(stderr, "dath train: removed %d temporary file%s (%.1f MiB) left in %s by a run killed while writing\n",
                stale, stale == 1 ? "" : "s", (double)(stale_bytes + stale_more) / (1 << 20), o.out);
    if (train_check_space(o.out, ckpath, m, err, sizeof err)) {
        fprintf(stderr, "dath train: %s\n", err);
        list_free(l); model_free(m);
        return 1;
    }
    if (ck) {
        int dropped = train_trim_log(logpath, step, start_epoch, err, sizeof err);
        if (dropped < 0) { fprintf(stderr, "dath train: --resume: %s\n", err); list_free(l); model_free(m); return 1; }
        if (dropped)
            fprintf(stderr, "dath train: %s: dropped %d line%s written after the checkpoint (step %" PRIu64 "): those steps run again\n",
                    logpath, dropped, dropped == 1 ? "" : "s", step);
    }

    int B = o.batch, S = o.size, R = transform_cache_side(S), C = m->C;
    int data_mode = !strcmp(o.data_on_device, "yes") ? FEED_DATA_YES : !strcmp(o.data_on_device, "no") ? FEED_DATA_NO : FEED_DATA_AUTO;
    prefetch_config pc = {.list = l, .mode = PREFETCH_TRAIN, .R = R, .S = S, .B = B, .seed = o.seed,
                          .workers = o.workers, .ring = 4, .strict = o.strict, .cache_dir = o.cache,
                          .host_alloc = be->host_alloc, .host_free = be->host_free,
                          .max_pixels = (int64_t)((double)o.max_mp * 1e6)};
    dath_prefetch *pf = prefetch_create(&pc, err, sizeof err);
    ranks_config rc_ = {.be = be, .m = m, .pf = pf, .world = o.ranks, .B = B, .R = R, .S = S, .C = C,
                        .precision = prec, .data_mode = data_mode, .graphs = !o.no_graphs,
                        .work0 = o.query ? net_work_bytes(m, 256, 256) : 0};
    train_ranks *rk = pf ? ranks_create(&rc_, err, sizeof err) : NULL;
    FILE *log = rk ? fopen(logpath, ck ? "a" : "w") : NULL;
    rc = 1;
    if (!rk || !log) {
        if (!rk) fprintf(stderr, "dath train: %s\n", err);
        else fprintf(stderr, "dath train: %s: cannot open: %s\n", logpath, strerror(errno));
        goto out;
    }
    setvbuf(log, NULL, _IOLBF, 0);   /* every line reaches the file when it is written: a kill loses none */
    step_config cfg;
    step_config_default(&cfg);
    cfg.lr = o.lr; cfg.wd = o.wd; cfg.beta = o.beta; cfg.gamma = o.gamma; cfg.margin = o.margin;
    cfg.multi = l->multi; cfg.seed = o.seed; cfg.dropout = 1;
    char ranks_note[64] = "";
    if (o.ranks > 1) snprintf(ranks_note, sizeof ranks_note, " × %d ranks of %d", o.ranks, B / o.ranks);
    fprintf(stderr, "dath train: %s, %d bits, %d classes (%s-label), input %d, batch %d%s, %d images, on %s, %s%s\n",
            variant_name(v), m->K, C, l->multi ? "multi" : "single", S, B, ranks_note, l->n, be->device, o.precision,
            ck ? " (resumed)" : "");
    if (ck) fprintf(stderr, "dath train: resuming at epoch %d, batch %d, step %" PRIu64 "\n", start_epoch + 1, skip_batches, step);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = train_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int tty = isatty(2);
    double t_run = now_s();
    long imgs_run = 0;
    int stopped = 0, failed = 0;
    for (int epoch = start_epoch; epoch < o.epochs && !stopped && !failed; epoch++) {
        char note[256];
        if (ranks_epoch(rk, note, sizeof note, err, sizeof err)) { fprintf(stderr, "dath train: %s\n", err); failed = 1; break; }
        if (note[0]) fprintf(stderr, "dath train: %s\n", note);
        if (prefetch_begin_epoch(pf, epoch, err, sizeof err)) { fprintf(stderr, "dath train: %s\n", err); failed = 1; break; }
        double t_epoch = now_s(), t_mark = t_epoch, sum_j = 0, sum_j1 = 0, sum_j2 = 0, sum_j3 = 0, fetch_s = 0;
        int idle_steps = 0, steps_epoch = 0;
        int bi = 0, fetched = 0, nimg = 0;
        prefetch_batch cur, next;
        int r = train_fetch(pf, rk, &cur, skip_batches, &fetched, &bi, err, sizeof err);
        int held = 0;   /* batches taken from the prefetcher and not yet given back: cur, next */
        if (r == 0) {
            held = 1;
            if (ranks_push(rk, &cur, err, sizeof err)) r = -1;
        }
        while (r == 0) {
            int nb = ranks_rows(rk, cur.n) * o.ranks;
            if (ranks_launch(rk, (uint32_t)step, &cfg, err, sizeof err)) {
                fprintf(stderr, "%sdath train: %s\n", tty ? "\n" : "", err);
                failed = 1;
                break;
            }
            /* the next batch's decode wait and upload overlap this step; when the step is
             * already over by the time the host has the next batch (stepper_finish does
             * not wait), the device sat idle waiting for data */
            double tf0 = now_s();
            char ferr[1024] = "";
            r = train_fetch(pf, rk, &next, skip_batches, &fetched, &bi, ferr, sizeof ferr);
            if (r == 0) held = 2;
            double tf1 = now_s();
            step_losses L;
            int fin = ranks_finish(rk, r == 0 ? &next : NULL, &L, err, sizeof err);
            double tf2 = now_s();
            prefetch_release(pf, &cur);   /* every rank is done with it */
            held--;
            cur = next;
            if (r < 0 && !fin) snprintf(err, sizeof err, "%s", ferr);
            fetch_s += tf1 - tf0;
            if (tf2 - tf1 < TRAIN_IDLE_S) idle_steps++;
            steps_epoch++;
            if (fin) {
                fprintf(stderr, "%sdath train: %s\ndath train: stopped; %s is the last good checkpoint\n", tty ? "\n" : "", err, ckpath);
                failed = 1;
                break;
            }
            double t1 = now_s(), dt = t1 - t_mark;
            t_mark = t1;
            step++;
            bi++;
            nimg += nb;
            imgs_run += nb;
            sum_j += L.total * nb; sum_j1 += L.j1 * nb; sum_j2 += L.j2 * nb; sum_j3 += L.j3 * nb;
            fprintf(log, "{\"epoch\":%d,\"batch\":%d,\"step\":%" PRIu64 ",\"n\":%d,\"j\":%.9g,\"j1\":%.9g,\"j2\":%.9g,"
                         "\"j3\":%.9g,\"triplets\":%" PRId64 ",\"ms\":%.3f,\"img_per_s\":%.2f,\"fetch_ms\":%.3f,\"wait_ms\":%.3f}\n",
                    epoch + 1, bi, step, nb, L.total, L.j1, L.j2, L.j3, L.ntriplets, dt * 1e3, nb / dt, (tf1 - tf0) * 1e3,
                    (tf2 - tf1) * 1e3);
            if (ferror(log)) {
                fprintf(stderr, "%sdath train: %s: cannot write: %s\ndath train: stopped; %s is the last good checkpoint\n",
                        tty ? "\n" : "", logpath, strerror(errno), ckpath);
                failed = 1;
                break;
            }
            prefetch_stats ps;
            prefetch_stats_get(pf, &ps);
            double el = now_s() - t_run, ips = imgs_run / el;
            double left = (double)(ps.batches_estimate - bi) * B + (double)(o.epochs - epoch - 1) * l->n;
            progress(tty, epoch, o.epochs, bi, ps.batches_estimate, ips, L.total, left / (ips > 0 ? ips : 1));
            if (!tty && o.log_every > 0 && step % (uint64_t)o.log_every == 0)
                fprintf(stderr, "epoch %d step %" PRIu64 ": J %.5f (J1 %.5f J2 %.5f J3 %.5f) %.1f img/s\n", epoch + 1,
                        step, L.total, L.j1, L.j2, L.j3, nb / dt);
            if (train_stop || (o.max_steps > 0 && step >= (uint64_t)o.max_steps)) {
                stopped = 1;
                if (train_checkpoint(rk, m, &o, args, epoch, bi, step, ckpath, err, sizeof err)) {
                    fprintf(stderr, "dath train: %s\n", err);
                    failed = 1;
                } else {
                    fprintf(stderr, "%sdath train: %s at step %" PRIu64 " (epoch %d, batch %d); checkpoint %s; continue with --resume %s\n",
                            tty ? "\n" : "", train_stop ? "interrupted" : "--max-steps reached", step, epoch + 1, bi, ckpath, o.out);
                }
                break;
            }
        }
        ranks_drain(rk);
        if (held == 1) prefetch_release(pf, &cur);
        if (r < 0 && !failed && !stopped) { fprintf(stderr, "%sdath train: %s\n", tty ? "\n" : "", err); failed = 1; }
        if (failed || stopped) break;
        double et = now_s() - t_epoch;
        prefetch_stats ps;
        prefetch_stats_get(pf, &ps);
        if (fetched == 0) {   /* not one batch: nothing would ever train */
            fprintf(stderr, "dath train: epoch %d has no batch: %d of the %d images of %s could be read, and a batch "
                            "needs at least 2%s\n", epoch + 1, l->n - ps.bad, l->n, o.train,
                    o.ranks > 1 ? " (and one a rank)" : "");
            failed = 1;
            break;
        }
        skip_batches = 0;
        if (tty) fputc('\n', stderr);
        double map = NAN;
        if (o.eval_every > 0 && ((epoch + 1) % o.eval_every == 0 || epoch + 1 == o.epochs)) {
            ranks_download(rk, m);
            if (evaluate_model_map(be, ranks_ctx0(rk), m, o.query, o.database, o.root, o.topk, pc.max_pixels, &map,
                                   err, sizeof err)) {
                fprintf(stderr, "dath train: evaluation: %s\n", err);
                failed = 1;
            }
        }
        char mapbuf[64] = "";
        if (!isnan(map)) {
            if (o.topk > 0) snprintf(mapbuf, sizeof mapbuf, "  MAP@%d %.4f", o.topk, map);
            else snprintf(mapbuf, sizeof mapbuf, "  MAP@all %.4f", map);
        }
        fprintf(stderr, "epoch %d/%d: J %.5f (J1 %.5f J2 %.5f J3 %.5f)  %d images in %.1f s (%.1f img/s)  skipped %d%s%s\n",
                epoch + 1, o.epochs, sum_j / nimg, sum_j1 / nimg, sum_j2 / nimg, sum_j3 / nimg, nimg, et, nimg / et,
                ps.skipped, mapbuf, ps.cache_loaded ? "  (images from the cache file)" : "");
        /* a resumed epoch whose batches were all done before has no step of its own: its
         * means are null (JSON has no NaN) */
        char jn[4][32];
        fprintf(log, "{\"epoch_end\":%d,\"j\":%s,\"j1\":%s,\"j2\":%s,\"j3\":%s,\"images\":%d,\"seconds\":%.3f,"
                     "\"img_per_s\":%.2f,\"skipped\":%d,\"fetch_s\":%.3f,\"device_idle_steps\":%d,\"steps\":%d%s%.6f}\n",
                epoch + 1, train_json_num(jn[0], sum_j / nimg), train_json_num(jn[1], sum_j1 / nimg),
                train_json_num(jn[2], sum_j2 / nimg), train_json_num(jn[3], sum_j3 / nimg), nimg, et, nimg / et, ps.skipped,
                fetch_s, idle_steps, steps_epoch, isnan(map) ? ",\"seconds_eval\":" : ",\"map\":", isnan(map) ? 0.0 : map);
        if (fflush(log) || ferror(log)) {
            fprintf(stderr, "dath train: %s: cannot write: %s\n", logpath, strerror(errno));
            failed = 1;
        }
        if (failed) break;
        if (train_checkpoint(rk, m, &o, args, epoch + 1, 0, step, ckpath, err, sizeof err)) {
            fprintf(stderr, "dath train: %s\n", err);
            failed = 1;
        }
        if (train_stop) {
            stopped = 1;
            fprintf(stderr, "dath train: interrupted after epoch %d; checkpoint %s; continue with --resume %s\n", epoch + 1, ckpath, o.out);
        }
    }
    if (!failed && !stopped) {
        if (model_save(m, final, 0, 0, NULL, NULL, err, sizeof err)) { fprintf(stderr, "dath train: %s\n", err); failed = 1; }
        else {
            long replayed = 0;
            int captured = 0;
            ranks_graph_stats(rk, &replayed, &captured);
            char graphs[96] = "";
            if (be->graph_begin)
                snprintf(graphs, sizeof graphs, "; %ld from %d CUDA graph%s", replayed, captured, captured == 1 ? "" : "s");
            fprintf(stderr, "dath train: done: %s (%" PRIu64 " steps in %.1f s%s)\n", final, step, now_s() - t_run, graphs);
        }
    }
    rc = failed ? 1 : 0;
out:
    if (log) fclose(log);
    ranks_free(rk);
    prefetch_destroy(pf);
    list_free(l);
    model_free(m);
    if (av != argv) free(av);
    free(ck_args);
    return rc;
}
