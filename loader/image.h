/* loader/image.h — decoding (stb_image: JPEG, PNG; grayscale expanded to RGB) and the
 * cached unit: shorter side resized to R with aspect kept (a proper filter, not
 * nearest-neighbour), then the centre R×R crop, RGB uint8 HWC.
 *
 * Thread-safe: may be called from several worker threads at once. It never calls
 * stb_image's failure-reason function (not thread-safe) and never exits.
 * Returns 0, or -1 with a short reason in why ("missing file", "empty file",
 * "cannot decode (corrupt, truncated or unsupported format)", ...). */
#ifndef DATH_IMAGE_H
#define DATH_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Names the transform image_load applies (decoder, filter, size and crop rules). The
 * decoded-image cache file's key includes it: change it whenever image.c changes what
 * pixels come out, so that no stale cache file is ever read. */
#define IMAGE_TRANSFORM_ID "stb_image 2.27 rgb; stbir 0.97 triangle linear clamp; short side R, floor long; centre crop round-half-even; v1"

/* out [R, R, 3] */
int image_load(const char *path, int R, uint8_t *out, char *why, size_t why_len);

#endif
