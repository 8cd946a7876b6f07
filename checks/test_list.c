/* checks/test_list.c — image list parsing (loader/list.c): a well-formed list with
 * CRLF, tabs, trailing spaces, a byte-order mark and trailing blank lines parses to
 * the right paths, labels and line numbers; each kind of malformed list gives its own
 * message, naming the file and the line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "../loader/list.h"

static char dir[64];

static const char *write_list(const char *name, const char *text) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) check_skip("cannot write a temporary file");
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return path;
}

/* The list must be refused with a message that starts "PATH:LINE:" (line > 0) or
 * "PATH:" (line 0) and contains `what`. */
static void expect_error(const char *name, const char *text, int line, const char *what) {
    const char *path = write_list(name, text);
    char err[512] = "", want[320];
    dath_list *l = list_read(path, NULL, err, sizeof err);
    if (line > 0) snprintf(want, sizeof want, "%s:%d: ", path, line);
    else snprintf(want, sizeof want, "%s: ", path);
    int ok = !l && strncmp(err, want, strlen(want)) == 0 && strstr(err, what) != NULL;
    char label[160];
    snprintf(label, sizeof label, "%s refused at line %d: %s", name, line, what);
    if (!ok) printf("     got: %s\n", l ? "(accepted)" : err);
    CHECK_TRUE(label, ok);
    list_free(l);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/dath_test_list_XXXXXX");
    if (!mkdtemp(dir)) check_skip("cannot make a temporary directory");

    /* a good list: BOM, CRLF, a tab, trailing spaces, an absolute path, blank lines at the end */
    const char *good = "\xEF\xBB\xBF" "a/x.jpg 0 1 0 1\r\n"
                       "b.jpg\t1 0 0 0   \n"
                       "/abs/c.png 0 0 0 0\r\n"
                       "d.jpg 0 0 1 0\n"
                       "\n  \r\n\n";
    char err[512] = "";
    dath_list *l = list_read(write_list("good.txt", good), "/data/root", err, sizeof err);
    if (!l) printf("     error: %s\n", err);
    CHECK_TRUE("good list parses", l != NULL);
    if (l) {
        static const uint8_t want_labels[16] = {0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
        CHECK_TRUE("good list: 4 images, 4 classes", l->n == 4 && l->C == 4);
        CHECK_TRUE("good list: labels", memcmp(l->labels, want_labels, 16) == 0);
        CHECK_TRUE("good list: names as written", strcmp(l->names[0], "a/x.jpg") == 0 &&
                                                      strcmp(l->names[1], "b.jpg") == 0);
        CHECK_TRUE("good list: paths against root", strcmp(l->paths[0], "/data/root/a/x.jpg") == 0 &&
                                                         strcmp(l->paths[1], "/data/root/b.jpg") == 0);
        CHECK_TRUE("good list: absolute path kept", strcmp(l->paths[2], "/abs/c.png") == 0);
        CHECK_TRUE("good list: line numbers", l->lines[0] == 1 && l->lines[3] == 4);
        CHECK_TRUE("good list: a row without labels makes it multi-label", l->multi == 1);
        list_free(l);
    }
    l = list_read(write_list("single.txt", "p0.jpg 1 0 0\np1.jpg 0 0 1\np2.jpg 0 1 0\n"), "", err, sizeof err);
    CHECK_TRUE("one 1 per row: single-label (multi = 0), root \"\" keeps paths",
               l && l->multi == 0 && strcmp(l->paths[1], "p1.jpg") == 0);
    list_free(l);
    l = list_read(write_list("multi.txt", "p0.jpg 1 0 1\np1.jpg 0 0 1\n"), "r/", err, sizeof err);
    CHECK_TRUE("two 1s in a row: multi-label; root with a slash", l && l->multi == 1 &&
                                                                  strcmp(l->paths[0], "r/p0.jpg") == 0);
    list_free(l);
    l = list_read(write_list("nonl.txt", "p0.jpg 1 0"), NULL, err, sizeof err);
    CHECK_TRUE("last line without a newline", l && l->n == 1 && l->C == 2);
    list_free(l);

    /* each malformed kind: its own message, with the line */
    expect_error("label2.txt", "a.jpg 0 1 0\nb.jpg 1 0 0\nc.jpg 0 2 0\n", 3, "label 2 is '2', not 0 or 1");
    expect_error("labelfloat.txt", "a.jpg 0 1.0 0\n", 1, "label 2 is '1.0', not 0 or 1");
    /* a path with a space: the format cannot hold one (HashNet's lists cannot either) */
    expect_error("space.txt", "a.jpg 0 1\nmy photo.jpg 1 0\n", 2,
                 "label 1 is 'photo.jpg', not 0 or 1 (if the path has a space or tab in it: this list format cannot hold one");
    expect_error("space_first.txt", "with space.jpg 0 1\n", 1, "label 1 is 'space.jpg', not 0 or 1 (if the path has a space");
    expect_error("labelneg.txt", "a.jpg 0 1 0\nb.jpg -1 0 0\n", 2, "label 1 is '-1', not 0 or 1");
    expect_error("count.txt", "a.jpg 0 1 0 0\nb.jpg 1 0 0\n", 2, "3 labels, but the first line (line 1) has 4");
    expect_error("count_more.txt", "a.jpg 0 1\nb.jpg 1 0\nc.jpg 1 0 1\n", 3, "3 labels, but the first line (line 1) has 2");
    expect_error("emptypath.txt", "a.jpg 0 1\n 0 1\n", 2, "empty path");
    expect_error("emptypath_tab.txt", "\tb.jpg 0 1\n", 1, "empty path");
    expect_error("nolabels.txt", "a.jpg\nb.jpg\n", 1, "no labels after the path");
    expect_error("pathonly.txt", "a.jpg 1 0\nb.jpg\n", 2, "0 labels, but the first line (line 1) has 2");
    expect_error("blank_inside.txt", "a.jpg 0 1\n\nb.jpg 1 0\n", 2, "blank line (blank lines are allowed only at the end");
    expect_error("empty.txt", "", 0, "empty list");
    expect_error("onlyblank.txt", "\n \r\n\t\n", 0, "empty list");
    expect_error("crmid.txt", "a.jpg 0 1\nb.jpg 1\r0\n", 2, "not 0 or 1");
    {
        char missing[128];
        snprintf(missing, sizeof missing, "%s/no_such_list.txt", dir);
        l = list_read(missing, NULL, err, sizeof err);
        char want[200];
        snprintf(want, sizeof want, "%s: cannot read the list: ", missing);
        CHECK_TRUE("missing list file refused: cannot read the list",
                   !l && strncmp(err, want, strlen(want)) == 0);
    }
    {
        const char nul[] = "a.jpg 0 1\nb.j\0pg 1 0\n";
        char path[256];
        snprintf(path, sizeof path, "%s/nul.txt", dir);
        FILE *f = fopen(path, "wb");
        fwrite(nul, 1, sizeof nul - 1, f);
        fclose(f);
        l = list_read(path, NULL, err, sizeof err);
        CHECK_TRUE("NUL byte refused at line 2", !l && strstr(err, ":2: NUL byte") != NULL);
    }

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", dir);
    return check_finish();
}
