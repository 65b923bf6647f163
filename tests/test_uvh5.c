/*
 * test_uvh5.c -- UVH5 files: round trips in both layouts, Debian's h5py reading what we
 * write (check_uvh5.py, argv[1]), atomic output, and damaged input.
 *
 * The visibilities are a hash of their flat index, so check_uvh5.py can recompute every
 * value independently and compare the whole file, not a checksum of it.
 */
#define _POSIX_C_SOURCE 200809L
#include "fsutil.h"
#include "testutil.h"
#include "uvh5.h"

#include <hdf5.h>

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { NANT = 5, NANT_TEL = 7, NBLS = NANT * (NANT + 1) / 2, NTIMES = 3, NBLTS = NBLS * NTIMES };
enum { NFREQS = 8, NPOLS = 2, PER_BLT = NFREQS * NPOLS };

static const char *check_script;
static char tmpdir[256];

/* Must match check_uvh5.py's hash32. */
static uint32_t hash32(uint64_t k)
{
    uint32_t x = (uint32_t)(k * 2654435761u + 12345u);
    x ^= x >> 13;
    x *= 0x5bd1e995u;
    x ^= x >> 15;
    return x;
}

/* The expected data of flat element i = (blt * NFREQS + f) * NPOLS + p. */
static void expected(size_t i, float *re, float *im, bool *flag, float *ns)
{
    uint32_t a = hash32(2 * (uint64_t)i), b = hash32(2 * (uint64_t)i + 1);
    *re = (float)((int)(a & 0xffff) - 32768) / 64.0f;
    *im = (float)((int)(b & 0xffff) - 32768) / 64.0f;
    *flag = (a >> 16) & 1;
    *ns = (float)((b >> 16) & 0xff) / 16.0f;
}

static char *dup_s(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        abort();
    return p;
}

static void *zalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL)
        abort();
    return p;
}

/* The small DSA-110-like observation every test writes (check_uvh5.py knows it too). */
static void make_header(ct_uvh5_header *h)
{
    memset(h, 0, sizeof *h);
    h->Nants_data = NANT;
    h->Nants_telescope = NANT_TEL;
    h->Nbls = NBLS;
    h->Nblts = NBLTS;
    h->Ntimes = NTIMES;
    h->Nfreqs = NFREQS;
    h->Npols = NPOLS;
    h->Nspws = 1;
    h->latitude = 37.2339;
    h->longitude = -118.2825;
    h->altitude = 1222.0;
    h->telescope_name = dup_s("OVRO_MMA");
    h->instrument = dup_s("DSA");
    h->history = dup_s("written by contimg test_uvh5");
    h->version = dup_s("1.1");
    h->phase_type = dup_s("drift");
    h->object_name = dup_s("test-field");
    h->antenna_numbers = zalloc(NANT_TEL, sizeof(int));
    h->antenna_names = zalloc(NANT_TEL, sizeof(char *));
    h->antenna_positions = zalloc(NANT_TEL * 3, sizeof(double));
    for (int i = 0; i < NANT_TEL; i++) {
        char name[32];
        snprintf(name, sizeof name, "pad%d", i * 13); /* varying lengths */
        h->antenna_numbers[i] = i;
        h->antenna_names[i] = dup_s(name);
        h->antenna_positions[3 * i + 0] = i * 10.5;
        h->antenna_positions[3 * i + 1] = -i * 3.25;
        h->antenna_positions[3 * i + 2] = i * 0.5;
    }
    h->ant_1_array = zalloc(NBLTS, sizeof(int));
    h->ant_2_array = zalloc(NBLTS, sizeof(int));
    h->time_array = zalloc(NBLTS, sizeof(double));
    h->integration_time = zalloc(NBLTS, sizeof(double));
    h->uvw_array = zalloc(NBLTS * 3, sizeof(double));
    for (int t = 0, k = 0; t < NTIMES; t++)
        for (int a1 = 0; a1 < NANT; a1++)
            for (int a2 = a1; a2 < NANT; a2++, k++) {
                h->ant_1_array[k] = a1;
                h->ant_2_array[k] = a2;
                h->time_array[k] = 2460000.5 + t * 12.884902 / 86400.0;
                h->integration_time[k] = 12.884902;
                for (int c = 0; c < 3; c++)
                    h->uvw_array[3 * k + c] =
                        (h->antenna_positions[3 * a2 + c] - h->antenna_positions[3 * a1 + c]) *
                            1.0001 +
                        t * 0.1;
            }
    h->freq_array = zalloc(NFREQS, sizeof(double));
    h->channel_width = zalloc(NFREQS, sizeof(double));
    for (int f = 0; f < NFREQS; f++) {
        h->freq_array[f] = 1498.75e6 - f * 244140.625;
        h->channel_width[f] = 244140.625;
    }
    h->spw_array = zalloc(1, sizeof(int));
    h->polarization_array = zalloc(NPOLS, sizeof(int));
    h->polarization_array[0] = -5;
    h->polarization_array[1] = -6;
    ct_err err;
    if (ct_uvh5_keyword_set_double(h, "phase_center_dec", 0.6, &err) != CT_OK ||
        ct_uvh5_keyword_set_double(h, "ha_phase_center", 0.0, &err) != CT_OK ||
        ct_uvh5_keyword_set_string(h, "phase_center_epoch", "HADEC", &err) != CT_OK)
        abort();
}

