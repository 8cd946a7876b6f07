/* checks/fuzz/fuzz_image.c — libFuzzer target: image decoding (loader/image.c): the JPEG
 * marker walk and libjpeg-turbo, stb_image's PNG and BMP decoders, the pixel and aspect
 * limits, the DCT-scaled decode and the resize + centre crop. The input is the file's
 * bytes (image_decode, what image_load does after reading the file). R = 16, so images
 * of 32, 64, 128 pixels and more on their shorter side take the 1/2, 1/4, 1/8 DCT
 * scalings; a limit of 65,536 pixels (256 × 256) keeps every input under a millisecond
 * (an image declared large but carrying little data is still decoded whole: libjpeg fills
 * what is missing). image_decode must return 0, or -1 with a reason. */
#include "../../loader/image.h"
#include "fuzz.h"

enum { FUZZ_R = 16, FUZZ_MAX_PIXELS = 65536 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static uint8_t out[FUZZ_R * FUZZ_R * 3];   /* [R, R, 3] */
    char why[256];
    why[0] = 0;
    memset(out, 0xA5, sizeof out);
    int rc = image_decode(data, size, FUZZ_R, FUZZ_MAX_PIXELS, out, why, sizeof why);
    if (rc != 0 && (rc != -1 || !why[0])) fuzz_fail("a failure without a reason");
    if (rc == 0) fuzz_touch(out, sizeof out);
    return 0;
}
