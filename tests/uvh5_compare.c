/*
 * uvh5_compare.c -- reads two UVH5 files with contimg's reader and checks
 * they hold the same observation: every count, antenna, time, uvw,
 * frequency, visibility, flag and sample count. Used to read files that
 * pyuvdata wrote from ours (whatever layout pyuvdata chose).
 * Usage: uvh5_compare OURS THEIRS [OURS THEIRS ...]
 */
#include "testutil.h"
#include "uvh5.h"

#include <stdlib.h>
#include <string.h>

static void compare(const char *a_path, const char *b_path)
{
    ct_uvh5_file *a = NULL, *b = NULL;
    ct_err err;
    REQUIRE_OK(ct_uvh5_open(a_path, &a, &err), err);
    if (ct_uvh5_open(b_path, &b, &err) != CT_OK) {
        CHECK(false, "open %s: %s", b_path, err.msg);
        ct_uvh5_close(a, &err);
        return;
    }
    const ct_uvh5_header *x = ct_uvh5_header_get(a), *y = ct_uvh5_header_get(b);
    CHECK(x->Nblts == y->Nblts && x->Nbls == y->Nbls && x->Ntimes == y->Ntimes &&
              x->Nfreqs == y->Nfreqs && x->Npols == y->Npols &&
              x->Nants_telescope == y->Nants_telescope,
          "%s: counts", b_path);
    size_t nblt = (size_t)x->Nblts, nf = (size_t)x->Nfreqs, np = (size_t)x->Npols;
    if (x->Nblts == y->Nblts && x->Nfreqs == y->Nfreqs && x->Npols == y->Npols) {
        CHECK(memcmp(x->ant_1_array, y->ant_1_array, nblt * sizeof(int)) == 0 &&
                  memcmp(x->ant_2_array, y->ant_2_array, nblt * sizeof(int)) == 0,
              "%s: antennas", b_path);
        CHECK(memcmp(x->time_array, y->time_array, nblt * sizeof(double)) == 0, "%s: times",
              b_path);
        CHECK(memcmp(x->uvw_array, y->uvw_array, 3 * nblt * sizeof(double)) == 0, "%s: uvw",
              b_path);
        CHECK(memcmp(x->freq_array, y->freq_array, nf * sizeof(double)) == 0, "%s: frequencies",
              b_path);
        size_t n = nblt * nf * np;
        float *va = malloc(2 * n * sizeof *va), *vb = malloc(2 * n * sizeof *vb);
        float *sa = malloc(n * sizeof *sa), *sb = malloc(n * sizeof *sb);
        bool *fa = malloc(n * sizeof *fa), *fb = malloc(n * sizeof *fb);
        CHECK_OK(ct_uvh5_read_blts(a, 0, nblt, va, fa, sa, &err), err);
        CHECK_OK(ct_uvh5_read_blts(b, 0, nblt, vb, fb, sb, &err), err);
        CHECK(memcmp(va, vb, 2 * n * sizeof *va) == 0, "%s: visibilities", b_path);
        CHECK(memcmp(fa, fb, n * sizeof *fa) == 0, "%s: flags", b_path);
        CHECK(memcmp(sa, sb, n * sizeof *sa) == 0, "%s: nsamples", b_path);
        free(va);
        free(vb);
        free(sa);
        free(sb);
        free(fa);
        free(fb);
    }
    ct_uvh5_close(a, &err);
    ct_uvh5_close(b, &err);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc % 2 == 0) {
        fprintf(stderr, "usage: uvh5_compare OURS THEIRS [OURS THEIRS ...]\n");
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2)
        compare(argv[i], argv[i + 1]);
    return tu_finish();
}
