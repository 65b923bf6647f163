/* fuzz_uvh5.c -- the UVH5 reader and validator (ct_uvh5_open) on damaged files: whatever
 * the bytes, a file is opened and read within its shape or refused with a code; never a
 * crash, a hang or a read out of bounds. Seeds: small simulated observations. */
#include "fuzz.h"
#include "uvh5.h"

#include <hdf5.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) { /* HDF5's own stack traces: one per refused file */
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        quiet = true;
    }
    const char *path = fuzz_scratch_file(data, size, ".hdf5");
    if (path == NULL)
        return 0;
    ct_uvh5_file *f = NULL;
    ct_err err;
    if (ct_uvh5_open(path, &f, &err) == CT_OK) {
        const ct_uvh5_header *h = ct_uvh5_header_get(f);
        /* The first and the last baseline-time, as a reader's ranks would. */
        const size_t per = (size_t)h->Nfreqs * (size_t)h->Npols;
        if (per > 0 && per < ((size_t)1 << 24)) {
            float *vis = malloc(per * 2 * sizeof *vis), *ns = malloc(per * sizeof *ns);
            bool *fl = malloc(per * sizeof *fl);
            if (vis && ns && fl) {
                ct_uvh5_read_blts(f, 0, 1, vis, fl, ns, &err);
                ct_uvh5_read_blts(f, (size_t)h->Nblts - 1, 1, vis, fl, ns, &err);
                ct_uvh5_read_blts(f, (size_t)h->Nblts, 1, vis, fl, ns, &err); /* past the end */
            }
            free(vis);
            free(ns);
            free(fl);
        }
        ct_uvh5_close(f, &err);
    }
    unlink(path);
    return 0;
}
