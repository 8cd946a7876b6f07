/* loader/list.h — image lists in the deep-hashing community's format (DESIGN.md §4):
 * one image a line, `relative/path.jpg 0 1 0 … 1`, C space-separated 0/1 labels.
 *
 * list_read validates the whole file before anything uses it: a label that is not
 * 0/1, a label count that differs from the first line's, an empty path or an empty
 * list is an error naming the file, the line number and what is wrong.
 * Ownership: the list owns every string and array; list_free releases them. */
#ifndef DATH_LIST_H
#define DATH_LIST_H

#include <stddef.h>
#include <stdint.h>

typedef struct dath_list {
    char *file;          /* the list's path, for messages */
    int n, C;            /* images, classes */
    char **names;        /* [n] paths as written in the list */
    char **paths;        /* [n] paths resolved against root */
    int *lines;          /* [n] line number of each image in the file (1-based) */
    uint8_t *labels;     /* [n, C] 0/1 */
    int multi;           /* 0: every row has exactly one 1 (single-label J2), 1: multi-label */
} dath_list;

/* Reads and validates file; paths resolve against root (NULL or "" = as written).
 * Returns NULL with "FILE:LINE: what is wrong" in err. */
dath_list *list_read(const char *file, const char *root, char *err, size_t err_len);
void list_free(dath_list *l);

/* The labels of n of the list's rows: [n, C], row i the labels of rows[i] (for the
 * codes of the images that could be read). malloc'd, the caller's; NULL when out of
 * memory. */
uint8_t *list_rows_labels(const dath_list *l, const int *rows, int n);

/* The list's rows NOT among rows [n] (ascending), as text: "LINE PATH\n" each (LINE
 * 1-based in the file, PATH as written): what `dath encode` and `dath features` write
 * beside their output as OUT.skipped.txt. *len its length; malloc'd, the caller's; NULL
 * when out of memory. */
char *list_rows_skipped(const dath_list *l, const int *rows, int n, size_t *len);

#endif
