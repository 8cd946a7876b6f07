/* checks/test_rendezvous.c — the environment bootstrap (host/dist.h, host/rendezvous.h)
 * with processes of this check (fork), in a temporary directory:
 *   - 4 processes meet: every rank gets rank 0's blob, and no file of the rendezvous is
 *     left afterwards;
 *   - files of an earlier run are there (the main file with another blob, a join file
 *     and an ack file of rank 1, a join file of another world) and ranks 1–3 start
 *     before rank 0: none takes the old blob, every one gets the new one, nothing is
 *     left;
 *   - a rank that never comes: rank 0 stops within the time limit naming it, rank 1
 *     stops naming rank 0, nothing is left;
 *   - DATH_WORLD, DATH_RANK, DATH_LOCAL_RANK, DATH_RENDEZVOUS: read into the process's
 *     rank, world and local rank; a missing or bad one is an error that names it. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../host/clock.h"
#include "../host/dist.h"
#include "../host/rendezvous.h"
#include "check.h"

enum { BLOB = 128, MAXW = 8 };   /* NCCL's unique id is 128 bytes */

static char dir[256];

/* Files in dir whose name starts with "rdv" (the rendezvous's). */
static int leftovers(char *names, size_t len) {
    DIR *d = opendir(dir);
    int n = 0;
    size_t at = 0;
    names[0] = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, "rdv", 3)) {
            n++;
            if (at < len) at += (size_t)snprintf(names + at, len - at, " %s", e->d_name);
        }
    if (d) closedir(d);
    return n;
}

/* Child: rank r meets; writes "ok HEX" or "err MESSAGE" to dir/out.r; exit 0 on ok. */
static void child(const char *path, int r, int w, const unsigned char *mine, double delay, double timeout) {
    if (delay > 0) {
        struct timespec t = {(time_t)delay, (long)((delay - (int)delay) * 1e9)};
        nanosleep(&t, NULL);
    }
    unsigned char blob[BLOB];
    memcpy(blob, mine, BLOB);
    char err[1024], out[512];
    int rc = rdv_exchange(path, r, w, blob, BLOB, timeout, err, sizeof err);
    snprintf(out, sizeof out, "%s/res.%d", dir, r);
    FILE *f = fopen(out, "w");
    if (f) {
        if (rc == 0) {
            fprintf(f, "ok ");
            for (int i = 0; i < BLOB; i++) fprintf(f, "%02x", blob[i]);
            fprintf(f, "\n");
        } else {
            fprintf(f, "err %s\n", err);
        }
        fclose(f);
    }
    _exit(rc ? 1 : 0);
}

static void result(int r, char *buf, size_t len) {
    char p[512];
    snprintf(p, sizeof p, "%s/res.%d", dir, r);
    FILE *f = fopen(p, "r");
    buf[0] = 0;
    if (f) {
        if (!fgets(buf, (int)len, f)) buf[0] = 0;
        fclose(f);
        buf[strcspn(buf, "\n")] = 0;
    }
    unlink(p);
}

