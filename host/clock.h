/* host/clock.h — the one clock the host code times itself with: seconds on the
 * monotonic clock (unaffected by changes of the wall clock), as a double. */
#ifndef DATH_CLOCK_H
#define DATH_CLOCK_H

#include <time.h>

static inline double dath_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#endif
