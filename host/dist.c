/* host/dist.c — the bootstrap of a run of several processes (see dist.h). */
#include "dist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "rendezvous.h"

#ifdef DATH_MPI
#include <mpi.h>
#endif

const char *dist_kind_name(dist_kind k) { return k == DIST_MPI ? "mpi" : k == DIST_ENV ? "env" : "none"; }

int dist_have_mpi(void) {
#ifdef DATH_MPI
    return 1;
#else
    return 0;
#endif
}

/* An environment variable as a whole number in [lo, hi]: 1 when set and valid, 0 when
 * unset, -1 (with a message) when set to anything else. */
static int dist_env_int(const char *name, long lo, long hi, int *out, char *err, size_t err_len) {
    const char *s = getenv(name);
    if (!s) return 0;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        snprintf(err, err_len, "%s='%.40s': not a whole number from %ld to %ld", name, s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 1;
}

/* Which MPI launcher variable is set, or NULL. */
static const char *dist_mpi_launcher(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i])) return vars[i];
    return NULL;
}

/* Tasks of this Slurm step (1 when not in one). */
static int dist_slurm_tasks(void) {
    const char *s = getenv("SLURM_STEP_NUM_TASKS");
    if (!s) s = getenv("SLURM_NTASKS");
    if (!s || !getenv("SLURM_PROCID")) return 1;
    long v = strtol(s, NULL, 10);
    return v > 1 && v < 1 << 24 ? (int)v : 1;
}

#ifdef DATH_MPI
/* "MPI_Xxx: the library's message" */
static void dist_mpi_err(char *err, size_t err_len, int rank, const char *what, int code) {
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(code, s, &n) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", code);
    snprintf(err, err_len, "rank %d: %s: %s", rank, what, s);
}

static int dist_mpi_init(dath_dist *d, char *err, size_t err_len) {
    int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) {
        dist_mpi_err(err, err_len, 0, "MPI_Init_thread", rc);
        return -1;
    }
    d->mpi_inited = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
    if (provided < MPI_THREAD_FUNNELED) {
        snprintf(err, err_len, "rank %d: MPI gives thread level %d, dath needs MPI_THREAD_FUNNELED (%d)", d->rank,
                 provided, MPI_THREAD_FUNNELED);
        return -1;
    }
    MPI_Comm node;
    rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS) {
        dist_mpi_err(err, err_len, d->rank, "MPI_Comm_split_type (the processes of this node)", rc);
        return -1;
    }
    MPI_Comm_rank(node, &d->local_rank);
    MPI_Comm_size(node, &d->local_world);
    MPI_Comm_free(&node);
    d->kind = DIST_MPI;
    return 0;
}

/* Waits for req within the time limit; -1 with a message naming what. */
static int dist_mpi_wait(dath_dist *d, MPI_Request *req, const char *what, char *err, size_t err_len) {
    double t0 = dath_now();
    for (;;) {
        int flag = 0, rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            dist_mpi_err(err, err_len, d->rank, what, rc);
            return -1;
        }
        if (flag) return 0;
        if (dath_now() - t0 > d->timeout_s) {
            snprintf(err, err_len, "rank %d: %s did not complete within %.0f s (another rank died or hangs)", d->rank,
                     what, d->timeout_s);
            return -1;
        }
        struct timespec t = {0, 200000};
        nanosleep(&t, NULL);
    }
}
#endif