static void hex(const unsigned char *b, char *out) {
    for (int i = 0; i < BLOB; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

/* Starts ranks[0..n) of a world of w (delays in seconds), waits for all; res[r] their lines. */
static double meet(const char *path, int w, const int *ranks, const double *delay, int n, double timeout,
                   const unsigned char *blob0, char res[][600], int *status) {
    pid_t pid[MAXW];
    double t0 = dath_now();
    for (int i = 0; i < n; i++) {
        unsigned char mine[BLOB];
        memset(mine, 0xEE, BLOB);   /* what a rank other than 0 holds before: never the answer */
        if (ranks[i] == 0) memcpy(mine, blob0, BLOB);
        fflush(stdout);
        pid[i] = fork();
        if (pid[i] == 0) child(path, ranks[i], w, mine, delay[i], timeout);
    }
    for (int i = 0; i < n; i++) {
        int st = 0;
        waitpid(pid[i], &st, 0);
        status[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 100;
        result(ranks[i], res[i], sizeof res[i]);
    }
    return dath_now() - t0;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) { fputs(text, f); fclose(f); }
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/dath-rdv-XXXXXX");
    if (!mkdtemp(dir)) check_skip("no temporary directory");
    char path[512], name[2048], left[1024];
    snprintf(path, sizeof path, "%s/rdv", dir);
    unsigned char blob[BLOB];
    char want[2 * BLOB + 8];
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    for (int i = 0; i < BLOB; i++) blob[i] = (unsigned char)(rand() & 0xff);
    hex(blob, want);
    char res[MAXW][600];
    int st[MAXW];

    /* 1. four processes */
    {
        int ranks[4] = {0, 1, 2, 3};
        double delay[4] = {0.2, 0, 0.1, 0.3};
        double t = meet(path, 4, ranks, delay, 4, 20, blob, res, st);
        int ok = 1;
        for (int i = 0; i < 4; i++) ok &= st[i] == 0 && !strncmp(res[i], "ok ", 3) && !strcmp(res[i] + 3, want);
        snprintf(name, sizeof name, "4 processes meet (%.2f s): every rank has rank 0's 128 bytes", t);
        if (!CHECK_TRUE(name, ok))
            for (int i = 0; i < 4; i++) printf("  rank %d: exit %d: %.200s\n", i, st[i], res[i]);
        int n = leftovers(left, sizeof left);
        snprintf(name, sizeof name, "no file of the rendezvous is left (%d:%s)", n, left);
        CHECK_TRUE(name, n == 0);
    }

    /* 2. an earlier run's files, the other ranks before rank 0 */
    {
        char old[4096], oldblob[2 * BLOB + 1];
        memset(oldblob, 'a', 2 * BLOB);
        oldblob[2 * BLOB] = 0;
        snprintf(old, sizeof old, "dath-rendezvous 1 run 4 %032d %032d %032d %032d %s\n", 1, 2, 3, 4, oldblob);
        write_file(path, old);
        snprintf(name, sizeof name, "%s.join.1", path);
        write_file(name, "dath-rendezvous 1 join 1 4 00000000000000000000000000000002\n");
        snprintf(name, sizeof name, "%s.ack.1", path);
        write_file(name, "dath-rendezvous 1 ack 1 00000000000000000000000000000002\n");
        snprintf(name, sizeof name, "%s.join.2", path);
        write_file(name, "dath-rendezvous 1 join 2 8 00000000000000000000000000000003\n");
        int ranks[4] = {1, 2, 3, 0};
        double delay[4] = {0, 0, 0.05, 0.6};
        for (int i = 0; i < BLOB; i++) blob[i] ^= 0x5a;
        hex(blob, want);
        double t = meet(path, 4, ranks, delay, 4, 20, blob, res, st);
        int ok = 1, stale = 0;
        for (int i = 0; i < 4; i++) {
            ok &= st[i] == 0 && !strncmp(res[i], "ok ", 3) && !strcmp(res[i] + 3, want);
            stale |= !strncmp(res[i], "ok aaaa", 7);
        }
        snprintf(name, sizeof name, "an earlier run's files there, ranks 1-3 first (%.2f s): every rank has the new blob, none the old", t);
        if (!CHECK_TRUE(name, ok && !stale))
            for (int i = 0; i < 4; i++) printf("  rank %d: exit %d: %.200s\n", ranks[i], st[i], res[i]);
        int n = leftovers(left, sizeof left);
        snprintf(name, sizeof name, "no file of either run is left (%d:%s)", n, left);
        CHECK_TRUE(name, n == 0);
    }

    /* 3. rank 2 of 3 never comes */
    {
        int ranks[2] = {0, 1};
        double delay[2] = {0, 0};
        double t = meet(path, 3, ranks, delay, 2, 1.5, blob, res, st);
        printf("     rank 0: %s\n     rank 1: %s\n", res[0], res[1]);
        snprintf(name, sizeof name, "a rank that never comes: rank 0 stops naming it, after the 1.5 s limit (%.2f s)", t);
        CHECK_TRUE(name, st[0] != 0 && strstr(res[0], "rank 0: ") && strstr(res[0], "rank 2 did not join") && t < 10);
        snprintf(name, sizeof name, "... and rank 1 stops naming rank 0");
        CHECK_TRUE(name, st[1] != 0 && strstr(res[1], "rank 1: ") && strstr(res[1], "rank 0 did not publish"));
        int n = leftovers(left, sizeof left);
        snprintf(name, sizeof name, "no file is left (%d:%s)", n, left);
        CHECK_TRUE(name, n == 0);
    }

    /* 4. the environment's variables */
    {
        static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "SLURM_PROCID", NULL};
        for (int i = 0; vars[i]; i++) unsetenv(vars[i]);
        dath_dist d;
        char err[1024];
        struct { const char *w, *r, *l, *p; const char *expect; } cases[] = {
            {"4", "2", "0", path, NULL},
            {"2", NULL, "0", path, "DATH_RANK is not"},
            {"2", "2", "0", path, "DATH_RANK='2': not a whole number from 0 to 1"},
            {"2", "1", NULL, path, "DATH_LOCAL_RANK"},
            {"2", "1", "1", NULL, "needs DATH_RENDEZVOUS"},
            {"0", "0", "0", path, "DATH_WORLD='0'"},
            {"2x", "0", "0", path, "DATH_WORLD='2x'"},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const char *val[4] = {cases[i].w, cases[i].r, cases[i].l, cases[i].p};
            const char *key[4] = {"DATH_WORLD", "DATH_RANK", "DATH_LOCAL_RANK", "DATH_RENDEZVOUS"};
            for (int k = 0; k < 4; k++) {
                if (val[k]) setenv(key[k], val[k], 1);
                else unsetenv(key[k]);
            }
            int rc = dist_init(&d, 5, err, sizeof err);
            if (!cases[i].expect) {
                snprintf(name, sizeof name, "DATH_WORLD=4 DATH_RANK=2 DATH_LOCAL_RANK=0: rank 2 of 4, local 0, bootstrap env");
                CHECK_TRUE(name, rc == 0 && d.kind == DIST_ENV && d.rank == 2 && d.world == 4 && d.local_rank == 0 &&
                                     !strcmp(d.rendezvous, path));
            } else {
                snprintf(name, sizeof name, "W=%s R=%s L=%s P=%s: an error naming it (%.90s)", val[0], val[1] ? val[1] : "-",
                         val[2] ? val[2] : "-", val[3] ? "set" : "-", rc ? err : "no error");
                CHECK_TRUE(name, rc != 0 && strstr(err, cases[i].expect));
            }
        }
        for (int k = 0; k < 4; k++) unsetenv((const char *[]){"DATH_WORLD", "DATH_RANK", "DATH_LOCAL_RANK", "DATH_RENDEZVOUS"}[k]);
        setenv("SLURM_PROCID", "0", 1);
        setenv("SLURM_STEP_NUM_TASKS", "4", 1);
        int rc = dist_init(&d, 5, err, sizeof err);
        snprintf(name, sizeof name, "a Slurm step of 4 tasks without MPI or DATH_*: an error, not 4 runs alone (%.60s)", err);
        CHECK_TRUE(name, rc != 0 && strstr(err, "4 tasks"));
        unsetenv("SLURM_PROCID");
        unsetenv("SLURM_STEP_NUM_TASKS");
        rc = dist_init(&d, 5, err, sizeof err);
        CHECK_TRUE("no variable at all: one process", rc == 0 && d.kind == DIST_NONE && d.world == 1 && d.rank == 0);
    }
    rmdir(dir);
    return check_finish();
}
