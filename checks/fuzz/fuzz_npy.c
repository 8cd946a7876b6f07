/* checks/fuzz/fuzz_npy.c — libFuzzer target: .npy files (host/npy.c), as `dath eval`
 * reads codes and labels and `dath search` maps its database. The input is the whole
 * file. npy_read_u8 must refuse it with a message naming the file (and no data), or
 * accept it with rows, cols ≥ 0 and exactly rows × cols bytes after a header of the
 * declared length (every byte is read here). npy_map_u8 must agree with it: refuse the
 * same files (naming the file), and map the accepted ones to the same shape and bytes. */
#include "../../host/npy.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[600], err[1024];
    fuzz_path(path, sizeof path, "a.npy");
    fuzz_write(path, data, size);
    err[0] = 0;
    uint8_t *a = NULL;
    int64_t rows = -1, cols = -1;
    npy_map m;
    char merr[1024] = "";
    int mapped = npy_map_u8(path, &m, merr, sizeof merr) == 0;
    if (npy_read_u8(path, &a, &rows, &cols, err, sizeof err)) {
        if (a || !strstr(err, path)) fuzz_fail("an error with data, or one that does not name the file");
        if (mapped || !strstr(merr, path)) fuzz_fail("npy_map_u8 maps a file npy_read_u8 refuses, or its error does not name the file");
        return 0;
    }
    if (!mapped) fuzz_fail("npy_map_u8 refuses a file npy_read_u8 reads");
    if (m.rows != rows || m.cols != cols) fuzz_fail("npy_map_u8's shape differs from npy_read_u8's");
    if (rows * cols && (!m.data || memcmp(m.data, a, (size_t)(rows * cols))))
        fuzz_fail("npy_map_u8's bytes differ from npy_read_u8's");
    npy_unmap(&m);
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