static void path_in_tmp(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", tmpdir, name);
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Temporary files a writer left in tmpdir. */
static int count_tmp(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, ".tmp-") != NULL)
            n++;
    closedir(d);
    return n;
}

/* Writes blts [start, start + n) of the expected data. */
static ct_code write_range(ct_uvh5_file *f, size_t start, size_t n, ct_err *err)
{
    size_t m = n * PER_BLT;
    float *vis = zalloc(2 * m, sizeof(float)), *ns = zalloc(m, sizeof(float));
    bool *fl = zalloc(m, sizeof(bool));
    for (size_t i = 0; i < m; i++)
        expected(start * PER_BLT + i, &vis[2 * i], &vis[2 * i + 1], &fl[i], &ns[i]);
    ct_code rc = ct_uvh5_write_blts(f, start, n, vis, fl, ns, err);
    free(vis);
    free(ns);
    free(fl);
    return rc;
}

/* A complete good file at path. */
static ct_code write_good(const char *path, const ct_uvh5_write_opts *o, ct_err *err)
{
    ct_uvh5_header h;
    make_header(&h);
    ct_uvh5_file *f;
    ct_code rc = ct_uvh5_create(path, &h, o, &f, err);
    ct_uvh5_header_free(&h);
    if (rc != CT_OK)
        return rc;
    if ((rc = write_range(f, 0, NBLTS, err)) != CT_OK) {
        ct_uvh5_abort(f);
        return rc;
    }
    return ct_uvh5_close(f, err);
}

