/* host/cli.h — the subcommands of `dath`. Each takes argv with argv[0] = its name,
 * prints its own errors (naming the bad option, value, file or line) and returns the
 * process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef DATH_CLI_H
#define DATH_CLI_H

int cmd_init(int argc, char **argv);    /* host/cmd_model.c */
int cmd_info(int argc, char **argv);    /* host/cmd_model.c */
int cmd_step(int argc, char **argv);    /* host/cmd_step.c */
int cmd_train(int argc, char **argv);   /* host/cmd_train.c */
int cmd_encode(int argc, char **argv);  /* host/cmd_encode.c */
int cmd_eval(int argc, char **argv);    /* host/cmd_eval.c */
int cmd_search(int argc, char **argv);  /* host/cmd_search.c */
int cmd_features(int argc, char **argv); /* host/cmd_features.c */
int cmd_mkdemo(int argc, char **argv);  /* host/demo.c */
int cmd_baseline(int argc, char **argv); /* host/cmd_baseline.c */
int cmd_cost(int argc, char **argv);    /* host/cmd_cost.c */

#endif
