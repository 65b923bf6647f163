/* fuzz_fits.c -- the FITS image reader the mosaics use (ct_fits_read_image) on damaged
 * files: header and pixels read, or the file refused with a code. Seeds: small images
 * written by contimg. */
#include "fitsimage.h"
#include "fuzz.h"

#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_scratch_file(data, size, ".fits");
    if (path == NULL)
        return 0;
    ct_fits_image_info info;
    float *pixels = NULL;
    ct_err err;
    if (ct_fits_read_image(path, &info, &pixels, &err) == CT_OK)
        free(pixels);
    unlink(path);
    return 0;
}