int dist_init(dath_dist *d, double timeout_s, char *err, size_t err_len) {
    memset(d, 0, sizeof *d);
    d->world = 1;
    d->local_world = 1;
    d->timeout_s = timeout_s;
    if (gethostname(d->host, sizeof d->host - 1)) snprintf(d->host, sizeof d->host, "?");
    const char *launcher = dist_mpi_launcher();
    int tasks = dist_slurm_tasks();
    if (launcher) {
#ifdef DATH_MPI
        if (dist_mpi_init(d, err, err_len)) return -1;
        if (tasks > 1 && d->world != tasks) {
            snprintf(err, err_len, "rank %d: the Slurm step has %d tasks but MPI sees a world of %d (srun needs "
                     "--mpi=pmix, or --mpi=pmi2, for Open MPI)", d->rank, tasks, d->world);
            return -1;
        }
        return 0;
#else
        const char *ws = getenv("OMPI_COMM_WORLD_SIZE");
        if (!ws) ws = getenv("PMI_SIZE");
        if (ws && strcmp(ws, "1")) {
            snprintf(err, err_len, "%s is set (an MPI launcher started %s processes), but this dath was built without "
                     "MPI: install libopenmpi-dev and rebuild, or launch with DATH_RANK/DATH_WORLD", launcher, ws);
            return -1;
        }
#endif
    }
    int w = 0, r = 0, lr = 0, s;
    if ((s = dist_env_int("DATH_WORLD", 1, 1 << 20, &w, err, err_len)) < 0) return -1;
    if (s == 0) {
        if (tasks > 1) {
            snprintf(err, err_len, "this is one of %d tasks of a Slurm step, but neither MPI (srun --mpi=pmix, with a "
                     "dath built with MPI) nor DATH_RANK/DATH_WORLD says which: every task would train alone", tasks);
            return -1;
        }
        return 0;   /* one process */
    }
    if ((s = dist_env_int("DATH_RANK", 0, w - 1, &r, err, err_len)) <= 0) {
        if (s == 0) snprintf(err, err_len, "DATH_WORLD=%d is set but DATH_RANK is not", w);
        return -1;
    }
    if ((s = dist_env_int("DATH_LOCAL_RANK", 0, w - 1, &lr, err, err_len)) <= 0) {
        if (s == 0) snprintf(err, err_len, "rank %d: DATH_WORLD=%d is set but DATH_LOCAL_RANK (the device on this node) is not", r, w);
        return -1;
    }
    const char *rdv = getenv("DATH_RENDEZVOUS");
    if (w > 1 && (!rdv || !*rdv)) {
        snprintf(err, err_len, "rank %d: DATH_WORLD=%d needs DATH_RENDEZVOUS, a path on a file system every process sees", r, w);
        return -1;
    }
    if (rdv && strlen(rdv) >= sizeof d->rendezvous - 16) {
        snprintf(err, err_len, "rank %d: DATH_RENDEZVOUS is too long", r);
        return -1;
    }
    d->kind = DIST_ENV;
    d->rank = r;
    d->world = w;
    d->local_rank = lr;
    d->local_world = 0;
    snprintf(d->rendezvous, sizeof d->rendezvous, "%s", rdv ? rdv : "");
    return 0;
}

int dist_share(dath_dist *d, void *blob, size_t len, char *err, size_t err_len) {
    if (d->world == 1) return 0;
    if (len > RDV_MAX_BLOB) {
        snprintf(err, err_len, "rank %d: dist_share: %zu bytes (at most %d)", d->rank, len, RDV_MAX_BLOB);
        return -1;
    }
    if (d->kind == DIST_ENV) return rdv_exchange(d->rendezvous, d->rank, d->world, blob, len, d->timeout_s, err, err_len);
#ifdef DATH_MPI
    if (d->kind == DIST_MPI) {
        MPI_Request req;
        int rc = MPI_Ibcast(blob, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS) {
            dist_mpi_err(err, err_len, d->rank, "MPI_Ibcast", rc);
            return -1;
        }
        return dist_mpi_wait(d, &req, "the broadcast of rank 0's id (MPI_Ibcast)", err, err_len);
    }
#endif
    snprintf(err, err_len, "rank %d: dist_share: no bootstrap", d->rank);
    return -1;
}

void dist_finalize(dath_dist *d) {
#ifdef DATH_MPI
    if (d->mpi_inited) MPI_Finalize();
#endif
    d->mpi_inited = 0;
}

void dist_abort(dath_dist *d, int status) {
    fflush(stdout);
    fflush(stderr);
#ifdef DATH_MPI
    if (d->mpi_inited) MPI_Abort(MPI_COMM_WORLD, status);
#endif
    _exit(status);
}
