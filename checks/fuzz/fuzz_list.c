/* checks/fuzz/fuzz_list.c — libFuzzer target: image lists (loader/list.c).
 * The input is a list file; list_read must refuse it with a message naming the file or
 * accept it with n ≥ 1 rows of C ≥ 1 labels, each 0 or 1, every path non-empty and
 * without a blank, line numbers increasing, `multi` as the labels say. */
#include "../../loader/list.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[600], err[1024];
    fuzz_path(path, sizeof path, "list.txt");
    fuzz_write(path, data, size);
    err[0] = 0;
    dath_list *l = list_read(path, "root", err, sizeof err);
    if (!l) {
        if (!strstr(err, path)) fuzz_fail("an error that does not name the list");
        return 0;
    }
    if (l->n < 1 || l->C < 1) fuzz_fail("an accepted list without rows or labels");
    int multi = 0;
    for (int i = 0; i < l->n; i++) {
        const char *name = l->names[i];
        if (!name[0] || strpbrk(name, " \t\r\n") || (name[0] != '/' && strncmp(l->paths[i], "root/", 5)))
            fuzz_fail("a bad path");
        if (i && l->lines[i] <= l->lines[i - 1]) fuzz_fail("line numbers that do not increase");
        int ones = 0;
        for (int j = 0; j < l->C; j++) {
            uint8_t v = l->labels[(size_t)i * l->C + j];
            if (v > 1) fuzz_fail("a label that is not 0 or 1");
            ones += v;
        }
        if (ones != 1) multi = 1;
    }
    if (multi != l->multi) fuzz_fail("multi does not match the labels");
    list_free(l);
    return 0;
}