static void check_header(const ct_uvh5_header *r)
{
    ct_uvh5_header e;
    make_header(&e);
    CHECK(r->Nants_data == NANT && r->Nants_telescope == NANT_TEL && r->Nbls == NBLS &&
              r->Nblts == NBLTS && r->Ntimes == NTIMES && r->Nfreqs == NFREQS &&
              r->Npols == NPOLS && r->Nspws == 1,
          "counts %d %d %d %d %d %d %d %d", r->Nants_data, r->Nants_telescope, r->Nbls, r->Nblts,
          r->Ntimes, r->Nfreqs, r->Npols, r->Nspws);
    CHECK(r->latitude == e.latitude && r->longitude == e.longitude && r->altitude == e.altitude,
          "site %g %g %g", r->latitude, r->longitude, r->altitude);
    CHECK(strcmp(r->telescope_name, "OVRO_MMA") == 0, "telescope_name %s", r->telescope_name);
    CHECK(strcmp(r->instrument, "DSA") == 0, "instrument %s", r->instrument);
    CHECK(strcmp(r->history, e.history) == 0, "history %s", r->history);
    CHECK(strcmp(r->version, "1.1") == 0, "version %s", r->version);
    CHECK(r->phase_type && strcmp(r->phase_type, "drift") == 0, "phase_type");
    CHECK(r->object_name && strcmp(r->object_name, "test-field") == 0, "object_name");
    int bad = 0;
    for (int i = 0; i < NANT_TEL; i++) {
        bad += r->antenna_numbers[i] != i;
        bad += strcmp(r->antenna_names[i], e.antenna_names[i]) != 0;
        for (int c = 0; c < 3; c++)
            bad += r->antenna_positions[3 * i + c] != e.antenna_positions[3 * i + c];
    }
    CHECK(bad == 0, "%d antenna table mismatches", bad);
    bad = 0;
    for (int k = 0; k < NBLTS; k++) {
        bad += r->ant_1_array[k] != e.ant_1_array[k] || r->ant_2_array[k] != e.ant_2_array[k];
        bad += r->time_array[k] != e.time_array[k];
        bad += r->integration_time[k] != e.integration_time[k];
    }
    CHECK(bad == 0, "%d blt header mismatches", bad);
    bad = 0;
    for (int f = 0; f < NFREQS; f++)
        bad += r->freq_array[f] != e.freq_array[f] || r->channel_width[f] != e.channel_width[f];
    CHECK(bad == 0, "%d frequency mismatches", bad);
    CHECK(r->polarization_array[0] == -5 && r->polarization_array[1] == -6, "pols %d %d",
          r->polarization_array[0], r->polarization_array[1]);
    CHECK(r->spw_array[0] == 0 && !r->flex_spw, "spw");
    const ct_uvh5_keyword *k = ct_uvh5_keyword_find(r, "phase_center_dec");
    CHECK(k && !k->is_string && k->value == 0.6, "phase_center_dec");
    k = ct_uvh5_keyword_find(r, "ha_phase_center");
    CHECK(k && !k->is_string && k->value == 0.0, "ha_phase_center");
    k = ct_uvh5_keyword_find(r, "phase_center_epoch");
    CHECK(k && k->is_string && strcmp(k->str, "HADEC") == 0, "phase_center_epoch");
    CHECK(r->n_extra == 3, "n_extra %d", r->n_extra);
    ct_uvh5_header_free(&e);
}

/* uvw: exact for float64, within float32 rounding otherwise. */
static void check_uvw(const ct_uvh5_header *r, bool f32)
{
    ct_uvh5_header e;
    make_header(&e);
    int bad = 0;
    for (int i = 0; i < NBLTS * 3; i++) {
        double want = f32 ? (double)(float)e.uvw_array[i] : e.uvw_array[i];
        bad += r->uvw_array[i] != want;
    }
    CHECK(bad == 0, "%d uvw mismatches (float32 %d)", bad, f32);
    ct_uvh5_header_free(&e);
}

/* Reads the file back in slices of `step` blts and compares every element exactly. */
static int compare_data(ct_uvh5_file *f, size_t step)
{
    int bad = 0;
    size_t m = step * PER_BLT;
    float *vis = zalloc(2 * m, sizeof(float)), *ns = zalloc(m, sizeof(float));
    bool *fl = zalloc(m, sizeof(bool));
    for (size_t s = 0; s < NBLTS; s += step) {
        size_t n = s + step <= NBLTS ? step : NBLTS - s;
        ct_err err;
        if (ct_uvh5_read_blts(f, s, n, vis, fl, ns, &err) != CT_OK) {
            fprintf(stderr, "read_blts: %s\n", err.msg);
            bad++;
            break;
        }
        for (size_t i = 0; i < n * PER_BLT; i++) {
            float re, im, nsw;
            bool flw;
            expected(s * PER_BLT + i, &re, &im, &flw, &nsw);
            bad += vis[2 * i] != re || vis[2 * i + 1] != im || fl[i] != flw || ns[i] != nsw;
        }
    }
    free(vis);
    free(ns);
    free(fl);
    return bad;
}

