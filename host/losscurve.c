/* host/losscurve.c — loss curves from a run's log (see losscurve.h). */
#include "losscurve.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"

/* The number after `"key":` in a JSON line, into *v. Returns 1 when it is there and
 * finite (a null or anything else: 0). The key is matched with its quotes and colon, so
 * "j" never matches "j1". */
static int losscurve_num(const char *line, const char *key, double *v) {
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p) return 0;
    p += strlen(pat);
    char *end;
    errno = 0;
    double x = strtod(p, &end);
    if (end == p || errno || !isfinite(x) || (*end != ',' && *end != '}')) return 0;
    *v = x;
    return 1;
}

/* One CSV's state while it is written: its file and the smallest loss it holds. */
typedef struct losscurve_csv {
    FILE *f;
    char path[4200];
    int rows;
    double min;   /* the smallest J, J1, J2, J3 written */
} losscurve_csv;

int losscurve_write(const char *dir, int *steps, int *epochs, char *err, size_t err_len) {
    char logpath[4200];
    snprintf(logpath, sizeof logpath, "%s/log.jsonl", dir);
    FILE *log = fopen(logpath, "r");
    if (!log) {
        snprintf(err, err_len, "%s: cannot open: %s", logpath, strerror(errno));
        return -1;
    }
    static const char *names[2] = {"loss_steps.csv", "loss_epochs.csv"}, *xname[2] = {"step", "epoch"};
    static const char *keys[4] = {"j", "j1", "j2", "j3"};
    losscurve_csv csv[2];
    int rc = -1;
    char *line = NULL;
    size_t cap = 0;
    for (int k = 0; k < 2; k++) {
        snprintf(csv[k].path, sizeof csv[k].path, "%s/%s", dir, names[k]);
        csv[k].f = fopen(csv[k].path, "w");
        csv[k].rows = 0;
        csv[k].min = INFINITY;
        if (!csv[k].f) {
            snprintf(err, err_len, "%s: cannot create: %s", csv[k].path, strerror(errno));
            if (k) fclose(csv[0].f);
            fclose(log);
            return -1;
        }
        fprintf(csv[k].f, "%s,J,J1,J2,J3\n", xname[k]);
    }
    while (getline(&line, &cap, log) > 0) {
        int k = !strncmp(line, "{\"epoch\":", 9) ? 0 : !strncmp(line, "{\"epoch_end\":", 13) ? 1 : -1;
        if (k < 0) continue;
        double x, v[4];
        int ok = losscurve_num(line, k ? "epoch_end" : "step", &x);
        for (int i = 0; i < 4 && ok; i++) ok = losscurve_num(line, keys[i], &v[i]);
        if (!ok) continue;   /* a resumed epoch with no step of its own has null means */
        fprintf(csv[k].f, "%.0f,%.9g,%.9g,%.9g,%.9g\n", x, v[0], v[1], v[2], v[3]);
        csv[k].rows++;
        for (int i = 0; i < 4; i++)
            if (v[i] < csv[k].min) csv[k].min = v[i];
    }
    if (ferror(log)) {
        snprintf(err, err_len, "%s: read failed: %s", logpath, strerror(errno));
        goto done;
    }
    for (int k = 0; k < 2; k++) {
        int bad = ferror(csv[k].f) | fclose(csv[k].f);
        csv[k].f = NULL;
        if (bad) {
            snprintf(err, err_len, "%s: write failed: %s", csv[k].path, strerror(errno));
            goto done;
        }
    }
    if (steps) *steps = csv[0].rows;
    if (epochs) *epochs = csv[1].rows;
    const plot_series s_step[4] = {{"loss_steps.csv", 1, 2, "J"}, {"loss_steps.csv", 1, 3, "J1 (triplet)"},
                                   {"loss_steps.csv", 1, 4, "J2 (classification)"},
                                   {"loss_steps.csv", 1, 5, "J3 (quantisation)"}};
    const plot_series s_epoch[4] = {{"loss_epochs.csv", 1, 2, "J"}, {"loss_epochs.csv", 1, 3, "J1 (triplet)"},
                                    {"loss_epochs.csv", 1, 4, "J2 (classification)"},
                                    {"loss_epochs.csv", 1, 5, "J3 (quantisation)"}};
    /* epochs are whole numbers: a tic at each, or at every tenth of the run when longer */
    const int xstep = csv[1].rows <= 10 ? 1 : (csv[1].rows + 9) / 10;
    /* a log scale shows the terms side by side (J3 is ~100 times smaller than J2 early
     * on); a value of 0 (J1 of a batch without triplets) has no place on it */
    plot_panel p[2] = {
        {"Training losses, every step", "step", "loss (mean over the batch)", s_step, 4, 0, csv[0].min > 0, 0, 1,
         "top right"},
        {"Training losses, mean of each epoch", "epoch", "loss (mean over the epoch)", s_epoch, 4, 0,
         csv[1].min > 0, 0, 0, "top right", xstep},
    };
    int np = 0;
    plot_panel use[2];
    for (int k = 0; k < 2; k++)   /* a curve needs two points (one epoch so far: the steps only) */
        if (csv[k].rows >= 2) use[np++] = p[k];
    rc = np ? plot_png_panels(dir, "loss.png", use, np, 900, np * 380, err, err_len) : 2;
done:
    for (int k = 0; k < 2; k++)
        if (csv[k].f) fclose(csv[k].f);
    free(line);
    fclose(log);
    return rc;
}

void losscurve_epoch(const char *dir) {
    static int told;   /* gnuplot's absence is said once */
    char err[4400];
    int rc = losscurve_write(dir, NULL, NULL, err, sizeof err);
    if (rc < 0) fprintf(stderr, "dath train: loss curves: %s (training goes on)\n", err);
    if (rc == 1 && !told++)
        fprintf(stderr, "dath train: gnuplot not found (Debian: apt-get install gnuplot-nox): loss.png skipped; "
                "the losses are in %s/loss_steps.csv and loss_epochs.csv\n", dir);
}
