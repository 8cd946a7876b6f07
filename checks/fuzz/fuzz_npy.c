/* checks/fuzz/fuzz_npy.c — libFuzzer target: .npy files (host/npy.c), as `dath eval`
 * reads codes and labels. The input is the whole file. npy_read_u8 must refuse it with a
 * message naming the file (and no data), or accept it with rows, cols ≥ 0 and exactly
 * rows × cols bytes after a header of the declared length (every byte is read here). */
#include "../../host/npy.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[600], err[1024];
    fuzz_path(path, sizeof path, "a.npy");
    fuzz_write(path, data, size);
    err[0] = 0;
    uint8_t *a = NULL;
    int64_t rows = -1, cols = -1;
    if (npy_read_u8(path, &a, &rows, &cols, err, sizeof err)) {
        if (a || !strstr(err, path)) fuzz_fail("an error with data, or one that does not name the file");
        return 0;
    }
    if (rows < 0 || cols < 0 || !a) fuzz_fail("a bad shape");
    size_t n = (size_t)rows * (size_t)cols;
    size_t head = data[6] == 1 ? 10 + ((size_t)data[8] | (size_t)data[9] << 8)
                               : 12 + ((size_t)data[8] | (size_t)data[9] << 8 | (size_t)data[10] << 16 | (size_t)data[11] << 24);
    if (head + n != size) fuzz_fail("data that does not fill the file");
    if (n && memcmp(a, data + size - n, n)) fuzz_fail("data that are not the file's last bytes");
    fuzz_touch(a, n);
    free(a);
    return 0;
}