static void round_trip(bool shape_4d, bool uvw_f32)
{
    char path[512], name[64];
    snprintf(name, sizeof name, "rt_%s_%s.hdf5", shape_4d ? "4d" : "3d", uvw_f32 ? "f4" : "f8");
    path_in_tmp(path, sizeof path, name);
    ct_uvh5_write_opts o = {.shape_4d = shape_4d, .uvw_float32 = uvw_f32};
    ct_uvh5_header h;
    make_header(&h);
    ct_uvh5_file *f;
    ct_err err;
    ct_code rc = ct_uvh5_create(path, &h, &o, &f, &err);
    ct_uvh5_header_free(&h);
    REQUIRE_OK(rc, err);
    CHECK(ct_uvh5_header_get(f) == NULL, "a writer has no header to read");
    /* Out of order and unevenly sized, as a converter handing over time slices might. */
    CHECK_OK(write_range(f, 30, 15, &err), err);
    CHECK_OK(write_range(f, 0, 7, &err), err);
    CHECK_OK(write_range(f, 7, 23, &err), err);
    CHECK(!exists(path), "%s exists before close", path);
    CHECK(count_tmp() == 1, "temporary files while writing: %d", count_tmp());
    REQUIRE_OK(ct_uvh5_close(f, &err), err);
    CHECK(exists(path), "%s missing after close", path);
    CHECK(count_tmp() == 0, "temporary files after close: %d", count_tmp());

    ct_uvh5_file *r;
    REQUIRE_OK(ct_uvh5_open(path, &r, &err), err);
    ct_uvh5_write_opts lay = ct_uvh5_layout(r);
    CHECK(lay.shape_4d == shape_4d && lay.uvw_float32 == uvw_f32, "layout %d %d", lay.shape_4d,
          lay.uvw_float32);
    const ct_uvh5_header *rh = ct_uvh5_header_get(r);
    REQUIRE(rh != NULL, "no header");
    check_header(rh);
    check_uvw(rh, uvw_f32);
    CHECK(compare_data(r, NBLTS) == 0, "whole-file read differs");
    CHECK(compare_data(r, 4) == 0, "read in 4-blt slices differs");
    /* Skipping arrays. */
    float ns[PER_BLT * 2];
    CHECK_OK(ct_uvh5_read_blts(r, 43, 2, NULL, NULL, ns, &err), err);
    float re, im, nsw;
    bool fl;
    expected(43 * PER_BLT + 5, &re, &im, &fl, &nsw);
    CHECK(ns[5] == nsw, "nsamples only: %g vs %g", ns[5], nsw);
    CHECK(ct_uvh5_read_blts(r, 44, 2, NULL, NULL, ns, &err) == CT_EINVAL, "range past the end");
    CHECK_OK(ct_uvh5_close(r, &err), err);

    /* Debian's h5py reads the same file. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' %s %s", check_script, path,
             shape_4d ? "4d" : "3d", uvw_f32 ? "f4" : "f8");
    int st = system(cmd);
    CHECK(st == 0, "check_uvh5.py failed (status %d): %s", st, cmd);
}

/* The other direction: a file h5py wrote, in older pyuvdata's style, read by us. */
static void test_read_h5py_written(void)
{
    char src[512], dst[512], cmd[2048];
    path_in_tmp(src, sizeof src, "for_h5py.hdf5");
    path_in_tmp(dst, sizeof dst, "by_h5py.hdf5");
    ct_err err;
    REQUIRE_OK(write_good(src, NULL, &err), err);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' --rewrite '%s' '%s'", check_script, src, dst);
    int st = system(cmd);
    REQUIRE(st == 0, "h5py rewrite failed (status %d): %s", st, cmd);
    ct_uvh5_file *r;
    REQUIRE_OK(ct_uvh5_open(dst, &r, &err), err);
    ct_uvh5_write_opts lay = ct_uvh5_layout(r);
    CHECK(lay.shape_4d && lay.uvw_float32, "layout %d %d", lay.shape_4d, lay.uvw_float32);
    check_header(ct_uvh5_header_get(r));
    check_uvw(ct_uvh5_header_get(r), true);
    CHECK(compare_data(r, 10) == 0, "data of the h5py-written file differ");
    CHECK_OK(ct_uvh5_close(r, &err), err);
}

static void test_roundtrip_4d_f32(void)
{
    round_trip(true, true);
}
static void test_roundtrip_3d_f64(void)
{
    round_trip(false, false);
}
static void test_roundtrip_4d_f64(void)
{
    round_trip(true, false);
}
static void test_roundtrip_3d_f32(void)
{
    round_trip(false, true);
}

static bool is_corrupt(const ct_err *err)
{
    return strncmp(err->msg, "corrupt input: ", 15) == 0 && err->category == CT_CAT_CORRUPT_INPUT;
}

static void test_nonexistent(void)
{
    char path[512];
    path_in_tmp(path, sizeof path, "no-such.hdf5");
    ct_uvh5_file *f = NULL;
    ct_err err;
    CHECK(ct_uvh5_open(path, &f, &err) == CT_ENOTFOUND, "%s", err.msg);
    CHECK(f == NULL, "handle set on failure");
    CHECK(strstr(err.msg, path) != NULL, "message names the path: %s", err.msg);
}

static void test_not_hdf5(void)
{
    char path[512];
    path_in_tmp(path, sizeof path, "garbage.hdf5");
    FILE *fp = fopen(path, "w");
    REQUIRE(fp != NULL, "fopen");
    for (int i = 0; i < 4096; i++)
        fputc(i * 7 & 0xff, fp);
    fclose(fp);
    ct_uvh5_file *f;
    ct_err err;
    CHECK(ct_uvh5_open(path, &f, &err) == CT_EINVAL && is_corrupt(&err), "%s", err.msg);
    CHECK(strchr(err.msg, '\n') == NULL, "one line");
}

static void test_truncated(void)
{
    char path[512];
    path_in_tmp(path, sizeof path, "truncated.hdf5");
    ct_err err;
    REQUIRE_OK(write_good(path, NULL, &err), err);
    struct stat st;
    REQUIRE(stat(path, &st) == 0, "stat");
    REQUIRE(truncate(path, st.st_size / 2) == 0, "truncate");
    ct_uvh5_file *f;
    CHECK(ct_uvh5_open(path, &f, &err) == CT_EINVAL && is_corrupt(&err), "%s", err.msg);
    printf("  truncated: %s\n", err.msg);
}

/* Edits a good file with HDF5 directly: deletes link `del`, and/or writes Nblts. */
static bool edit_file(const char *path, const char *del, const char *scalar, long long v)
{
    hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (fid < 0)
        return false;
    bool ok = true;
    if (del != NULL)
        ok = H5Ldelete(fid, del, H5P_DEFAULT) >= 0;
    if (ok && scalar != NULL) {
        hid_t d = H5Dopen2(fid, scalar, H5P_DEFAULT);
        ok = d >= 0 && H5Dwrite(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0;
        if (d >= 0)
            H5Dclose(d);
    }
    return H5Fclose(fid) >= 0 && ok;
}

static void test_missing_dataset(void)
{
    char path[512];
    path_in_tmp(path, sizeof path, "missing.hdf5");
    ct_err err;
    REQUIRE_OK(write_good(path, NULL, &err), err);
    REQUIRE(edit_file(path, "Header/ant_2_array", NULL, 0), "edit");
    ct_uvh5_file *f;
    CHECK(ct_uvh5_open(path, &f, &err) == CT_EINVAL && is_corrupt(&err) &&
              strstr(err.msg, "Header/ant_2_array") != NULL,
          "%s", err.msg);
    printf("  missing: %s\n", err.msg);
    REQUIRE_OK(write_good(path, NULL, &err), err);
    REQUIRE(edit_file(path, "Data/flags", NULL, 0), "edit");
    CHECK(ct_uvh5_open(path, &f, &err) == CT_EINVAL && is_corrupt(&err) &&
              strstr(err.msg, "Data/flags") != NULL,
          "%s", err.msg);
}

static void test_inconsistent_nblts(void)
{
    char path[512];
    path_in_tmp(path, sizeof path, "nblts.hdf5");
    ct_err err;
    REQUIRE_OK(write_good(path, NULL, &err), err);
    REQUIRE(edit_file(path, NULL, "Header/Nblts", NBLTS - 1), "edit");
    ct_uvh5_file *f;
    CHECK(ct_uvh5_open(path, &f, &err) == CT_EINVAL && is_corrupt(&err) &&
              strstr(err.msg, "Nblts") != NULL,
          "%s", err.msg);
    printf("  Nblts: %s\n", err.msg);
}

/* A baseline naming an antenna the table lacks. */
static void test_unknown_antenna(void)
{
    char path[512];
    path_in_tmp(path, sizeof path, "antenna.hdf5");
    ct_err err;
    REQUIRE_OK(write_good(path, NULL, &err), err);
    ct_uvh5_header h;
    make_header(&h);
    h.ant_2_array[17] = 99;
    hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = fid < 0 ? fid : H5Dopen2(fid, "Header/ant_2_array", H5P_DEFAULT);
    bool ok =
        d >= 0 && H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, h.ant_2_array) >= 0;
    if (d >= 0)
        H5Dclose(d);
    if (fid >= 0)
        H5Fclose(fid);
    ct_uvh5_header_free(&h);
    REQUIRE(ok, "rewrite ant_2_array");
    ct_uvh5_file *f;
    CHECK(ct_uvh5_open(path, &f, &err) == CT_EINVAL && is_corrupt(&err) &&
              strstr(err.msg, "ant_2_array[17] = 99") != NULL,
          "%s", err.msg);
}

/* Header consistent, but one Data array has the wrong number of blts. */
static void test_wrong_data_shape(void)
{
    char path[512];
    path_in_tmp(path, sizeof path, "shape.hdf5");
    ct_err err;
    REQUIRE_OK(write_good(path, NULL, &err), err);
    hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    REQUIRE(fid >= 0, "H5Fopen");
    hsize_t dims[4] = {NBLTS - 1, 1, NFREQS, NPOLS};
    hid_t s = H5Screate_simple(4, dims, NULL);
    bool ok = H5Ldelete(fid, "Data/nsamples", H5P_DEFAULT) >= 0;
    hid_t d =
        H5Dcreate2(fid, "Data/nsamples", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && d >= 0;
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(s);
    H5Fclose(fid);
    REQUIRE(ok, "rewrite nsamples");
    ct_uvh5_file *f;
    CHECK(ct_uvh5_open(path, &f, &err) == CT_EINVAL && is_corrupt(&err) &&
              strstr(err.msg, "Data/nsamples") != NULL,
          "%s", err.msg);
    printf("  shape: %s\n", err.msg);
}

static void test_abort(void)
{
    char path[512];
    path_in_tmp(path, sizeof path, "aborted.hdf5");
    ct_uvh5_header h;
    make_header(&h);
    ct_uvh5_file *f;
    ct_err err;
    ct_code rc = ct_uvh5_create(path, &h, NULL, &f, &err);
    REQUIRE_OK(rc, err);
    CHECK_OK(write_range(f, 0, 20, &err), err);
    CHECK(count_tmp() == 1, "temp while writing");
    ct_uvh5_abort(f);
    CHECK(!exists(path), "file left at path after abort");
    CHECK(count_tmp() == 0, "temp left after abort: %d", count_tmp());

    /* An abort never harms the file already at the path. */
    REQUIRE_OK(write_good(path, NULL, &err), err);
    REQUIRE_OK(ct_uvh5_create(path, &h, NULL, &f, &err), err);
    ct_uvh5_abort(f);
    ct_uvh5_file *r;
    CHECK_OK(ct_uvh5_open(path, &r, &err), err);
    CHECK_OK(ct_uvh5_close(r, &err), err);
    CHECK(count_tmp() == 0, "temp left");
    unlink(path);

    /* Closing before every blt is written is refused and leaves nothing. */
    REQUIRE_OK(ct_uvh5_create(path, &h, NULL, &f, &err), err);
    CHECK_OK(write_range(f, 0, NBLTS - 1, &err), err);
    CHECK(ct_uvh5_write_blts(f, NBLTS - 1, 2, (float[4 * PER_BLT]){0}, (bool[2 * PER_BLT]){0},
                             (float[2 * PER_BLT]){0}, &err) == CT_EINVAL,
          "write past the end accepted");
    CHECK(ct_uvh5_close(f, &err) == CT_ESTATE && strstr(err.msg, "never written"), "%s", err.msg);
    CHECK(!exists(path), "incomplete file at path");
    CHECK(count_tmp() == 0, "temp left after refused close");

    /* A bad header is refused before anything is created. */
    h.Nblts = NBLTS - 1;
    CHECK(ct_uvh5_create(path, &h, NULL, &f, &err) == CT_EINVAL, "bad header accepted");
    CHECK(f == NULL && count_tmp() == 0 && !exists(path), "left something");
    ct_uvh5_header_free(&h);

    /* An unwritable directory is an I/O error. */
    make_header(&h);
    CHECK(ct_uvh5_create("/nonexistent-dir/x.hdf5", &h, NULL, &f, &err) == CT_EIO, "%s", err.msg);
    ct_uvh5_header_free(&h);
}

/* Errors come back only as ct_err: HDF5's printing setting is the caller's afterwards. */
static void test_error_printing_restored(void)
{
    H5E_auto2_t before = NULL, after = NULL;
    void *bd = NULL, *ad = NULL;
    H5Eget_auto2(H5E_DEFAULT, &before, &bd);
    char path[512];
    path_in_tmp(path, sizeof path, "garbage.hdf5");
    ct_uvh5_file *f;
    ct_err err;
    CHECK(ct_uvh5_open(path, &f, &err) == CT_EINVAL, "%s", err.msg);
    H5Eget_auto2(H5E_DEFAULT, &after, &ad);
    CHECK(before == after && bd == ad, "HDF5 auto-print setting changed");
    CHECK(before != NULL, "HDF5 auto-print was off to begin with");
}

/* The marker of test_copy_reflag: every polarization of channel 2 in every third blt
 * from blt 1, counting its calls. */
static bool reflag_marked(size_t i)
{
    return (i / PER_BLT) % 3 == 1 && (i % PER_BLT) / NPOLS == 2;
}

static void reflag_mark(void *ctx, size_t b0, size_t nb, bool *flags)
{
    ++*(int *)ctx;
    for (size_t i = 0; i < nb * PER_BLT; i++)
        flags[i] = flags[i] || reflag_marked(b0 * PER_BLT + i);
}

/* A copy with more flags: the flags are the source's or the marker's, everything else
 * the source's; failures leave nothing behind, an existing file at dst is replaced. */
static void test_copy_reflag(void)
{
    char src[512], dst[512];
    path_in_tmp(src, sizeof src, "reflag-src.hdf5");
    path_in_tmp(dst, sizeof dst, "reflag-dst.hdf5");
    ct_err err;
    REQUIRE_OK(write_good(src, &(ct_uvh5_write_opts){.shape_4d = true}, &err), err);
    REQUIRE_OK(write_good(dst, NULL, &err), err); /* to be replaced */
    int calls = 0;
    REQUIRE_OK(ct_uvh5_copy_reflag(src, dst, reflag_mark, &calls, &err), err);
    CHECK(calls == 1, "the marker was called %d times for one block", calls);
    CHECK(count_tmp() == 0, "temp left after the copy");
    ct_uvh5_file *a, *b;
    REQUIRE_OK(ct_uvh5_open(src, &a, &err), err);
    REQUIRE_OK(ct_uvh5_open(dst, &b, &err), err);
    check_header(ct_uvh5_header_get(b));
    CHECK(ct_uvh5_layout(b).shape_4d && !ct_uvh5_layout(b).uvw_float32, "layout changed");
    const size_t m = (size_t)NBLTS * PER_BLT;
    float *va = zalloc(2 * m, sizeof(float)), *vb = zalloc(2 * m, sizeof(float));
    float *na = zalloc(m, sizeof(float)), *nb = zalloc(m, sizeof(float));
    bool *fa = zalloc(m, sizeof(bool)), *fb = zalloc(m, sizeof(bool));
    CHECK_OK(ct_uvh5_read_blts(a, 0, NBLTS, va, fa, na, &err), err);
    CHECK_OK(ct_uvh5_read_blts(b, 0, NBLTS, vb, fb, nb, &err), err);
    size_t bad = 0, marked = 0, kept = 0;
    for (size_t i = 0; i < m; i++) {
        bad += memcmp(&va[2 * i], &vb[2 * i], 2 * sizeof(float)) != 0 || na[i] != nb[i];
        bad += fb[i] != (fa[i] || reflag_marked(i));
        marked += reflag_marked(i) && !fa[i];
        kept += fa[i];
    }
    CHECK(bad == 0, "%zu elements differ from the source and its marks", bad);
    CHECK(marked > 0 && kept > 0, "the test marks nothing new (%zu) or keeps nothing (%zu)", marked,
          kept);
    ct_uvh5_close(a, NULL);
    ct_uvh5_close(b, NULL);
    free(va);
    free(vb);
    free(na);
    free(nb);
    free(fa);
    free(fb);

    /* Failures: a missing source, an unwritable destination; nothing left either way. */
    char missing[512];
    path_in_tmp(missing, sizeof missing, "reflag-missing.hdf5");
    CHECK(ct_uvh5_copy_reflag(missing, dst, reflag_mark, &calls, &err) == CT_ENOTFOUND, "%s",
          err.msg);
    CHECK(ct_uvh5_copy_reflag(src, "/nonexistent-dir/x.hdf5", reflag_mark, &calls, &err) == CT_EIO,
          "%s", err.msg);
    CHECK(count_tmp() == 0, "temp left after a failed copy");
    CHECK(exists(dst), "a failed copy removed the file before it");
    unlink(src);
    unlink(dst);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_uvh5 PATH/TO/check_uvh5.py\n");
        return 2;
    }
    check_script = argv[1];
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/ct-uvh5-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    RUN(test_roundtrip_4d_f32);
    RUN(test_roundtrip_3d_f64);
    RUN(test_roundtrip_4d_f64);
    RUN(test_roundtrip_3d_f32);
    RUN(test_read_h5py_written);
    RUN(test_nonexistent);
    RUN(test_not_hdf5);
    RUN(test_error_printing_restored);
    RUN(test_truncated);
    RUN(test_missing_dataset);
    RUN(test_inconsistent_nblts);
    RUN(test_wrong_data_shape);
    RUN(test_unknown_antenna);
    RUN(test_abort);
    RUN(test_copy_reflag);
    ct_err err;
    if (ct_remove_tree(tmpdir, &err) != CT_OK)
        fprintf(stderr, "cleanup: %s\n", err.msg);
    H5close();
    return tu_finish();
}
