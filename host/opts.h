/* host/opts.h — one table per command drives the parser, --help and the logged
 * configuration, so they cannot drift apart.
 *
 *   static opt_spec spec[] = {
 *       {"bits", OPT_INT, &bits, "64", "hash code length K"},
 *       {"model", OPT_STR, &model, NULL, "model file (required)", OPT_REQUIRED},
 *       {0}
 *   };
 *   if (opts_parse("dath init", synopsis, spec, argc, argv, &pos, err, sizeof err)) ...
 *
 * Long options only: --name VALUE or --name=VALUE; OPT_FLAG takes no value.
 * OPT_ENUM takes one of `choices` (NULL-terminated) and stores its index in an int:
 *       {"precision", OPT_ENUM, &prec, "fp32", "GEMM precision", 0, backend_precisions},
 * so "'x': expected fp32, tf32 or bf16" is written once, here, for every command.
 * OPT_LIST collects text values into an opt_list (ptr): the option may be given several
 * times, and each time takes every argument after it up to the next --option
 * (`--image a.jpg b.jpg --image c.jpg` gives three); it has no default, and its
 * array is malloc'd (opt_list_free).
 * Defaults are parsed from the `def` string before argv is read.
 * Numbers are decimal only: an integer is [+-]digits, a number [+-]digits[.digits][e±N]
 * (no hexadecimal, no inf or nan, no leading space). flags OPT_POSITIVE (> 0) and
 * OPT_NONNEG (≥ 0) refuse other values with a message naming the option; --help shows
 * the range. OPT_RUN marks the options that make up a run's configuration (what a
 * checkpoint records and a resumed run reads back, host/train.h): opts_to_json and
 * opts_to_args write the options of the flags given in their mask. */
#ifndef DATH_OPTS_H
#define DATH_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { OPT_STR, OPT_INT, OPT_U64, OPT_FLOAT, OPT_FLAG, OPT_ENUM, OPT_LIST } opt_type;

/* The values of an OPT_LIST option, in the order given: v [n] points into argv. */
typedef struct opt_list {
    const char **v;
    int n;
} opt_list;
void opt_list_free(opt_list *l);
enum { OPT_REQUIRED = 1, OPT_POSITIVE = 2, OPT_NONNEG = 4, OPT_RUN = 8 };

typedef struct opt_spec {
    const char *name;    /* without the leading "--" */
    opt_type type;
    void *ptr;           /* const char **, int *, uint64_t *, float *, int * (flag, enum), opt_list * */
    const char *def;     /* default as text, NULL for none */
    const char *help;
    int flags;           /* OPT_REQUIRED, OPT_POSITIVE, OPT_NONNEG, OPT_RUN */
    const char *const *choices;   /* OPT_ENUM: the accepted values, NULL-terminated */
} opt_spec;

/* Parses argv[1..argc-1] (argv[0] is the command name). Positional arguments are
 * collected in order into positional[0..*npos-1] (at most max_pos; more is an error).
 * --help prints the usage to stdout and returns 1.
 * Returns 0 on success, 1 after --help, -1 with a message naming the bad option or
 * value in err. */
int opts_parse(const char *cmd, const char *synopsis, const opt_spec *spec, int argc,
               char **argv, char **positional, int max_pos, int *npos, char *err,
               size_t err_len);

/* Prints "usage: <cmd> <synopsis>" and one line per option with its default. */
void opts_usage(FILE *f, const char *cmd, const char *synopsis, const opt_spec *spec);

/* Writes the current values of the options whose flags meet `mask` (0: every option)
 * as a JSON object (no newline) into buf: strings (NULL: null), numbers, flags as true
 * or false, an enum as its name. Returns the length written, or -1 when buf is too
 * small. */
int opts_to_json(const opt_spec *spec, int mask, char *buf, size_t len);

/* The same options as a command line for opts_parse, its words separated by tabs
 * ("--bits\t64\t--lr\t1e-05…"; a flag only when set, a NULL string left out): what a
 * checkpoint stores so that a resumed run parses it again before its own command
 * line. Values must not contain tabs. Returns the length, or -1 when buf is too small. */
int opts_to_args(const opt_spec *spec, int mask, char *buf, size_t len);

#endif
