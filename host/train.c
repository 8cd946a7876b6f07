/* host/train.c — the training loop (see train.h). */
#include "train.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../loader/atomic.h"
#include "../loader/prefetch.h"
#include "clock.h"
#include "dist.h"
#include "feed.h"
#include "losscurve.h"
#include "net.h"
#include "ranks.h"
#include "retrieval.h"

/* A step whose stepper_finish returns within this many seconds was over before the
 * host had fetched the next batch: the device waited for data (on an asynchronous
 * backend; on the CPU backend every step computes inside stepper_launch). */
#define TRAIN_IDLE_S 50e-6

static volatile sig_atomic_t train_stop;
static void train_on_signal(int sig) { train_stop = sig; }

/* Writes DIR/last.safetensors (atomic): parameters, RMSProp state, the position and
 * the run configuration. */
static int train_checkpoint(train_ranks *rk, const train_config *c, int epoch, int batch_in_epoch,
                            uint64_t step, const char *path, char *err, size_t err_len) {
    if (ranks_first(rk) != 0) return 0;   /* several processes: rank 0 writes it */
    ranks_download(rk, c->m);
    char e[32], b[32], s[32], seed[32];
    snprintf(e, sizeof e, "%d", epoch);
    snprintf(b, sizeof b, "%d", batch_in_epoch);
    snprintf(s, sizeof s, "%" PRIu64, step);
    snprintf(seed, sizeof seed, "%" PRIu64, c->seed);
    const char *keys[] = {"epoch", "batch_in_epoch", "step", "seed", "rng", "args", "config"};
    const char *vals[] = {e, b, s, seed, "philox4x32-10 keyed by (seed, epoch|step, sample): no state beyond these",
                          c->config_args, c->config_json};
    return model_save(c->m, path, 1, 7, keys, vals, err, err_len);
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

int train_prepare_dir(const char *dir, const dath_model *m, int resumed, uint64_t step, int epochs_done,
                      char *err, size_t err_len) {
    char ckpath[4096], logpath[4096], final[4096];
    snprintf(ckpath, sizeof ckpath, "%s/last.safetensors", dir);
    snprintf(logpath, sizeof logpath, "%s/log.jsonl", dir);
    snprintf(final, sizeof final, "%s/model.safetensors", dir);
    /* temporaries of a run killed while it wrote a checkpoint (kill -9, power loss) */
    uint64_t stale_bytes = 0, stale_more = 0;
    int stale = atomic_remove_stale(ckpath, &stale_bytes);
    stale += atomic_remove_stale(final, &stale_more);
    if (stale)
        fprintf(stderr, "dath train: removed %d temporary file%s (%.1f MiB) left in %s by a run killed while writing\n",
                stale, stale == 1 ? "" : "s", (double)(stale_bytes + stale_more) / (1 << 20), dir);
    if (train_check_space(dir, ckpath, m, err, err_len)) return -1;
    if (resumed) {
        int dropped = train_trim_log(logpath, step, epochs_done, err, err_len);
        if (dropped < 0) return -1;
        if (dropped)
            fprintf(stderr, "dath train: %s: dropped %d line%s written after the checkpoint (step %" PRIu64 "): "
                    "those steps run again\n", logpath, dropped, dropped == 1 ? "" : "s", step);
    }
    return 0;
}

int train_run(const train_config *c) {
    const dath_backend *be = c->be;
    dath_model *m = c->m;
    const dath_list *l = c->list;
    char err[8192], ckpath[4096], logpath[4096], final[4096];
    snprintf(ckpath, sizeof ckpath, "%s/last.safetensors", c->out);
    snprintf(logpath, sizeof logpath, "%s/log.jsonl", c->out);
    snprintf(final, sizeof final, "%s/model.safetensors", c->out);
    int B = c->batch, S = m->S, R = transform_cache_side(S), C = m->C;
    int skip_batches = c->skip_batches;
    uint64_t step = c->start_step;
    const step_config cfg = c->step;
    /* several processes: this one is rank `me` of `procs`; rank 0 alone logs, writes and evaluates */
    int procs = c->dist && c->dist->world > 1 ? c->dist->world : 1, me = procs > 1 ? c->dist->rank : 0;
    prefetch_config pc = {.list = l, .mode = PREFETCH_TRAIN, .R = R, .S = S, .B = B, .seed = c->seed,
                          .workers = c->workers, .ring = 4, .strict = c->strict, .cache_dir = c->cache,
                          .host_alloc = be->host_alloc, .host_free = be->host_free,
                          .max_pixels = c->max_pixels, .max_warnings = me ? -1 : 0,
                          .shard_rank = me, .shard_world = procs};
    dath_prefetch *pf = prefetch_create(&pc, err, sizeof err);
    ranks_config rc_ = {.be = be, .m = m, .pf = pf, .dist = c->dist, .world = c->ranks, .B = B, .R = R, .S = S,
                        .C = C, .precision = c->precision, .conv_algo = c->conv_algo, .data_mode = c->data_mode, .graphs = c->graphs,
                        .work0 = c->eval_every && me == 0 ? net_work_bytes(m, B, B) : 0,
                        .bucket_bytes = c->bucket_bytes, .comm_timeout_s = c->comm_timeout_s};
    train_ranks *rk = pf ? ranks_create(&rc_, err, sizeof err) : NULL;
    FILE *log = rk ? fopen(me ? "/dev/null" : logpath, c->resumed ? "a" : "w") : NULL;
    int rc = 1;
    if (!rk || !log) {
        if (!rk) fprintf(stderr, "dath train: %s\n", err);
        else fprintf(stderr, "dath train: %s: cannot open: %s\n", logpath, strerror(errno));
        goto out;
    }
    if (ranks_share(rk, pf, c->start_epoch, err, sizeof err)) {
        fprintf(stderr, "dath train: %s\n", err);
        goto out;
    }
    int world = ranks_world(rk);
    setvbuf(log, NULL, _IOLBF, 0);   /* every line reaches the file when it is written: a kill loses none */
    fprintf(log, "{\"config\":%s,\"invocation\":%s,\"start_step\":%" PRIu64 "}\n", c->config_json,
            c->invocation_json ? c->invocation_json : "null", step);
    char ranks_note[96] = "";
    if (world > 1)
        snprintf(ranks_note, sizeof ranks_note, " × %d %s of %d", world, procs > 1 ? "processes" : "ranks", B / world);
    if (me == 0)
        fprintf(stderr, "dath train: %s, %d bits, %d classes (%s-label), input %d, batch %d%s, %d images, on %s, %s%s%s%s\n",
                variant_name(m->variant), m->K, C, l->multi ? "multi" : "single", S, B, ranks_note, l->n, be->device,
                backend_precisions[c->precision], !strcmp(be->name, "cuda") ? ", convolutions " : "",
                !strcmp(be->name, "cuda") ? backend_conv_algo_name(c->conv_algo) : "", c->resumed ? " (resumed)" : "");
    if (c->resumed && me == 0)
        fprintf(stderr, "dath train: resuming at epoch %d, batch %d, step %" PRIu64 "\n", c->start_epoch + 1,
                skip_batches, step);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = train_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int tty = me == 0 && isatty(2);
    int steps_here = 0;   /* steps this process ran: the second is the first with buckets */
    double t_run = dath_now();
    long imgs_run = 0;
    int stopped = 0, failed = 0;
    for (int epoch = c->start_epoch; epoch < c->epochs && !stopped && !failed; epoch++) {
        char note[256];
        if (ranks_epoch(rk, note, sizeof note, err, sizeof err)) { fprintf(stderr, "dath train: %s\n", err); failed = 1; break; }
        if (note[0] && me == 0) fprintf(stderr, "dath train: %s\n", note);
        if (prefetch_begin_epoch(pf, epoch, err, sizeof err)) { fprintf(stderr, "dath train: %s\n", err); failed = 1; break; }
        double t_epoch = dath_now(), t_mark = t_epoch, sum_j = 0, sum_j1 = 0, sum_j2 = 0, sum_j3 = 0, fetch_s = 0;
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
            int nb = ranks_rows(rk, cur.n) * world;
            ranks_vote(rk, train_stop != 0);
            if (ranks_launch(rk, (uint32_t)step, &cfg, err, sizeof err)) {
                fprintf(stderr, "%sdath train: %s\n", tty ? "\n" : "", err);
                failed = 1;
                break;
            }
            /* the next batch's decode wait and upload overlap this step; when the step is
             * already over by the time the host has the next batch (stepper_finish does
             * not wait), the device sat idle waiting for data */
            double tf0 = dath_now();
            char ferr[1024] = "";
            r = train_fetch(pf, rk, &next, skip_batches, &fetched, &bi, ferr, sizeof ferr);
            if (r == 0) held = 2;
            double tf1 = dath_now();
            step_losses L;
            int fin = ranks_finish(rk, r == 0 ? &next : NULL, &L, err, sizeof err);
            double tf2 = dath_now();
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
            double t1 = dath_now(), dt = t1 - t_mark;
            t_mark = t1;
            step++;
            if (++steps_here == 2 && c->bucket_trace && me == 0) {   /* the first learns the buckets' order */
                char terr[1024];
                if (stepper_write_trace(ranks_stepper0(rk), c->bucket_trace, (uint32_t)step, terr, sizeof terr))
                    fprintf(stderr, "dath train: --bucket-trace: %s\n", terr);
            }
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
            double el = dath_now() - t_run, ips = imgs_run / el;
            double left = (double)(ps.batches_estimate - bi) * B + (double)(c->epochs - epoch - 1) * l->n;
            progress(tty, epoch, c->epochs, bi, ps.batches_estimate, ips, L.total, left / (ips > 0 ? ips : 1));
            if (!tty && me == 0 && c->log_every > 0 && step % (uint64_t)c->log_every == 0)
                fprintf(stderr, "epoch %d step %" PRIu64 ": J %.5f (J1 %.5f J2 %.5f J3 %.5f) %.1f img/s\n", epoch + 1,
                        step, L.total, L.j1, L.j2, L.j3, nb / dt);
            /* several processes stop together: after the step on which any of them voted */
            int stop_now = procs > 1 ? L.stop_votes > 0 : train_stop != 0;
            if (stop_now || (c->max_steps > 0 && step >= (uint64_t)c->max_steps)) {
                stopped = 1;
                if (train_checkpoint(rk, c, epoch, bi, step, ckpath, err, sizeof err)) {
                    fprintf(stderr, "dath train: %s\n", err);
                    failed = 1;
                } else if (me == 0) {
                    fprintf(stderr, "%sdath train: %s at step %" PRIu64 " (epoch %d, batch %d); checkpoint %s; continue with --resume %s\n",
                            tty ? "\n" : "", stop_now ? "interrupted" : "--max-steps reached", step, epoch + 1, bi, ckpath, c->out);
                }
                break;
            }
        }
        ranks_drain(rk);
        if (held == 1) prefetch_release(pf, &cur);
        if (r < 0 && !failed && !stopped) { fprintf(stderr, "%sdath train: %s\n", tty ? "\n" : "", err); failed = 1; }
        if (failed || stopped) break;
        double et = dath_now() - t_epoch;
        prefetch_stats ps;
        prefetch_stats_get(pf, &ps);
        if (fetched == 0) {   /* not one batch: nothing would ever train */
            fprintf(stderr, "dath train: epoch %d has no batch: %d of the %d images of %s could be read, and a batch "
                            "needs at least 2%s\n", epoch + 1, l->n - ps.bad, l->n, c->list_file,
                    world > 1 ? " (and one a rank)" : "");
            failed = 1;
            break;
        }
        skip_batches = 0;
        if (tty) fputc('\n', stderr);
        double map = NAN;
        if (c->eval_every > 0 && ((epoch + 1) % c->eval_every == 0 || epoch + 1 == c->epochs)) {
            if (me == 0) {
                ranks_download(rk, m);
                if (retrieval_model_map(be, ranks_ctx0(rk), m, c->query, c->database, c->root, B, c->workers,
                                        c->max_pixels, c->topk, &map, err, sizeof err)) {
                    fprintf(stderr, "dath train: evaluation: %s\n", err);
                    failed = 1;
                }
            }
            if (!failed && ranks_meet(rk, err, sizeof err)) {   /* the others wait for rank 0's evaluation */
                fprintf(stderr, "dath train: after the evaluation: %s\n", err);
                failed = 1;
            }
        }
        char mapbuf[64] = "";
        if (!isnan(map)) {
            if (c->topk > 0) snprintf(mapbuf, sizeof mapbuf, "  MAP@%d %.4f", c->topk, map);
            else snprintf(mapbuf, sizeof mapbuf, "  MAP@all %.4f", map);
        }
        if (me == 0)
        fprintf(stderr, "epoch %d/%d: J %.5f (J1 %.5f J2 %.5f J3 %.5f)  %d images in %.1f s (%.1f img/s)  skipped %d%s%s\n",
                epoch + 1, c->epochs, sum_j / nimg, sum_j1 / nimg, sum_j2 / nimg, sum_j3 / nimg, nimg, et, nimg / et,
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
        losscurve_epoch(c->out);   /* OUT/loss.png and its CSVs, from the log so far */
        if (train_checkpoint(rk, c, epoch + 1, 0, step, ckpath, err, sizeof err)) {
            fprintf(stderr, "dath train: %s\n", err);
            failed = 1;
        }
        if (train_stop && procs == 1) {   /* several processes: the next step's votes decide */
            stopped = 1;
            fprintf(stderr, "dath train: interrupted after epoch %d; checkpoint %s; continue with --resume %s\n", epoch + 1, ckpath, c->out);
        }
    }
    if (!failed && !stopped && me == 0) {
        if (model_save(m, final, 0, 0, NULL, NULL, err, sizeof err)) { fprintf(stderr, "dath train: %s\n", err); failed = 1; }
        else {
            long replayed = 0;
            int captured = 0;
            ranks_graph_stats(rk, &replayed, &captured);
            char graphs[96] = "";
            if (be->graph_begin)
                snprintf(graphs, sizeof graphs, "; %ld from %d CUDA graph%s", replayed, captured, captured == 1 ? "" : "s");
            fprintf(stderr, "dath train: done: %s (%" PRIu64 " steps in %.1f s%s)\n", final, step, dath_now() - t_run, graphs);
        }
    }
    if (procs > 1) {   /* each process decodes its share, then its slices' misses (loader/prefetch.h) */
        prefetch_stats ps;
        prefetch_stats_get(pf, &ps);
        fprintf(stderr, "dath train: rank %d decoded %d of the %d images\n", me, ps.decoded, l->n);
    }
    rc = failed ? 1 : 0;
out:
    if (log) fclose(log);
    ranks_free(rk);
    prefetch_destroy(pf);
    return rc;
}
