/* loader/atomic.h — atomic file writes, for every file dath writes (checkpoints, codes,
 * the decoded cache): the bytes go to a temporary file beside the target
 * (TARGET.tmp.PID.N), which is fsync'd and then renamed over the target, and the
 * directory is fsync'd, so a crash never leaves a broken file under the target's name.
 * (In loader/, the lowest room that writes files, so that the loader's cache and the
 * host's safetensors and .npy writers share it without an upward include.)
 *
 * A group writes several files that belong together (codes and their labels): every
 * temporary is written and fsync'd first, and only when all of them are complete are
 * they renamed, so a full disk or a write error leaves none of the new files (and the
 * old ones, if any, as they were). The renames themselves follow one another: a crash
 * between two of them can leave a new file beside an old one.
 *
 * A process killed while writing (kill -9, power loss) leaves its temporary behind;
 * atomic_remove_stale removes those of processes that no longer run.
 *
 * Functions returning int give 0 on success and -1 with a message naming the file in
 * err. */
#ifndef DATH_ATOMIC_H
#define DATH_ATOMIC_H

#include <stddef.h>
#include <stdint.h>

/* Writes parts[0..nparts-1] (lens[i] bytes each) to path atomically. */
int atomic_write(const char *path, const void *const *parts, const size_t *lens, int nparts,
                 char *err, size_t err_len);
/* The same, given up (the temporary removed, the target as it was) as soon as *cancel
 * becomes non-zero, checked between chunks of at most 64 MiB (cancel may be NULL); a
 * cancelled write's message says "cancelled". */
int atomic_write_cancel(const char *path, const void *const *parts, const size_t *lens, int nparts,
                        const int *cancel, char *err, size_t err_len);

typedef struct atomic_group atomic_group;

atomic_group *atomic_group_new(void);   /* NULL when out of memory */
/* Writes the temporary of path (fsync'd). On failure the group's other temporaries stay
 * until atomic_group_free. */
int atomic_group_add(atomic_group *g, const char *path, const void *const *parts, const size_t *lens,
                     int nparts, char *err, size_t err_len);
/* Renames every temporary over its target, in the order added, and fsyncs the
 * directories. */
int atomic_group_commit(atomic_group *g, char *err, size_t err_len);
/* Removes the temporaries not renamed, frees the group. NULL is allowed. */
void atomic_group_free(atomic_group *g);

/* Removes PATH.tmp.PID and PATH.tmp.PID.* files whose process PID no longer runs (left
 * by a writer that was killed). Returns how many were removed; *bytes (may be NULL) gets
 * their total size. Files of running processes, and anything else, are left alone. */
int atomic_remove_stale(const char *path, uint64_t *bytes);

#endif
