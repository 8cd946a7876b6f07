/* host/safetensors.h — reading and writing safetensors files.
 *
 * Format: 8-byte little-endian header length, a JSON header
 *   {"__metadata__": {"k": "v", ...}, "name": {"dtype": "F32", "shape": [...],
 *    "data_offsets": [begin, end]}, ...}
 * then the data. dath writes F32 tensors (and reads F32, plus I64/I32/U8 as raw bytes).
 * Writes are atomic: a temporary file beside the target, fsync, rename, fsync of the
 * directory, so a crash never leaves a broken file under the target's name.
 *
 * Ownership: st_file owns everything it points to; st_close frees it. Functions
 * returning int give 0 on success and -1 with a message (naming the file) in err. */
#ifndef DATH_SAFETENSORS_H
#define DATH_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "../loader/atomic.h"   /* atomic_write, shared with the other writers (.npy, checkpoints) */

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    char *name;
    char dtype[8];           /* "F32", "I64", ... */
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data;        /* points into the file's data (read) */
} st_tensor;

typedef struct st_file {
    int ntensors;
    st_tensor *tensors;
    int nmeta;
    char **meta_keys, **meta_values;
    void *blob;              /* the whole file */
    size_t blob_len;
} st_file;

/* Reads a whole file. Returns NULL with a message in err. */
st_file *st_read(const char *path, char *err, size_t err_len);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_meta(const st_file *f, const char *key);   /* NULL when absent */

/* A writer collects tensors (the data is copied) and metadata, then writes them. */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
/* dtype "F32" for float data; shape of ndim dims; data of nbytes bytes. */
int st_writer_add(st_writer *w, const char *name, const char *dtype, int ndim,
                  const int64_t *shape, const void *data, size_t nbytes);
/* Like st_writer_add but keeps a pointer (data must outlive st_writer_write). */
int st_writer_add_ref(st_writer *w, const char *name, const char *dtype, int ndim,
                      const int64_t *shape, const void *data, size_t nbytes);
int st_writer_meta(st_writer *w, const char *key, const char *value);
int st_writer_write(st_writer *w, const char *path, char *err, size_t err_len);
void st_writer_free(st_writer *w);


#endif
