/* host/plot.c — PNG plots through gnuplot (see plot.h). */
#include "plot.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* 1 when an executable named `name` is on PATH. */
static int plot_on_path(const char *name) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    char buf[4096];
    while (*path) {
        size_t len = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)(len ? len : 1), len ? path : ".", name);
        if (access(buf, X_OK) == 0) return 1;
        path += len;
        if (*path == ':') path++;
    }
    return 0;
}

const char *plot_terminal(void) {
    static int done;
    static const char *term;
    if (done) return term;
    done = 1;
    if (!plot_on_path("gnuplot")) return NULL;
    /* `set terminal` with no argument lists the terminals, one a line, name first */
    FILE *p = popen("gnuplot -e 'set terminal' 2>&1 </dev/null", "r");
    if (!p) return NULL;
    int cairo = 0, png = 0;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        char name[64];
        if (sscanf(line, " %63s", name) != 1) continue;
        if (strcmp(name, "pngcairo") == 0) cairo = 1;
        if (strcmp(name, "png") == 0) png = 1;
    }
    pclose(p);
    term = cairo ? "pngcairo" : png ? "png" : NULL;
    return term;
}

/* Writes s as a gnuplot single-quoted string (a quote is doubled). */
static void plot_quote(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

/* One panel's settings and its plot command. */
static void plot_panel_script(FILE *f, const plot_panel *p) {
    fprintf(f, "set title ");
    plot_quote(f, p->title);
    fprintf(f, "\nset xlabel ");
    plot_quote(f, p->xlabel);
    fprintf(f, "\nset ylabel ");
    plot_quote(f, p->ylabel);
    fprintf(f, "\nset grid\nset key %s\n", p->key ? p->key : "bottom left");
    fprintf(f, "%s\n%s\n", p->logx ? "set logscale x" : "unset logscale x", p->logy ? "set logscale y" : "unset logscale y");
    fprintf(f, "%s\n", p->unit_y ? "set yrange [0:1]" : "set autoscale y");
    if (p->xstep > 0) fprintf(f, "set xtics %d\n", p->xstep);
    else fprintf(f, "set xtics autofreq\n");
    fprintf(f, "plot ");
    for (int i = 0; i < p->nseries; i++) {
        plot_quote(f, p->series[i].csv);
        fprintf(f, " skip 1 using %d:%d with %s ", p->series[i].xcol, p->series[i].ycol,
                p->lines_only ? "lines" : "linespoints pointsize 0.5");
        if (p->series[i].title) {
            fprintf(f, "title ");
            plot_quote(f, p->series[i].title);
        } else {
            fprintf(f, "notitle");
        }
        fprintf(f, "%s", i + 1 < p->nseries ? ", \\\n     " : "\n");
    }
}

int plot_png(const char *dir, const char *png, const char *title, const char *xlabel,
             const char *ylabel, const plot_series *series, int nseries, int logx, int unit_y,
             char *err, size_t err_len) {
    const plot_panel p = {title, xlabel, ylabel, series, nseries, logx, 0, unit_y, 0, NULL, 0};
    return plot_png_panels(dir, png, &p, 1, 800, 600, err, err_len);
}

int plot_png_panels(const char *dir, const char *png, const plot_panel *panels, int npanels, int width,
                    int height, char *err, size_t err_len) {
    const char *term = plot_terminal();
    if (!term) return 1;
    char script[4096], stem[1024];
    size_t plen = strlen(png);
    snprintf(stem, sizeof stem, "%.*s", (int)(plen > 4 && strcmp(png + plen - 4, ".png") == 0 ? plen - 4 : plen), png);
    snprintf(script, sizeof script, "%s/%s.gp", dir, stem);
    FILE *f = fopen(script, "w");
    if (!f) {
        snprintf(err, err_len, "%s: cannot create: %s", script, strerror(errno));
        return -1;
    }
    fprintf(f, "# %s.gp — written by dath; run `gnuplot %s.gp` in this directory\n", stem, stem);
    fprintf(f, "set terminal %s size %d,%d%s noenhanced\n", term, width, height,
            strcmp(term, "pngcairo") == 0 ? " font 'sans,11'" : "");
    fprintf(f, "set output ");
    plot_quote(f, png);
    fprintf(f, "\nset datafile separator ','\n");
    if (npanels > 1) fprintf(f, "set multiplot layout %d,1\n", npanels);
    for (int i = 0; i < npanels; i++) plot_panel_script(f, &panels[i]);
    if (npanels > 1) fprintf(f, "unset multiplot\n");
    if (fclose(f)) {
        snprintf(err, err_len, "%s: write failed: %s", script, strerror(errno));
        return -1;
    }

    /* gnuplot NAME.gp, run inside dir */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addchdir_np(&fa, dir);
    char gp_name[1100];
    snprintf(gp_name, sizeof gp_name, "%s.gp", stem);
    char *argv[] = {"gnuplot", gp_name, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        snprintf(err, err_len, "%s: cannot run gnuplot: %s", script, strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(err, err_len, "%s: waiting for gnuplot: %s", script, strerror(errno));
            return -1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, err_len, "gnuplot failed on %s (exit %d); the CSVs are written",
                 script, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    return 0;
}
