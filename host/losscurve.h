/* host/losscurve.h — a training run's loss curves (the paper's Figure 9), redrawn by
 * `dath train` at the end of every epoch.
 *
 * Reads DIR/log.jsonl as the training loop writes it (host/train.c: a step line
 * {"epoch":E,"batch":…,"step":S,…,"j":…,"j1":…,"j2":…,"j3":…,…} and an epoch summary
 * {"epoch_end":E,"j":…,"j1":…,"j2":…,"j3":…,…}; other lines, and lines without those
 * five finite numbers, are passed over) and writes
 *   DIR/loss_steps.csv    step,J,J1,J2,J3        every step
 *   DIR/loss_epochs.csv   epoch,J,J1,J2,J3       every epoch's means
 *   DIR/loss.png          two panels (per step, per epoch), J, J1, J2, J3 each, the y
 *                         axis logarithmic when every value it shows is positive
 *                         (host/plot.h; its script DIR/loss.gp is kept)
 * The log is dath's own file, scanned for those keys only (as the resume's trimming of
 * it does); nothing it holds is executed or trusted beyond numbers. */
#ifndef DATH_LOSSCURVE_H
#define DATH_LOSSCURVE_H

#include <stddef.h>

/* Returns 0 when loss.png was drawn, 1 when gnuplot is not available (the CSVs are
 * written, the plot is not), 2 when neither CSV has two rows yet (nothing to draw: a
 * panel needs two points; after one epoch the plot has the per-step panel only), -1
 * with a message naming the file. *steps and *epochs
 * (may be NULL) receive the rows written. */
int losscurve_write(const char *dir, int *steps, int *epochs, char *err, size_t err_len);

/* What `dath train` calls at the end of every epoch: losscurve_write, with a failure,
 * or gnuplot's absence (once a process: "loss.png skipped"), said on stderr. Training
 * goes on either way: a plot is not worth a run. */
void losscurve_epoch(const char *dir);

#endif
