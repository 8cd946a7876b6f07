/* host/npy.h — 2-D uint8 .npy files: packed codes and 0/1 label rows (DESIGN.md §7);
 * 2-D float32 files: features (npy_read_f32 / npy_write_f32, at the end).
 *
 * Written: format version 1.0, dtype '|u1', C order, shape (rows, cols); atomically
 * (loader/atomic.h), so a crash never leaves a broken file; npy_add_u8 writes one file of
 * a group that is renamed into place only when every file of it is complete.
 * Read: versions 1.0, 2.0 and 3.0; dtype '|u1' (also '<u1', '>u1', and '|b1', whose
 * bytes are 0/1), C order, exactly two dimensions. Anything else is an error that
 * names the file and what is wrong. The file's size must match the header's shape
 * before anything is allocated for the data.
 *
 * Functions return 0, or -1 with a message naming the file in err. *data is
 * malloc'd and belongs to the caller (free). */
#ifndef DATH_NPY_H
#define DATH_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "../loader/atomic.h"

/* data [rows, cols] */
int npy_read_u8(const char *path, uint8_t **data, int64_t *rows, int64_t *cols, char *err,
                size_t err_len);

/* The same file mapped instead of read (mmap, read-only, shared with the page cache):
 * for a database of codes that should not be copied into memory. The header is checked
 * as npy_read_u8 checks it (the same parser), and the file must hold exactly
 * rows × cols bytes after it. m->data [rows, cols] points into the mapping (NULL when
 * rows × cols is 0) until npy_unmap. Returns 0, or -1 with a message naming the file. */
typedef struct npy_map {
    const uint8_t *data;     /* [rows, cols] */
    int64_t rows, cols;
    void *base;              /* the mapping (NULL: none) and its length */
    size_t len;
} npy_map;
int npy_map_u8(const char *path, npy_map *m, char *err, size_t err_len);
void npy_unmap(npy_map *m);

/* data [rows, cols]; rows may be 0 */
int npy_write_u8(const char *path, const uint8_t *data, int64_t rows, int64_t cols, char *err,
                 size_t err_len);
/* The same as one file of group g (written now, renamed by atomic_group_commit). */
int npy_add_u8(atomic_group *g, const char *path, const uint8_t *data, int64_t rows, int64_t cols, char *err,
               size_t err_len);

/* Features, float32 [rows, cols]. Read: dtype '<f4' or '>f4', or float64 ('<f8', '>f8',
 * numpy's default), converted to float32 (a value outside float32's range is an error;
 * NaN and infinity are passed through for the caller to judge). The file's size is
 * checked against rows × cols × itemsize, with overflow-safe products, before anything
 * is allocated for the data. Written: version 1.0, '<f4' (the host's order), C order,
 * atomically. *data is malloc'd and belongs to the caller (free). */
int npy_read_f32(const char *path, float **data, int64_t *rows, int64_t *cols, char *err,
                 size_t err_len);
int npy_write_f32(const char *path, const float *data, int64_t rows, int64_t cols, char *err,
                  size_t err_len);
/* The same as one file of group g (written now, renamed by atomic_group_commit). */
int npy_add_f32(atomic_group *g, const char *path, const float *data, int64_t rows, int64_t cols, char *err,
                size_t err_len);

#endif
