/* loader/image.h — decoding and the cached unit: shorter side resized to R with aspect
 * kept (a proper filter, not nearest-neighbour), then the centre R×R crop, RGB uint8 HWC.
 *
 * Decoders: JPEG through libjpeg-turbo (Debian's libjpeg62-turbo, its libjpeg API),
 * with its DCT-domain downscaling (1/2, 1/4, 1/8) when the shorter side is at least
 * twice R; PNG and BMP through stb_image. Grey is expanded to RGB, alpha dropped,
 * CMYK/YCCK JPEGs converted to RGB.
 *
 * Limits, checked on the header before any pixel memory is allocated:
 *   - width × height at most max_pixels (≤ 0: IMAGE_DEFAULT_MAX_PIXELS, 64 MP);
 *   - aspect ratio (longer side / shorter side) at most IMAGE_MAX_ASPECT (64:1): beyond
 *     it the centre crop would show under 1/64 of the image, and the resized longer
 *     side R·long/short leaves the range the resampler's float coordinates hold exactly;
 *   - a progressive JPEG of more than IMAGE_MAX_JPEG_SCANS scans is refused (each scan
 *     is a pass over the whole image: crafted files use thousands to stall a decoder).
 *
 * Thread-safe: may be called from several worker threads at once (every decoder state
 * is on the caller's stack). It never calls stb_image's failure-reason function (not
 * thread-safe), never exits and never aborts on malformed input.
 * Returns 0, or -1 with a short reason in why ("missing file", "empty file",
 * "cannot decode (corrupt JPEG: ...)", "image too large: ...", ...). */
#ifndef DATH_IMAGE_H
#define DATH_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define IMAGE_DEFAULT_MAX_PIXELS 64000000LL   /* 64 MP: an 8000×8000 photo */
#define IMAGE_MAX_ASPECT 64
#define IMAGE_MAX_JPEG_SCANS 256

/* Names the transform image_load applies (decoders and their versions, filter, size and
 * crop rules). The decoded-image cache file's key includes it: it changes whenever what
 * pixels come out may change, so that no stale cache file is ever read. */
const char *image_transform_id(void);

/* out [R, R, 3]. path is read whole (at most 1 GiB). */
int image_load(const char *path, int R, int64_t max_pixels, uint8_t *out, char *why, size_t why_len);

/* The same on a file's bytes already in memory: data [len]. */
int image_decode(const unsigned char *data, size_t len, int R, int64_t max_pixels, uint8_t *out,
                 char *why, size_t why_len);

#endif
