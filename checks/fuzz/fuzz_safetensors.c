/* checks/fuzz/fuzz_safetensors.c — libFuzzer target: safetensors files (host/safetensors.c),
 * as `dath info`, --resume, --init and encode/eval --model read them.
 * The input is the whole file. st_read must refuse it with a message naming the file, or
 * accept it with every tensor's bytes = product of its shape × its dtype's size, lying
 * inside the file's data (every byte is read here); metadata keys and values are C
 * strings found again by st_meta. */
#include "../../host/safetensors.h"
#include "fuzz.h"

static size_t fuzz_dtype_size(const char *d) {
    if (!strcmp(d, "F64") || !strcmp(d, "I64") || !strcmp(d, "U64")) return 8;
    if (!strcmp(d, "F32") || !strcmp(d, "I32") || !strcmp(d, "U32")) return 4;
    if (!strcmp(d, "F16") || !strcmp(d, "BF16") || !strcmp(d, "I16") || !strcmp(d, "U16")) return 2;
    if (!strcmp(d, "U8") || !strcmp(d, "I8") || !strcmp(d, "BOOL")) return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[600], err[1024];
    fuzz_path(path, sizeof path, "f.safetensors");
    fuzz_write(path, data, size);
    err[0] = 0;
    st_file *f = st_read(path, err, sizeof err);
    if (!f) {
        if (!strstr(err, path)) fuzz_fail("an error that does not name the file");
        return 0;
    }
    const char *lo = f->blob, *hi = lo + f->blob_len;
    for (int i = 0; i < f->ntensors; i++) {
        const st_tensor *t = &f->tensors[i];
        size_t n = fuzz_dtype_size(t->dtype);
        if (!n || t->ndim < 0 || t->ndim > ST_MAX_DIMS) fuzz_fail("a bad dtype or rank");
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) fuzz_fail("a negative dimension");
            n *= (size_t)t->shape[d];
        }
        if (n != t->nbytes) fuzz_fail("bytes that do not match the shape");
        const char *p = t->data;
        if (p < lo + 8 || p > hi || t->nbytes > (size_t)(hi - p)) fuzz_fail("tensor data outside the file");
        fuzz_touch(t->data, t->nbytes);
        if (st_find(f, t->name) == NULL) fuzz_fail("a tensor st_find does not find");
    }
    for (int i = 0; i < f->nmeta; i++) {
        fuzz_touch(f->meta_values[i], strlen(f->meta_values[i]));
        if (!st_meta(f, f->meta_keys[i])) fuzz_fail("a metadata key st_meta does not find");
    }
    st_close(f);
    return 0;
}
