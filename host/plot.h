/* host/plot.h — PNG line plots of CSV columns, drawn by gnuplot (Debian's gnuplot-nox).
 *
 * The terminal is pngcairo when this gnuplot has it, else png. Each plot's gnuplot
 * script is written beside its PNG (same name, .gp) and kept, so a user can restyle
 * or overlay curves by editing it and running `gnuplot NAME.gp` in that directory;
 * the script names its files relative to the directory. */
#ifndef DATH_PLOT_H
#define DATH_PLOT_H

#include <stddef.h>

/* The gnuplot terminal that will be used ("pngcairo" or "png"), or NULL when gnuplot
 * is not on PATH or offers neither. Detected once per process. */
const char *plot_terminal(void);

/* One curve a series: columns xcol:ycol (1-based) of a CSV file with one header line. */
typedef struct plot_series {
    const char *csv;         /* file name inside the plot's directory */
    int xcol, ycol;
    const char *title;       /* legend entry; NULL for none */
} plot_series;

/* One plot of a figure: its series, labels and axes. */
typedef struct plot_panel {
    const char *title, *xlabel, *ylabel;
    const plot_series *series;
    int nseries;
    int logx, logy;          /* logarithmic axes */
    int unit_y;              /* the y axis from 0 to 1 */
    int lines_only;          /* lines without points (many points) */
    const char *key;         /* gnuplot's legend position ("top right", ...); NULL: bottom left */
    int xstep;               /* > 0: x tics every xstep (whole-number x, e.g. epochs); 0: gnuplot's own */
} plot_panel;

/* Panels stacked top to bottom in one PNG of width × height pixels (gnuplot's
 * multiplot), through the script dir/<png without .png>.gp. Returns as plot_png. */
int plot_png_panels(const char *dir, const char *png, const plot_panel *panels, int npanels, int width,
                    int height, char *err, size_t err_len);

/* Draws the series into dir/png (800×600), through the script dir/<png without .png>.gp.
 * logx: logarithmic x axis. The y axis runs from 0 to 1 when unit_y is set.
 * Returns 0; 1 when gnuplot is unavailable (nothing written); -1 with a message
 * naming the file when gnuplot failed. */
int plot_png(const char *dir, const char *png, const char *title, const char *xlabel, const char *ylabel,
             const plot_series *series, int nseries, int logx, int unit_y, char *err,
             size_t err_len);

#endif
