/* uvh5.c -- see uvh5.h. */
#define _POSIX_C_SOURCE 200809L
#include "uvh5.h"

#include "fsutil.h"
#include "h5lzf.h"
#include "mpiutil.h"

#include <hdf5.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Data chunks hold whole blts and aim at about 1 MiB of visdata: large enough that HDF5's
 * per-chunk overhead vanishes, small enough that a chunk fits the chunk cache we set. */
#define CHUNK_TARGET_BYTES (1u << 20)
/* Per-dataset chunk cache; a few chunks, so writes that straddle chunk boundaries (blt
 * ranges need not be chunk-aligned) are merged in memory rather than read back. */
#define CHUNK_CACHE_BYTES (8u << 20)
#define CHUNK_CACHE_SLOTS 1031

/* The in-memory visibility: what a float pair (or a float complex) looks like. */
typedef struct vis_pair {
    float r, i;
} vis_pair;

struct ct_uvh5_file {
    bool writing;
    hid_t fid, d_vis, d_flags, d_nsamples;
    hid_t m_vis; /* memory compound {r, i} of float */
    ct_uvh5_write_opts layout;
    int rank;               /* of the Data arrays: 4 or 3 */
    hsize_t dims[4];        /* their shape */
    size_t nblts;           /* dims[0] */
    size_t per_blt;         /* Nfreqs * Npols: elements per blt */
    char *path;             /* where the file lives (reader) or will appear (writer) */
    char *tmp_path;         /* writer only: where it is written until close */
    unsigned char *written; /* writer only: one byte per blt, set once written */
    ct_uvh5_header hdr;     /* reader only */
    bool parallel;          /* made by ct_uvh5_pcreate: no rename, collective transfers */
    hid_t dxpl;             /* parallel writer: collective MPI-IO transfers */
};

/* ---- HDF5 error handling -------------------------------------------------------------- */

/* Turns HDF5's automatic error printing off for the duration of one public call. */
typedef struct quiet {
    H5E_auto2_t fn;
    void *data;
} quiet;

static void quiet_begin(quiet *q)
{
    q->fn = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_end(const quiet *q)
{
    H5Eclear2(H5E_DEFAULT);
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

typedef struct detail_buf {
    char text[256];
} detail_buf;

static herr_t detail_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    detail_buf *b = data;
    if (n == 0 && e->desc != NULL)
        snprintf(b->text, sizeof b->text, "%s", e->desc);
    return 0;
}

/* The most specific message on HDF5's error stack (e.g. "truncated file: eof = ..."),
 * then clears the stack. "" when there is none. */
static const char *h5_detail(detail_buf *b)
{
    b->text[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, detail_cb, b);
    H5Eclear2(H5E_DEFAULT);
    return b->text;
}

/* "corrupt input: PATH: WHAT (HDF5: detail)", of category CT_CAT_CORRUPT_INPUT. */
#define CORRUPT(err, path, ...) corrupt_fail(err, path, __VA_ARGS__)

static ct_code corrupt_fail(ct_err *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ct_code corrupt_fail(ct_err *err, const char *path, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    detail_buf b;
    const char *d = h5_detail(&b);
    if (*d)
        return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL, "corrupt input: %s: %s (HDF5: %s)",
                          path, what, d);
    return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL, "corrupt input: %s: %s", path, what);
}

static ct_code io_fail(ct_err *err, const char *path, const char *what)
{
    detail_buf b;
    const char *d = h5_detail(&b);
    if (*d)
        return ct_fail(err, CT_EIO, "%s: %s (HDF5: %s)", path, what, d);
    return ct_fail(err, CT_EIO, "%s: %s", path, what);
}

/* Any successful HDF5 call clears the error stack, so cleanup after a failure would lose
 * the reason. err_save() takes the stack aside; err_restore() puts it back. */
static hid_t err_save(void)
{
    return H5Eget_current_stack();
}

static void err_restore(hid_t es)
{
    if (es >= 0)
        H5Eset_current_stack(es);
}

/* Creates f->tmp_path (which must not exist) with the access list fapl, which it
 * closes whatever happens; the serial and the parallel writer alike. */
static ct_code create_file(ct_uvh5_file *f, hid_t fapl, ct_err *err)
{
    f->fid = H5Fcreate(f->tmp_path, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    hid_t es = f->fid < 0 ? err_save() : H5I_INVALID_HID;
    H5Pclose(fapl);
    err_restore(es);
    return f->fid < 0 ? io_fail(err, f->tmp_path, "cannot create file") : CT_OK;
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id >= 0)
        fn(*id);
    *id = H5I_INVALID_HID;
}

/* ---- Header in memory ----------------------------------------------------------------- */

void ct_uvh5_header_free(ct_uvh5_header *h)
{
    if (h == NULL)
        return;
    free(h->telescope_name);
    free(h->instrument);
    free(h->history);
    free(h->version);
    free(h->phase_type);
    free(h->object_name);
    free(h->antenna_numbers);
    if (h->antenna_names != NULL)
        for (int i = 0; i < h->Nants_telescope; i++)
            free(h->antenna_names[i]);
    free(h->antenna_names);
    free(h->antenna_positions);
    free(h->ant_1_array);
    free(h->ant_2_array);
    free(h->time_array);
    free(h->integration_time);
    free(h->uvw_array);
    free(h->freq_array);
    free(h->channel_width);
    free(h->spw_array);
    free(h->polarization_array);
    for (int i = 0; i < h->n_extra; i++) {
        free(h->extra[i].key);
        free(h->extra[i].str);
    }
    free(h->extra);
    memset(h, 0, sizeof *h);
}

static bool key_ok(const char *key)
{
    return key != NULL && key[0] != '\0' && strchr(key, '/') == NULL && strcmp(key, ".") != 0;
}

const ct_uvh5_keyword *ct_uvh5_keyword_find(const ct_uvh5_header *h, const char *key)
{
    for (int i = 0; h != NULL && key != NULL && i < h->n_extra; i++)
        if (strcmp(h->extra[i].key, key) == 0)
            return &h->extra[i];
    return NULL;
}

/* The slot for key: the existing one, or a new one at the end (key copied). */
static ct_code keyword_slot(ct_uvh5_header *h, const char *key, ct_uvh5_keyword **out, ct_err *err)
{
    if (!key_ok(key))
        return ct_fail(err, CT_EINVAL, "extra keyword name \"%s\" is not a plain name",
                       key ? key : "(null)");
    for (int i = 0; i < h->n_extra; i++)
        if (strcmp(h->extra[i].key, key) == 0) {
            free(h->extra[i].str);
            h->extra[i].str = NULL;
            *out = &h->extra[i];
            return CT_OK;
        }
    ct_uvh5_keyword *grown = realloc(h->extra, (size_t)(h->n_extra + 1) * sizeof *grown);
    if (grown == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory adding keyword %s", key);
    h->extra = grown;
    ct_uvh5_keyword *k = &grown[h->n_extra];
    memset(k, 0, sizeof *k);
    if ((k->key = strdup(key)) == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory adding keyword %s", key);
    h->n_extra++;
    *out = k;
    return CT_OK;
}

ct_code ct_uvh5_keyword_set_double(ct_uvh5_header *h, const char *key, double value, ct_err *err)
{
    ct_uvh5_keyword *k;
    ct_code rc = keyword_slot(h, key, &k, err);
    if (rc != CT_OK)
        return rc;
    k->is_string = false;
    k->value = value;
    return CT_OK;
}

ct_code ct_uvh5_keyword_set_string(ct_uvh5_header *h, const char *key, const char *value,
                                   ct_err *err)
{
    if (value == NULL)
        return ct_fail(err, CT_EINVAL, "extra keyword %s: NULL string", key ? key : "(null)");
    char *copy = strdup(value);
    if (copy == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory adding keyword %s", key);
    ct_uvh5_keyword *k;
    ct_code rc = keyword_slot(h, key, &k, err);
    if (rc != CT_OK) {
        free(copy);
        return rc;
    }
    k->is_string = true;
    k->value = 0;
    k->str = copy;
    return CT_OK;
}

ct_code ct_uvh5_header_check(const ct_uvh5_header *h, ct_err *err)
{
    if (h == NULL)
        return ct_fail(err, CT_EINVAL, "uvh5 header: NULL");
    const struct {
        const char *name;
        int v;
    } counts[] = {{"Nants_data", h->Nants_data},
                  {"Nants_telescope", h->Nants_telescope},
                  {"Nbls", h->Nbls},
                  {"Nblts", h->Nblts},
                  {"Ntimes", h->Ntimes},
                  {"Nfreqs", h->Nfreqs},
                  {"Npols", h->Npols},
                  {"Nspws", h->Nspws}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i].v <= 0)
            return ct_fail(err, CT_EINVAL, "uvh5 header: %s = %d, must be positive", counts[i].name,
                           counts[i].v);
    if (h->Nspws != 1)
        return ct_fail(err, CT_EINVAL, "uvh5 header: Nspws = %d, only 1 is supported", h->Nspws);
    if ((long long)h->Nbls * h->Ntimes != h->Nblts)
        return ct_fail(err, CT_EINVAL, "uvh5 header: Nbls * Ntimes = %lld, Nblts = %d",
                       (long long)h->Nbls * h->Ntimes, h->Nblts);
    if (h->Nants_data > h->Nants_telescope)
        return ct_fail(err, CT_EINVAL, "uvh5 header: Nants_data %d > Nants_telescope %d",
                       h->Nants_data, h->Nants_telescope);
    if (h->flex_spw)
        return ct_fail(err, CT_EINVAL, "uvh5 header: flex_spw is not supported");
    const struct {
        const char *name;
        const void *p;
    } ptrs[] = {{"telescope_name", h->telescope_name},
                {"instrument", h->instrument},
                {"history", h->history},
                {"antenna_numbers", h->antenna_numbers},
                {"antenna_names", h->antenna_names},
                {"antenna_positions", h->antenna_positions},
                {"ant_1_array", h->ant_1_array},
                {"ant_2_array", h->ant_2_array},
                {"time_array", h->time_array},
                {"integration_time", h->integration_time},
                {"uvw_array", h->uvw_array},
                {"freq_array", h->freq_array},
                {"channel_width", h->channel_width},
                {"spw_array", h->spw_array},
                {"polarization_array", h->polarization_array}};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        if (ptrs[i].p == NULL)
            return ct_fail(err, CT_EINVAL, "uvh5 header: %s is NULL", ptrs[i].name);
    for (int i = 0; i < h->Nants_telescope; i++)
        if (h->antenna_names[i] == NULL)
            return ct_fail(err, CT_EINVAL, "uvh5 header: antenna_names[%d] is NULL", i);
    if (h->n_extra < 0 || (h->n_extra > 0 && h->extra == NULL))
        return ct_fail(err, CT_EINVAL, "uvh5 header: extra keywords inconsistent");
    for (int i = 0; i < h->n_extra; i++) {
        if (!key_ok(h->extra[i].key))
            return ct_fail(err, CT_EINVAL, "uvh5 header: extra keyword %d has a bad name", i);
        if (h->extra[i].is_string && h->extra[i].str == NULL)
            return ct_fail(err, CT_EINVAL, "uvh5 header: extra keyword %s: NULL string",
                           h->extra[i].key);
    }
    return CT_OK;
}

/* ---- Types ---------------------------------------------------------------------------- */

/* Fixed-length ASCII of exactly len bytes (at least 1), NUL-padded: what h5py writes for a
 * numpy bytes value, and reads back as bytes. */
static hid_t string_type(size_t len)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, len > 0 ? len : 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0 ||
        H5Tset_cset(t, H5T_CSET_ASCII) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* The int8 enum {FALSE = 0, TRUE = 1} that h5py maps to numpy bool, on the given base. */
static hid_t bool_type(hid_t base)
{
    hid_t t = H5Tenum_create(base);
    if (t < 0)
        return t;
    int8_t no = 0, yes = 1;
    if (H5Tenum_insert(t, "FALSE", &no) < 0 || H5Tenum_insert(t, "TRUE", &yes) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* A compound {r, i} of the given float type, packed. */
static hid_t complex_type(hid_t ftype)
{
    size_t sz = H5Tget_size(ftype);
    hid_t t = H5Tcreate(H5T_COMPOUND, 2 * sz);
    if (t < 0)
        return t;
    if (H5Tinsert(t, "r", 0, ftype) < 0 || H5Tinsert(t, "i", sz, ftype) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* ---- Writing -------------------------------------------------------------------------- */

/* Creation properties for the Header: H5P_DEFAULT for the serial writer; the parallel
 * writer passes lists without time stamps (so output is reproducible byte for byte). */
typedef struct wprops {
    hid_t gcpl, dcpl;
} wprops;

static const wprops default_wprops = {H5P_DEFAULT, H5P_DEFAULT};

/* One dataset from memory, created with ftype and written from mtype. rank 0 = scalar.
 * Returns < 0 on failure (the HDF5 error stack says why). */
static herr_t put(const wprops *p, hid_t g, const char *name, hid_t ftype, hid_t mtype, int rank,
                  const hsize_t *dims, const void *buf)
{
    hid_t s = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    if (s < 0)
        return -1;
    hid_t d = H5Dcreate2(g, name, ftype, s, H5P_DEFAULT, p->dcpl, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    hid_t es = rc < 0 ? err_save() : H5I_INVALID_HID;
    if (d >= 0 && H5Dclose(d) < 0 && rc >= 0)
        rc = -1;
    H5Sclose(s);
    err_restore(es);
    return rc;
}

static herr_t put_int(const wprops *p, hid_t g, const char *name, int v)
{
    return put(p, g, name, H5T_STD_I64LE, H5T_NATIVE_INT, 0, NULL, &v);
}

static herr_t put_double(const wprops *p, hid_t g, const char *name, double v)
{
    return put(p, g, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, NULL, &v);
}

static herr_t put_string(const wprops *p, hid_t g, const char *name, const char *s)
{
    hid_t t = string_type(strlen(s));
    if (t < 0)
        return -1;
    /* A 0-length string is stored as one NUL byte, which s supplies. */
    herr_t rc = put(p, g, name, t, t, 0, NULL, s);
    H5Tclose(t);
    return rc;
}

static herr_t put_strings(const wprops *p, hid_t g, const char *name, char *const *s, size_t n)
{
    size_t w = 1;
    for (size_t i = 0; i < n; i++)
        if (strlen(s[i]) > w)
            w = strlen(s[i]);
    char *buf = calloc(n, w);
    if (buf == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        memcpy(buf + i * w, s[i], strlen(s[i]));
    hid_t t = string_type(w);
    hsize_t dims[1] = {n};
    herr_t rc = t < 0 ? -1 : put(p, g, name, t, t, 1, dims, buf);
    if (t >= 0)
        H5Tclose(t);
    free(buf);
    return rc;
}

static herr_t put_bool(const wprops *p, hid_t g, const char *name, bool v)
{
    hid_t ft = bool_type(H5T_STD_I8LE), mt = bool_type(H5T_NATIVE_SCHAR);
    int8_t b = v ? 1 : 0;
    herr_t rc = (ft < 0 || mt < 0) ? -1 : put(p, g, name, ft, mt, 0, NULL, &b);
    if (ft >= 0)
        H5Tclose(ft);
    if (mt >= 0)
        H5Tclose(mt);
    return rc;
}

/* Writes the Header group; on failure *what names the dataset that failed. */
static herr_t write_header(hid_t fid, const ct_uvh5_header *h, const ct_uvh5_write_opts *o,
                           const wprops *p, const char **what)
{
    hid_t g = H5Gcreate2(fid, "Header", H5P_DEFAULT, p->gcpl, H5P_DEFAULT);
    *what = "Header";
    if (g < 0)
        return -1;
    hsize_t nblts = (hsize_t)h->Nblts, nf = (hsize_t)h->Nfreqs;
    hsize_t nant = (hsize_t)h->Nants_telescope;
    hsize_t d_blt[1] = {nblts}, d_uvw[2] = {nblts, 3}, d_ant[1] = {nant}, d_pos[2] = {nant, 3};
    hsize_t d_f[1] = {nf}, d_f2[2] = {1, nf}, d_pol[1] = {(hsize_t)h->Npols};
    hsize_t d_spw[1] = {(hsize_t)h->Nspws};
    herr_t rc = 0;
#define STEP(name, call)                                                                           \
    do {                                                                                           \
        if (rc >= 0) {                                                                             \
            *what = "Header/" name;                                                                \
            rc = (call);                                                                           \
        }                                                                                          \
    } while (0)
    STEP("latitude", put_double(p, g, "latitude", h->latitude));
    STEP("longitude", put_double(p, g, "longitude", h->longitude));
    STEP("altitude", put_double(p, g, "altitude", h->altitude));
    STEP("telescope_name", put_string(p, g, "telescope_name", h->telescope_name));
    STEP("instrument", put_string(p, g, "instrument", h->instrument));
    STEP("history", put_string(p, g, "history", h->history));
    STEP("version", put_string(p, g, "version", h->version ? h->version : "1.1"));
    STEP("phase_type", put_string(p, g, "phase_type", h->phase_type ? h->phase_type : "drift"));
    if (h->object_name != NULL)
        STEP("object_name", put_string(p, g, "object_name", h->object_name));
    STEP("Nants_data", put_int(p, g, "Nants_data", h->Nants_data));
    STEP("Nants_telescope", put_int(p, g, "Nants_telescope", h->Nants_telescope));
    STEP("Nbls", put_int(p, g, "Nbls", h->Nbls));
    STEP("Nblts", put_int(p, g, "Nblts", h->Nblts));
    STEP("Ntimes", put_int(p, g, "Ntimes", h->Ntimes));
    STEP("Nfreqs", put_int(p, g, "Nfreqs", h->Nfreqs));
    STEP("Npols", put_int(p, g, "Npols", h->Npols));
    STEP("Nspws", put_int(p, g, "Nspws", h->Nspws));
    STEP("antenna_numbers",
         put(p, g, "antenna_numbers", H5T_STD_I64LE, H5T_NATIVE_INT, 1, d_ant, h->antenna_numbers));
    STEP("antenna_names",
         put_strings(p, g, "antenna_names", h->antenna_names, (size_t)h->Nants_telescope));
    STEP("antenna_positions", put(p, g, "antenna_positions", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2,
                                  d_pos, h->antenna_positions));
    STEP("ant_1_array",
         put(p, g, "ant_1_array", H5T_STD_I64LE, H5T_NATIVE_INT, 1, d_blt, h->ant_1_array));
    STEP("ant_2_array",
         put(p, g, "ant_2_array", H5T_STD_I64LE, H5T_NATIVE_INT, 1, d_blt, h->ant_2_array));
    STEP("time_array",
         put(p, g, "time_array", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d_blt, h->time_array));
    STEP("integration_time", put(p, g, "integration_time", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1,
                                 d_blt, h->integration_time));
    STEP("uvw_array", put(p, g, "uvw_array", o->uvw_float32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE,
                          H5T_NATIVE_DOUBLE, 2, d_uvw, h->uvw_array));
    /* The old layout went with freq_array shaped (Nspws, Nfreqs); keep the pair together. */
    STEP("freq_array", put(p, g, "freq_array", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                           o->shape_4d ? 2 : 1, o->shape_4d ? d_f2 : d_f, h->freq_array));
    STEP("channel_width",
         put(p, g, "channel_width", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d_f, h->channel_width));
    STEP("spw_array",
         put(p, g, "spw_array", H5T_STD_I64LE, H5T_NATIVE_INT, 1, d_spw, h->spw_array));
    STEP("flex_spw", put_bool(p, g, "flex_spw", h->flex_spw));
    STEP("polarization_array", put(p, g, "polarization_array", H5T_STD_I64LE, H5T_NATIVE_INT, 1,
                                   d_pol, h->polarization_array));
#undef STEP
    if (rc >= 0 && h->n_extra > 0) {
        *what = "Header/extra_keywords";
        hid_t x = H5Gcreate2(g, "extra_keywords", H5P_DEFAULT, p->gcpl, H5P_DEFAULT);
        rc = x < 0 ? -1 : 0;
        for (int i = 0; rc >= 0 && i < h->n_extra; i++) {
            const ct_uvh5_keyword *k = &h->extra[i];
            rc = k->is_string ? put_string(p, x, k->key, k->str)
                              : put_double(p, x, k->key, k->value);
        }
        if (x >= 0 && H5Gclose(x) < 0)
            rc = -1;
    }
    if (H5Gclose(g) < 0 && rc >= 0) {
        *what = "Header";
        rc = -1;
    }
    return rc;
}

/* Creates Data/<name> chunked along blts; returns the open dataset or < 0. */
static hid_t make_data(hid_t g, const char *name, hid_t ftype, int rank, const hsize_t *dims,
                       const hsize_t *chunk)
{
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    hid_t d = H5I_INVALID_HID;
    if (s >= 0 && dcpl >= 0 && dapl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 &&
        H5Pset_chunk_cache(dapl, CHUNK_CACHE_SLOTS, CHUNK_CACHE_BYTES, 1.0) >= 0)
        d = H5Dcreate2(g, name, ftype, s, H5P_DEFAULT, dcpl, dapl);
    hid_t es = d < 0 ? err_save() : H5I_INVALID_HID;
    if (s >= 0)
        H5Sclose(s);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (dapl >= 0)
        H5Pclose(dapl);
    err_restore(es);
    return d;
}

static void file_free(ct_uvh5_file *f)
{
    close_id(&f->d_vis, H5Dclose);
    close_id(&f->d_flags, H5Dclose);
    close_id(&f->d_nsamples, H5Dclose);
    close_id(&f->m_vis, H5Tclose);
    close_id(&f->dxpl, H5Pclose);
    close_id(&f->fid, H5Fclose);
    ct_uvh5_header_free(&f->hdr);
    free(f->path);
    free(f->tmp_path);
    free(f->written);
    free(f);
}

static ct_uvh5_file *file_new(const char *path)
{
    ct_uvh5_file *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->fid = f->d_vis = f->d_flags = f->d_nsamples = f->m_vis = f->dxpl = H5I_INVALID_HID;
    if ((f->path = strdup(path)) == NULL) {
        free(f);
        return NULL;
    }
    return f;
}

/* Distinguishes writers in one process that target the same path. */
static atomic_ulong tmp_seq;

static ct_code create_body(ct_uvh5_file *f, const ct_uvh5_header *h, ct_err *err)
{
    const ct_uvh5_write_opts *o = &f->layout;
    size_t n = strlen(f->path) + 64;
    if ((f->tmp_path = malloc(n)) == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    snprintf(f->tmp_path, n, "%s.tmp-%ld-%lu", f->path, (long)getpid(),
             (unsigned long)atomic_fetch_add(&tmp_seq, 1));

    /* STRONG: H5Fclose really closes the file (every object in it), so the rename that
     * follows moves a finished file. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        if (fapl >= 0)
            H5Pclose(fapl);
        return io_fail(err, f->tmp_path, "cannot set up file access");
    }
    ct_code crc = create_file(f, fapl, err);
    if (crc != CT_OK)
        return crc;

    const char *what = "";
    if (write_header(f->fid, h, o, &default_wprops, &what) < 0)
        return io_fail(err, f->tmp_path, what);

    f->nblts = (size_t)h->Nblts;
    f->per_blt = (size_t)h->Nfreqs * (size_t)h->Npols;
    /* HDF5 limits a chunk to 4 GiB; one blt of visdata must fit with room to spare. */
    if (f->per_blt > (SIZE_MAX / 8) || f->per_blt * 8 > (1u << 30))
        return ct_fail(err, CT_EINVAL, "uvh5: Nfreqs * Npols = %zu is too large for one chunk",
                       f->per_blt);
    size_t rows = CHUNK_TARGET_BYTES / (f->per_blt * sizeof(vis_pair));
    if (rows < 1)
        rows = 1;
    if (rows > f->nblts)
        rows = f->nblts;
    f->rank = o->shape_4d ? 4 : 3;
    hsize_t chunk[4];
    f->dims[0] = f->nblts;
    chunk[0] = rows;
    if (o->shape_4d) {
        f->dims[1] = chunk[1] = 1;
        f->dims[2] = chunk[2] = (hsize_t)h->Nfreqs;
        f->dims[3] = chunk[3] = (hsize_t)h->Npols;
    } else {
        f->dims[1] = chunk[1] = (hsize_t)h->Nfreqs;
        f->dims[2] = chunk[2] = (hsize_t)h->Npols;
    }

    hid_t g = H5Gcreate2(f->fid, "Data", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return io_fail(err, f->tmp_path, "cannot create Data");
    hid_t fvis = complex_type(H5T_IEEE_F32LE), fbool = bool_type(H5T_STD_I8LE);
    const char *failed = NULL;
    if (fvis < 0 || fbool < 0)
        failed = "Data types";
    else if ((f->d_vis = make_data(g, "visdata", fvis, f->rank, f->dims, chunk)) < 0)
        failed = "Data/visdata";
    else if ((f->d_flags = make_data(g, "flags", fbool, f->rank, f->dims, chunk)) < 0)
        failed = "Data/flags";
    else if ((f->d_nsamples = make_data(g, "nsamples", H5T_IEEE_F32LE, f->rank, f->dims, chunk)) <
             0)
        failed = "Data/nsamples";
    hid_t es2 = failed != NULL ? err_save() : H5I_INVALID_HID;
    if (fvis >= 0)
        H5Tclose(fvis);
    if (fbool >= 0)
        H5Tclose(fbool);
    H5Gclose(g);
    err_restore(es2);
    if (failed != NULL)
        return io_fail(err, f->tmp_path, failed);
    if ((f->m_vis = complex_type(H5T_NATIVE_FLOAT)) < 0)
        return io_fail(err, f->tmp_path, "memory type");
    if ((f->written = calloc(f->nblts, 1)) == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    return CT_OK;
}

/* Closes the HDF5 side of a writer and deletes its temporary file. */
/* Closes the three Data datasets and then the file; the result of H5Fclose. */
static herr_t close_file(ct_uvh5_file *f)
{
    close_id(&f->d_vis, H5Dclose);
    close_id(&f->d_flags, H5Dclose);
    close_id(&f->d_nsamples, H5Dclose);
    herr_t hr = f->fid >= 0 ? H5Fclose(f->fid) : 0;
    f->fid = H5I_INVALID_HID;
    return hr;
}

static void writer_discard(ct_uvh5_file *f)
{
    (void)close_file(f);
    if (f->tmp_path != NULL && !f->parallel)
        unlink(f->tmp_path);
}

ct_code ct_uvh5_create(const char *path, const ct_uvh5_header *h, const ct_uvh5_write_opts *opts,
                       ct_uvh5_file **out, ct_err *err)
{
    *out = NULL;
    if (path == NULL || *path == '\0')
        return ct_fail(err, CT_EINVAL, "uvh5: empty output path");
    ct_code rc = ct_uvh5_header_check(h, err);
    if (rc != CT_OK)
        return rc;
    ct_uvh5_file *f = file_new(path);
    if (f == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    f->writing = true;
    f->layout = opts ? *opts : (ct_uvh5_write_opts){.shape_4d = true, .uvw_float32 = true};
    quiet q;
    quiet_begin(&q);
    rc = create_body(f, h, err);
    if (rc != CT_OK) {
        writer_discard(f);
        file_free(f);
    }
    quiet_end(&q);
    if (rc == CT_OK)
        *out = f;
    return rc;
}

/* Moves n_blt blts between buf and dataset d (all of every other axis). */
static herr_t blt_io(const ct_uvh5_file *f, hid_t d, hid_t mtype, size_t start, size_t n, void *buf,
                     bool write)
{
    hsize_t off[4] = {start, 0, 0, 0}, cnt[4];
    cnt[0] = n;
    for (int i = 1; i < f->rank; i++)
        cnt[i] = f->dims[i];
    /* The memory space has the selection's own shape: with a flat one HDF5 maps every
     * element to its chunk one by one (H5S_select_iterate), several times slower. */
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(f->rank, cnt, NULL);
    herr_t rc = -1;
    if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) >= 0)
        rc = write ? H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, buf)
                   : H5Dread(d, mtype, ms, fs, H5P_DEFAULT, buf);
    hid_t es = rc < 0 ? err_save() : H5I_INVALID_HID;
    if (fs >= 0)
        H5Sclose(fs);
    if (ms >= 0)
        H5Sclose(ms);
    err_restore(es);
    return rc;
}

static ct_code range_check(const ct_uvh5_file *f, size_t start, size_t n, ct_err *err)
{
    if (n == 0 || start > f->nblts || n > f->nblts - start)
        return ct_fail(err, CT_EINVAL, "uvh5: blts [%zu, %zu + %zu) outside [0, %zu)", start, start,
                       n, f->nblts);
    if (n > SIZE_MAX / f->per_blt / sizeof(vis_pair))
        return ct_fail(err, CT_EINVAL, "uvh5: %zu blts is too many for one call", n);
    return CT_OK;
}

ct_code ct_uvh5_write_blts(ct_uvh5_file *f, size_t blt_start, size_t n_blt, const float *vis,
                           const bool *flags, const float *nsamples, ct_err *err)
{
    if (f == NULL || !f->writing)
        return ct_fail(err, CT_ESTATE, "uvh5: write to a file not open for writing");
    if (vis == NULL || flags == NULL || nsamples == NULL)
        return ct_fail(err, CT_EINVAL, "uvh5: write_blts needs vis, flags and nsamples");
    ct_code rc = range_check(f, blt_start, n_blt, err);
    if (rc != CT_OK)
        return rc;
    size_t n = n_blt * f->per_blt;
    /* bool's representation is the compiler's; the file's is int8 0/1. */
    int8_t *fl = malloc(n);
    if (fl == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory for %zu flags", n);
    for (size_t i = 0; i < n; i++)
        fl[i] = flags[i] ? 1 : 0;
    quiet q;
    quiet_begin(&q);
    hid_t mbool = bool_type(H5T_NATIVE_SCHAR);
    if (blt_io(f, f->d_vis, f->m_vis, blt_start, n_blt, (void *)vis, true) < 0)
        rc = io_fail(err, f->tmp_path, "cannot write Data/visdata");
    else if (mbool < 0 || blt_io(f, f->d_flags, mbool, blt_start, n_blt, fl, true) < 0)
        rc = io_fail(err, f->tmp_path, "cannot write Data/flags");
    else if (blt_io(f, f->d_nsamples, H5T_NATIVE_FLOAT, blt_start, n_blt, (void *)nsamples, true) <
             0)
        rc = io_fail(err, f->tmp_path, "cannot write Data/nsamples");
    if (mbool >= 0)
        H5Tclose(mbool);
    quiet_end(&q);
    free(fl);
    if (rc == CT_OK)
        memset(f->written + blt_start, 1, n_blt);
    return rc;
}

static ct_code writer_finish(ct_uvh5_file *f, ct_err *err)
{
    for (size_t i = 0; i < f->nblts; i++)
        if (!f->written[i])
            return ct_fail(err, CT_ESTATE, "uvh5: %s: blt %zu was never written; file discarded",
                           f->path, i);
    if (close_file(f) < 0)
        return io_fail(err, f->tmp_path, "cannot close file");
    if (ct_fsync_path(f->tmp_path, false) < 0)
        return ct_fail(err, CT_EIO, "%s: fsync: %s", f->tmp_path, strerror(errno));
    if (rename(f->tmp_path, f->path) < 0)
        return ct_fail(err, CT_EIO, "rename %s -> %s: %s", f->tmp_path, f->path, strerror(errno));
    /* Best effort: make the rename itself durable. */
    ct_fsync_parent(f->path);
    return CT_OK;
}

ct_code ct_uvh5_close(ct_uvh5_file *f, ct_err *err)
{
    if (f == NULL)
        return CT_OK;
    ct_code rc = CT_OK;
    quiet q;
    quiet_begin(&q);
    if (f->writing) {
        rc = writer_finish(f, err);
        if (rc != CT_OK)
            writer_discard(f);
    } else if (close_file(f) < 0) {
        rc = io_fail(err, f->path, "cannot close file");
    }
    file_free(f);
    quiet_end(&q);
    return rc;
}

void ct_uvh5_abort(ct_uvh5_file *f)
{
    if (f == NULL)
        return;
    quiet q;
    quiet_begin(&q);
    if (f->writing)
        writer_discard(f);
    file_free(f);
    quiet_end(&q);
}

const ct_uvh5_header *ct_uvh5_header_get(const ct_uvh5_file *f)
{
    return (f == NULL || f->writing) ? NULL : &f->hdr;
}

ct_uvh5_write_opts ct_uvh5_layout(const ct_uvh5_file *f)
{
    return f ? f->layout : (ct_uvh5_write_opts){0};
}

/* ---- Reading -------------------------------------------------------------------------- */

/* Where a reader is: the file (for messages) and the group it reads from. */
typedef struct rctx {
    const char *path;
    const char *gname; /* "Header", "Header/extra_keywords", "Data" */
    hid_t g;
} rctx;

/* Opens gname/name, or fails naming it. */
static ct_code r_open(const rctx *r, const char *name, hid_t *d, ct_err *err)
{
    htri_t e = H5Lexists(r->g, name, H5P_DEFAULT);
    if (e <= 0)
        return CORRUPT(err, r->path, "%s/%s is missing", r->gname, name);
    if ((*d = H5Dopen2(r->g, name, H5P_DEFAULT)) < 0)
        return CORRUPT(err, r->path, "%s/%s cannot be opened as a dataset", r->gname, name);
    return CT_OK;
}

/* The shape of dataset d: rank 0 for a scalar. */
/* Whether a dataset's storage agrees with its own layout. HDF5 1.10 trusts the layout
 * message: an unfiltered chunk stored smaller than its declared chunk shape, or a compact
 * buffer smaller than the dataspace, is copied past its end on read (found by fuzz_uvh5).
 * Checked here once, before any read, so a damaged file is corrupt input, not a crash. */
static bool storage_agrees(hid_t d, int n, const hsize_t dims[4], const hsize_t maxdims[4])
{
    hid_t p = H5Dget_create_plist(d), t = H5Dget_type(d);
    size_t tsize = t < 0 ? 0 : H5Tget_size(t);
    H5D_layout_t lay = p < 0 ? H5D_LAYOUT_ERROR : H5Pget_layout(p);
    hsize_t stored = H5Dget_storage_size(d);
    bool ok = tsize > 0 && lay != H5D_LAYOUT_ERROR;
    if (ok && lay == H5D_COMPACT) {
        hsize_t npts = 1;
        for (int k = 0; k < n; k++)
            npts *= dims[k];
        ok = stored == npts * tsize;
    } else if (ok && lay == H5D_CHUNKED) {
        hsize_t ch[4] = {0}, bytes = tsize;
        ok = H5Pget_chunk(p, 4, ch) == n;
        for (int k = 0; ok && k < n; k++) {
            ok = ch[k] > 0 && (maxdims[k] == H5S_UNLIMITED || ch[k] <= maxdims[k]);
            bytes *= ch[k];
        }
        /* Filtered chunks are checked by their filter on decode; raw ones only here. */
        if (ok && H5Pget_nfilters(p) == 0)
            ok = stored % bytes == 0;
    }
    if (p >= 0)
        H5Pclose(p);
    if (t >= 0)
        H5Tclose(t);
    return ok;
}

static H5T_class_t type_class(hid_t d, size_t *size)
{
    hid_t t = H5Dget_type(d);
    if (t < 0)
        return H5T_NO_CLASS;
    H5T_class_t c = H5Tget_class(t);
    if (size != NULL)
        *size = H5Tget_size(t);
    H5Tclose(t);
    return c;
}

/* Whether a dataset's element type has a size its class can have: HDF5 sizes its
 * conversion buffers by the stored type, so a numeric type that claims gigabytes made a
 * read of one scalar allocate them (found by fuzz_uvh5). Strings may be long (a history). */
static bool type_size_sane(hid_t d, size_t *size)
{
    H5T_class_t c = type_class(d, size);
    switch (c) {
    case H5T_NO_CLASS: return false;
    case H5T_INTEGER:
    case H5T_FLOAT:
    case H5T_ENUM: return *size > 0 && *size <= 16;
    case H5T_COMPOUND: return *size > 0 && *size <= 64;
    case H5T_STRING: return *size > 0 && *size <= ((size_t)1 << 24);
    default: return *size > 0 && *size <= 4096;
    }
}

static ct_code r_shape(const rctx *r, const char *name, hid_t d, int *rank, hsize_t dims[4],
                       ct_err *err)
{
    *rank = -1;
    hsize_t maxdims[4] = {0};
    hid_t s = H5Dget_space(d);
    int n = s < 0 ? -1 : H5Sget_simple_extent_ndims(s);
    if (n >= 0 && n <= 4)
        H5Sget_simple_extent_dims(s, dims, maxdims);
    if (s >= 0)
        H5Sclose(s);
    if (n < 0 || n > 4)
        return CORRUPT(err, r->path, "%s/%s has an unreadable or unexpected shape", r->gname, name);
    size_t tsize = 0;
    if (!type_size_sane(d, &tsize))
        return CORRUPT(err, r->path, "%s/%s has elements of %zu bytes, more than its type can be",
                       r->gname, name, tsize);
    if (!storage_agrees(d, n, dims, maxdims))
        return CORRUPT(err, r->path, "%s/%s has storage that disagrees with its layout", r->gname,
                       name);
    *rank = n;
    return CT_OK;
}

enum shape {
    SH_SCALAR,      /* () or (1,) */
    SH_VEC,         /* (n,) */
    SH_ROWS3,       /* (n, 3) */
    SH_FREQ,        /* (n,) or (1, n): newer and older freq_array */
    SH_SCALAR_OR_N, /* () or (n,): older files have one channel_width for all */
};

static bool shape_ok(enum shape sh, hsize_t n, int rank, const hsize_t *dims, bool *scalar)
{
    *scalar = false;
    switch (sh) {
    case SH_SCALAR: return rank == 0 || (rank == 1 && dims[0] == 1);
    case SH_VEC: return rank == 1 && dims[0] == n;
    case SH_ROWS3: return rank == 2 && dims[0] == n && dims[1] == 3;
    case SH_FREQ: return (rank == 1 && dims[0] == n) || (rank == 2 && dims[0] == 1 && dims[1] == n);
    case SH_SCALAR_OR_N:
        if (rank == 0 || (rank == 1 && dims[0] == 1 && n != 1)) {
            *scalar = true;
            return true;
        }
        return rank == 1 && dims[0] == n;
    }
    return false;
}

static ct_code read_num_impl(const rctx *r, const char *name, hid_t mtype, enum shape sh, hsize_t n,
                             void *buf, size_t elem, void **made, ct_err *err);

/* Reads a numeric dataset of the given shape into buf (converted to mtype). With
 * SH_SCALAR_OR_N a stored scalar fills all n elements of a double buf. */
static ct_code read_num(const rctx *r, const char *name, hid_t mtype, enum shape sh, hsize_t n,
                        void *buf, ct_err *err)
{
    return read_num_impl(r, name, mtype, sh, n, buf, 0, NULL, err);
}

/* The same into a new array of n (SH_ROWS3: 3 n) elements of elem bytes, made only once
 * the dataset has been found to hold them: a count in the header is no promise, and
 * room made for a damaged one (a billion antennas) failed as out of memory -- retried --
 * instead of as the corrupt input it is (found by fuzz_uvh5). */
static ct_code read_num_new(const rctx *r, const char *name, hid_t mtype, enum shape sh, hsize_t n,
                            size_t elem, void **out, ct_err *err)
{
    *out = NULL;
    return read_num_impl(r, name, mtype, sh, n, NULL, elem, out, err);
}

static ct_code read_num_impl(const rctx *r, const char *name, hid_t mtype, enum shape sh, hsize_t n,
                             void *buf, size_t elem, void **made, ct_err *err)
{
    hid_t d = H5I_INVALID_HID; /* set by r_open on success; GCC -O3 cannot see it */
    ct_code rc = r_open(r, name, &d, err);
    if (rc != CT_OK)
        return rc;
    int rank = -1;
    hsize_t dims[4];
    bool scalar = false;
    H5T_class_t c = type_class(d, NULL);
    if ((rc = r_shape(r, name, d, &rank, dims, err)) != CT_OK)
        ;
    else if (c != H5T_INTEGER && c != H5T_FLOAT)
        rc = CORRUPT(err, r->path, "%s/%s is not numeric", r->gname, name);
    else if (!shape_ok(sh, n, rank, dims, &scalar))
        rc = CORRUPT(err, r->path, "%s/%s has rank %d shape (%llu, ...), expected %llu elements",
                     r->gname, name, rank, rank > 0 ? (unsigned long long)dims[0] : 0ULL,
                     (unsigned long long)(sh == SH_SCALAR ? 1 : n));
    else if (made != NULL &&
             (buf = *made = calloc((size_t)(sh == SH_ROWS3 ? 3 * n : n), elem)) == NULL)
        rc = ct_fail(err, CT_ENOMEM, "out of memory reading %s/%s of %s", r->gname, name, r->path);
    else if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = CORRUPT(err, r->path, "%s/%s cannot be read", r->gname, name);
    H5Dclose(d);
    if (rc == CT_OK && scalar && n > 1)
        for (hsize_t i = 1; i < n; i++)
            ((double *)buf)[i] = ((double *)buf)[0];
    return rc;
}

/* Reads a dataset of n strings (fixed or variable length) into out[0..n), malloc'd. */
static ct_code read_strings_d(const rctx *r, const char *name, hid_t d, size_t n, char **out,
                              ct_err *err)
{
    hid_t ft = H5Dget_type(d);
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
        if (ft >= 0)
            H5Tclose(ft);
        return CORRUPT(err, r->path, "%s/%s is not a string", r->gname, name);
    }
    ct_code rc = CT_OK;
    /* HDF5 never converts between character sets, so read in the file's (h5py writes
     * Python str as UTF-8); the bytes are kept as they are. */
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5T_cset_t cset = H5Tget_cset(ft);
    if (mt < 0 || cset < 0 || H5Tset_cset(mt, cset) < 0) {
        if (mt >= 0)
            H5Tclose(mt);
        H5Tclose(ft);
        return CORRUPT(err, r->path, "%s/%s has an unusable string type", r->gname, name);
    }
    if (H5Tis_variable_str(ft) > 0) {
        char **v = calloc(n, sizeof *v);
        hid_t s = H5Dget_space(d);
        if (v == NULL || s < 0) {
            rc = ct_fail(err, CT_ENOMEM, "out of memory reading %s", name);
        } else if (H5Tset_size(mt, H5T_VARIABLE) < 0 ||
                   H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
            rc = CORRUPT(err, r->path, "%s/%s cannot be read", r->gname, name);
        } else {
            for (size_t i = 0; i < n && rc == CT_OK; i++)
                if ((out[i] = strdup(v[i] ? v[i] : "")) == NULL)
                    rc = ct_fail(err, CT_ENOMEM, "out of memory reading %s", name);
            H5Dvlen_reclaim(mt, s, H5P_DEFAULT, v);
        }
        if (s >= 0)
            H5Sclose(s);
        free(v);
    } else {
        /* Fixed length w: read as NUL-padded w bytes into w + 1 so each is terminated
         * whether the file pads with NULs, spaces or terminates. */
        size_t w = H5Tget_size(ft);
        char *buf = (w > 0 && w < ((size_t)1 << 24)) ? calloc(n, w + 1) : NULL;
        if (buf == NULL) {
            rc = w > 0 && w < ((size_t)1 << 24)
                     ? ct_fail(err, CT_ENOMEM, "out of memory reading %s", name)
                     : CORRUPT(err, r->path, "%s/%s has string size %zu", r->gname, name, w);
        } else if (H5Tset_size(mt, w + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
                   H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            rc = CORRUPT(err, r->path, "%s/%s cannot be read", r->gname, name);
        } else {
            for (size_t i = 0; i < n && rc == CT_OK; i++) {
                char *s = buf + i * (w + 1);
                s[w] = '\0';
                size_t len = strlen(s);
                while (len > 0 && s[len - 1] == ' ') /* SPACEPAD */
                    s[--len] = '\0';
                if ((out[i] = strdup(s)) == NULL)
                    rc = ct_fail(err, CT_ENOMEM, "out of memory reading %s", name);
            }
        }
        free(buf);
    }
    H5Tclose(mt);
    H5Tclose(ft);
    return rc;
}

/* A scalar string; when optional and absent, *out stays NULL. */
static ct_code read_str(const rctx *r, const char *name, bool optional, char **out, ct_err *err)
{
    if (optional && H5Lexists(r->g, name, H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return CT_OK;
    }
    hid_t d = H5I_INVALID_HID; /* set by r_open on success; GCC -O3 cannot see it */
    ct_code rc = r_open(r, name, &d, err);
    if (rc != CT_OK)
        return rc;
    int rank = -1;
    hsize_t dims[4];
    bool scalar;
    if ((rc = r_shape(r, name, d, &rank, dims, err)) == CT_OK) {
        if (!shape_ok(SH_SCALAR, 1, rank, dims, &scalar))
            rc = CORRUPT(err, r->path, "%s/%s is not a single string", r->gname, name);
        else
            rc = read_strings_d(r, name, d, 1, out, err);
    }
    H5Dclose(d);
    return rc;
}

/* A bool: an enum (h5py's FALSE/TRUE) or an integer; nonzero is true. */
static ct_code read_bool(const rctx *r, const char *name, bool *out, ct_err *err)
{
    hid_t d = H5I_INVALID_HID; /* set by r_open on success; GCC -O3 cannot see it */
    ct_code rc = r_open(r, name, &d, err);
    if (rc != CT_OK)
        return rc;
    int rank = -1;
    hsize_t dims[4];
    bool scalar;
    size_t size = 0;
    H5T_class_t c = type_class(d, &size);
    long long v = 0;
    if ((rc = r_shape(r, name, d, &rank, dims, err)) != CT_OK)
        ;
    else if (!shape_ok(SH_SCALAR, 1, rank, dims, &scalar))
        rc = CORRUPT(err, r->path, "%s/%s is not a scalar", r->gname, name);
    else if (c == H5T_ENUM && size == 1) {
        int8_t b = 0;
        hid_t ft = H5Dget_type(d), mt = ft < 0 ? ft : H5Tget_native_type(ft, H5T_DIR_ASCEND);
        if (mt < 0 || H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, &b) < 0)
            rc = CORRUPT(err, r->path, "%s/%s cannot be read", r->gname, name);
        v = b;
        if (mt >= 0)
            H5Tclose(mt);
        if (ft >= 0)
            H5Tclose(ft);
    } else if (c == H5T_INTEGER) {
        if (H5Dread(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0)
            rc = CORRUPT(err, r->path, "%s/%s cannot be read", r->gname, name);
    } else
        rc = CORRUPT(err, r->path, "%s/%s is not a bool", r->gname, name);
    H5Dclose(d);
    *out = v != 0;
    return rc;
}

typedef struct kw_walk {
    const char *path;
    ct_uvh5_header *h;
    ct_code rc;
    ct_err *err;
} kw_walk;

/* One extra keyword. Scalars of numbers and strings are kept; anything else (arrays,
 * groups, compound values pyuvdata may store) is skipped, not an error. */
static herr_t kw_cb(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    kw_walk *w = data;
    if (info->type != H5L_TYPE_HARD)
        return 0;
    /* Only datasets are keywords; a subgroup is skipped. */
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    bool is_dataset = o >= 0 && H5Iget_type(o) == H5I_DATASET;
    if (o >= 0)
        H5Oclose(o);
    if (!is_dataset) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    rctx r = {w->path, "Header/extra_keywords", g};
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    if (d < 0) {
        w->rc = CORRUPT(w->err, w->path, "Header/extra_keywords/%s cannot be opened", name);
        return -1;
    }
    int rank = -1;
    hsize_t dims[4];
    bool scalar;
    H5T_class_t c = type_class(d, NULL);
    ct_code rc = r_shape(&r, name, d, &rank, dims, w->err);
    if (rc == CT_OK && shape_ok(SH_SCALAR, 1, rank, dims, &scalar)) {
        if (c == H5T_STRING) {
            char *s = NULL;
            rc = read_strings_d(&r, name, d, 1, &s, w->err);
            if (rc == CT_OK)
                rc = ct_uvh5_keyword_set_string(w->h, name, s, w->err);
            free(s);
        } else if (c == H5T_INTEGER || c == H5T_FLOAT) {
            double v;
            if (H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0)
                rc = CORRUPT(w->err, w->path, "Header/extra_keywords/%s cannot be read", name);
            else
                rc = ct_uvh5_keyword_set_double(w->h, name, v, w->err);
        }
    }
    H5Dclose(d);
    H5Eclear2(H5E_DEFAULT);
    w->rc = rc;
    return rc == CT_OK ? 0 : -1;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static ct_code read_header(ct_uvh5_file *f, hid_t g, ct_err *err)
{
    const char *path = f->path;
    ct_uvh5_header *h = &f->hdr;
    rctx r = {path, "Header", g};
    ct_code rc;
    struct {
        const char *name;
        int *v;
    } counts[] = {{"Nants_data", &h->Nants_data},
                  {"Nants_telescope", &h->Nants_telescope},
                  {"Nbls", &h->Nbls},
                  {"Nblts", &h->Nblts},
                  {"Ntimes", &h->Ntimes},
                  {"Nfreqs", &h->Nfreqs},
                  {"Npols", &h->Npols},
                  {"Nspws", &h->Nspws}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        long long v = 0;
        if ((rc = read_num(&r, counts[i].name, H5T_NATIVE_LLONG, SH_SCALAR, 1, &v, err)) != CT_OK)
            return rc;
        if (v <= 0 || v > INT32_MAX)
            return CORRUPT(err, path, "Header/%s = %lld is out of range", counts[i].name, v);
        *counts[i].v = (int)v;
    }
    if (h->Nspws != 1)
        return ct_fail(err, CT_EINVAL, "unsupported input: %s: Header/Nspws = %d, only 1 is read",
                       path, h->Nspws);
    if ((long long)h->Nbls * h->Ntimes != h->Nblts)
        return CORRUPT(err, path, "Header/Nbls * Header/Ntimes = %lld but Header/Nblts = %d",
                       (long long)h->Nbls * h->Ntimes, h->Nblts);
    if (h->Nants_data > h->Nants_telescope)
        return CORRUPT(err, path, "Header/Nants_data %d > Header/Nants_telescope %d", h->Nants_data,
                       h->Nants_telescope);

    hsize_t nblts = (hsize_t)h->Nblts, nant = (hsize_t)h->Nants_telescope;
    hsize_t nf = (hsize_t)h->Nfreqs;
    if ((rc = read_num(&r, "latitude", H5T_NATIVE_DOUBLE, SH_SCALAR, 1, &h->latitude, err)) ||
        (rc = read_num(&r, "longitude", H5T_NATIVE_DOUBLE, SH_SCALAR, 1, &h->longitude, err)) ||
        (rc = read_num(&r, "altitude", H5T_NATIVE_DOUBLE, SH_SCALAR, 1, &h->altitude, err)) ||
        (rc = read_str(&r, "telescope_name", false, &h->telescope_name, err)) ||
        (rc = read_str(&r, "instrument", false, &h->instrument, err)) ||
        (rc = read_str(&r, "history", false, &h->history, err)) ||
        (rc = read_str(&r, "version", false, &h->version, err)) ||
        (rc = read_str(&r, "phase_type", true, &h->phase_type, err)) ||
        (rc = read_str(&r, "object_name", true, &h->object_name, err)))
        return rc;

#define READ_NEW(name, mtype, sh, n, p)                                                            \
    read_num_new(&r, name, mtype, sh, n, sizeof *(p), (void **)&(p), err)
    /* Each array made as its dataset is found to hold it; an integration time or channel
     * width stored once fills an array sized by a count that time_array or freq_array,
     * read before it, has already borne out. */
    if ((rc = READ_NEW("antenna_numbers", H5T_NATIVE_INT, SH_VEC, nant, h->antenna_numbers)) ||
        (rc = READ_NEW("antenna_positions", H5T_NATIVE_DOUBLE, SH_ROWS3, nant,
                       h->antenna_positions)) ||
        (rc = READ_NEW("ant_1_array", H5T_NATIVE_INT, SH_VEC, nblts, h->ant_1_array)) ||
        (rc = READ_NEW("ant_2_array", H5T_NATIVE_INT, SH_VEC, nblts, h->ant_2_array)) ||
        (rc = READ_NEW("time_array", H5T_NATIVE_DOUBLE, SH_VEC, nblts, h->time_array)) ||
        (rc = READ_NEW("integration_time", H5T_NATIVE_DOUBLE, SH_SCALAR_OR_N, nblts,
                       h->integration_time)) ||
        (rc = READ_NEW("uvw_array", H5T_NATIVE_DOUBLE, SH_ROWS3, nblts, h->uvw_array)) ||
        (rc = READ_NEW("freq_array", H5T_NATIVE_DOUBLE, SH_FREQ, nf, h->freq_array)) ||
        (rc = READ_NEW("channel_width", H5T_NATIVE_DOUBLE, SH_SCALAR_OR_N, nf, h->channel_width)) ||
        (rc = READ_NEW("spw_array", H5T_NATIVE_INT, SH_VEC, (hsize_t)h->Nspws, h->spw_array)) ||
        (rc = READ_NEW("polarization_array", H5T_NATIVE_INT, SH_VEC, (hsize_t)h->Npols,
                       h->polarization_array)))
        return rc;
#undef READ_NEW

    /* Every baseline's antennas must be in the antenna table. */
    int *sorted = malloc((size_t)nant * sizeof *sorted);
    if (sorted == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory reading %s", path);
    memcpy(sorted, h->antenna_numbers, (size_t)nant * sizeof *sorted);
    qsort(sorted, (size_t)nant, sizeof *sorted, cmp_int);
    for (hsize_t k = 0; k < nblts && rc == CT_OK; k++) {
        const int *a1 = bsearch(&h->ant_1_array[k], sorted, (size_t)nant, sizeof *sorted, cmp_int);
        const int *a2 = bsearch(&h->ant_2_array[k], sorted, (size_t)nant, sizeof *sorted, cmp_int);
        if (a1 == NULL || a2 == NULL)
            rc = CORRUPT(err, path,
                         "Header/ant_%d_array[%llu] = %d is not in Header/antenna_numbers",
                         a1 == NULL ? 1 : 2, (unsigned long long)k,
                         a1 == NULL ? h->ant_1_array[k] : h->ant_2_array[k]);
    }
    free(sorted);
    if (rc != CT_OK)
        return rc;

    /* antenna_names: n fixed or variable strings. */
    hid_t d = H5I_INVALID_HID; /* set by r_open on success; GCC -O3 cannot see it */
    if ((rc = r_open(&r, "antenna_names", &d, err)) != CT_OK)
        return rc;
    int rank = -1;
    hsize_t dims[4];
    bool scalar;
    if ((rc = r_shape(&r, "antenna_names", d, &rank, dims, err)) == CT_OK) {
        if (!shape_ok(SH_VEC, nant, rank, dims, &scalar))
            rc = CORRUPT(err, path,
                         "Header/antenna_names does not have Nants_telescope = %d "
                         "entries",
                         h->Nants_telescope);
        else if ((h->antenna_names = calloc((size_t)nant, sizeof *h->antenna_names)) == NULL)
            rc = ct_fail(err, CT_ENOMEM, "out of memory reading %s", path);
        else
            rc = read_strings_d(&r, "antenna_names", d, (size_t)nant, h->antenna_names, err);
    }
    H5Dclose(d);
    if (rc != CT_OK)
        return rc;

    /* flex_spw arrived with memo 1.0; older files lack it and are single-window. */
    if (H5Lexists(g, "flex_spw", H5P_DEFAULT) > 0) {
        if ((rc = read_bool(&r, "flex_spw", &h->flex_spw, err)) != CT_OK)
            return rc;
        if (h->flex_spw)
            return ct_fail(err, CT_EINVAL, "unsupported input: %s: Header/flex_spw is true", path);
    }
    H5Eclear2(H5E_DEFAULT);

    /* The extra keywords are optional as a group. */
    if (H5Lexists(g, "extra_keywords", H5P_DEFAULT) > 0) {
        hid_t x = H5Gopen2(g, "extra_keywords", H5P_DEFAULT);
        if (x < 0)
            return CORRUPT(err, path, "Header/extra_keywords is not a group");
        kw_walk w = {path, h, CT_OK, err};
        herr_t hr = H5Literate(x, H5_INDEX_NAME, H5_ITER_INC, NULL, kw_cb, &w);
        H5Gclose(x);
        if (w.rc != CT_OK)
            return w.rc;
        if (hr < 0)
            return CORRUPT(err, path, "Header/extra_keywords cannot be listed");
    }
    H5Eclear2(H5E_DEFAULT);
    return CT_OK;
}

/* Opens one Data array and checks its rank-3/4 shape against the header. */
static ct_code open_data(ct_uvh5_file *f, const rctx *r, const char *name, hid_t *d, int *rank,
                         hsize_t dims[4], ct_err *err)
{
    const ct_uvh5_header *h = &f->hdr;
    ct_code rc = r_open(r, name, d, err);
    if (rc != CT_OK)
        return rc;
    if ((rc = r_shape(r, name, *d, rank, dims, err)) != CT_OK)
        return rc;
    bool ok = false;
    if (*rank == 4)
        ok = dims[0] == (hsize_t)h->Nblts && dims[1] == (hsize_t)h->Nspws &&
             dims[2] == (hsize_t)h->Nfreqs && dims[3] == (hsize_t)h->Npols;
    else if (*rank == 3)
        ok = dims[0] == (hsize_t)h->Nblts && dims[1] == (hsize_t)h->Nfreqs &&
             dims[2] == (hsize_t)h->Npols;
    if (!ok)
        return CORRUPT(err, f->path,
                       "Data/%s has rank %d shape (%llu, %llu, ...), expected (Nblts=%d, "
                       "[Nspws=1,] Nfreqs=%d, Npols=%d)",
                       name, *rank, (unsigned long long)(*rank > 0 ? dims[0] : 0),
                       (unsigned long long)(*rank > 1 ? dims[1] : 0), h->Nblts, h->Nfreqs,
                       h->Npols);
    return CT_OK;
}

static ct_code read_data_setup(ct_uvh5_file *f, hid_t g, ct_err *err)
{
    rctx r = {f->path, "Data", g};
    int rank_f, rank_n;
    hsize_t dims_f[4], dims_n[4];
    ct_code rc;
    if ((rc = open_data(f, &r, "visdata", &f->d_vis, &f->rank, f->dims, err)) ||
        (rc = open_data(f, &r, "flags", &f->d_flags, &rank_f, dims_f, err)) ||
        (rc = open_data(f, &r, "nsamples", &f->d_nsamples, &rank_n, dims_n, err)))
        return rc;
    if (rank_f != f->rank || rank_n != f->rank)
        return CORRUPT(err, f->path, "Data/visdata has rank %d but flags %d and nsamples %d",
                       f->rank, rank_f, rank_n);
    /* visdata: compound with float members r and i. */
    hid_t t = H5Dget_type(f->d_vis);
    bool ok = t >= 0 && H5Tget_class(t) == H5T_COMPOUND;
    if (ok) {
        int ir = H5Tget_member_index(t, "r"), ii = H5Tget_member_index(t, "i");
        ok = ir >= 0 && ii >= 0 && H5Tget_member_class(t, (unsigned)ir) == H5T_FLOAT &&
             H5Tget_member_class(t, (unsigned)ii) == H5T_FLOAT;
    }
    if (t >= 0)
        H5Tclose(t);
    if (!ok)
        return CORRUPT(err, f->path, "Data/visdata is not a compound of float r and i");
    size_t sz = 0;
    H5T_class_t c = type_class(f->d_flags, &sz);
    if (!((c == H5T_ENUM || c == H5T_INTEGER) && sz == 1))
        return CORRUPT(err, f->path, "Data/flags is not a one-byte bool enum");
    c = type_class(f->d_nsamples, NULL);
    if (c != H5T_FLOAT && c != H5T_INTEGER)
        return CORRUPT(err, f->path, "Data/nsamples is not numeric");
    f->layout.shape_4d = f->rank == 4;
    f->nblts = (size_t)f->hdr.Nblts;
    f->per_blt = (size_t)f->hdr.Nfreqs * (size_t)f->hdr.Npols;
    if ((f->m_vis = complex_type(H5T_NATIVE_FLOAT)) < 0)
        return ct_fail(err, CT_ENOMEM, "uvh5: cannot make the memory type");
    return CT_OK;
}

static ct_code open_body(ct_uvh5_file *f, ct_err *err)
{
    struct stat st;
    if (stat(f->path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return ct_fail(err, CT_ENOTFOUND, "%s: no such file", f->path);
        return ct_fail(err, CT_EIO, "%s: %s", f->path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                          "corrupt input: %s: not a regular file", f->path);
    int fd = open(f->path, O_RDONLY);
    if (fd < 0)
        return ct_fail(err, CT_EIO, "%s: %s", f->path, strerror(errno));
    close(fd);
    if (H5Fis_hdf5(f->path) <= 0)
        return CORRUPT(err, f->path, "not an HDF5 file");
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        if (fapl >= 0)
            H5Pclose(fapl);
        return io_fail(err, f->path, "cannot set up file access");
    }
    f->fid = H5Fopen(f->path, H5F_ACC_RDONLY, fapl);
    hid_t es = f->fid < 0 ? err_save() : H5I_INVALID_HID;
    H5Pclose(fapl);
    err_restore(es);
    if (f->fid < 0)
        return CORRUPT(err, f->path, "cannot open as HDF5");

    ct_code rc;
    if (H5Lexists(f->fid, "Header", H5P_DEFAULT) <= 0)
        return CORRUPT(err, f->path, "Header group is missing");
    hid_t g = H5Gopen2(f->fid, "Header", H5P_DEFAULT);
    if (g < 0)
        return CORRUPT(err, f->path, "Header is not a group");
    rc = read_header(f, g, err);
    H5Gclose(g);
    if (rc != CT_OK)
        return rc;
    /* uvw precision as stored, for ct_uvh5_layout. */
    hid_t d = H5Dopen2(f->fid, "Header/uvw_array", H5P_DEFAULT);
    if (d >= 0) {
        size_t sz = 0;
        type_class(d, &sz);
        f->layout.uvw_float32 = sz == 4;
        H5Dclose(d);
    }

    if (H5Lexists(f->fid, "Data", H5P_DEFAULT) <= 0)
        return CORRUPT(err, f->path, "Data group is missing");
    if ((g = H5Gopen2(f->fid, "Data", H5P_DEFAULT)) < 0)
        return CORRUPT(err, f->path, "Data is not a group");
    rc = read_data_setup(f, g, err);
    H5Gclose(g);
    return rc;
}

ct_code ct_uvh5_open(const char *path, ct_uvh5_file **out, ct_err *err)
{
    *out = NULL;
    if (path == NULL || *path == '\0')
        return ct_fail(err, CT_EINVAL, "uvh5: empty input path");
    ct_uvh5_file *f = file_new(path);
    if (f == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    quiet q;
    quiet_begin(&q);
    /* Files pyuvdata wrote keep flags and nsamples LZF-compressed. */
    ct_h5lzf_register();
    ct_code rc = open_body(f, err);
    if (rc != CT_OK)
        file_free(f);
    quiet_end(&q);
    if (rc == CT_OK)
        *out = f;
    return rc;
}

/* The child's report, over a pipe: the index of each file as it starts on it, then, for a
 * file that is refused, PROBE_REFUSED and the error. A child that dies leaves the index of
 * the file it died on last. */
enum { PROBE_REFUSED = 0xffffffffu };

/* The first and the last baseline-time of the Data arrays: a read at each end of their
 * chunk indexes, where damage HDF5 decodes wrongly shows (a NULL write on a failed
 * allocation, found by fuzz_uvh5), at the cost of two small reads. */
static ct_code probe_ends(ct_uvh5_file *f, ct_err *err)
{
    const size_t per = f->per_blt;
    float *vis = malloc(per * 2 * sizeof *vis), *ns = malloc(per * sizeof *ns);
    bool *fl = malloc(per * sizeof *fl);
    ct_code rc = vis && ns && fl ? CT_OK : ct_fail(err, CT_ENOMEM, "out of memory");
    if (rc == CT_OK)
        rc = ct_uvh5_read_blts(f, 0, 1, vis, fl, ns, err);
    if (rc == CT_OK && f->nblts > 1)
        rc = ct_uvh5_read_blts(f, f->nblts - 1, 1, vis, fl, ns, err);
    free(vis);
    free(ns);
    free(fl);
    return rc;
}

static void probe_child(int fd, const char *const *paths, size_t n)
{
    /* A crash here is the finding, reported by the parent: not a second report from the
     * handlers the MPI library installed in the parent (a backtrace on stderr). */
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
    for (size_t k = 0; k < sizeof fatal / sizeof fatal[0]; k++)
        signal(fatal[k], SIG_DFL);
    for (size_t i = 0; i < n; i++) {
        uint32_t at = (uint32_t)i;
        if (write(fd, &at, sizeof at) != (ssize_t)sizeof at)
            _exit(3);
        ct_uvh5_file *f = NULL;
        ct_err e;
        ct_err_clear(&e);
        if (ct_uvh5_open(paths[i], &f, &e) != CT_OK || probe_ends(f, &e) != CT_OK) {
            uint32_t mark = PROBE_REFUSED;
            if (write(fd, &mark, sizeof mark) != (ssize_t)sizeof mark ||
                write(fd, &e, sizeof e) != (ssize_t)sizeof e)
                _exit(3);
            _exit(1);
        }
        ct_uvh5_close(f, NULL);
    }
    _exit(0);
}

ct_code ct_uvh5_probe(const char *const *paths, size_t n, ct_err *err)
{
    if (n == 0)
        return CT_OK;
    int fds[2];
    if (pipe(fds) != 0)
        return ct_fail(err, CT_EIO, "uvh5 probe: pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return ct_fail(err, CT_EIO, "uvh5 probe: fork: %s", strerror(e));
    }
    if (pid == 0) {
        close(fds[0]);
        probe_child(fds[1], paths, n); /* never returns: _exit, no atexit handlers */
    }
    close(fds[1]);
    /* The report is a few bytes per file and one ct_err: read it whole, then reap. */
    uint32_t last = 0;
    bool refused = false, started = false;
    ct_err child_err;
    ct_err_clear(&child_err);
    bool hung = false;
    for (;;) {
        /* A header takes milliseconds; a child silent for a minute is stuck in a decoder
         * (a loop in a damaged B-tree) and is stopped. */
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int ready = poll(&pfd, 1, 60000);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready == 0) {
            hung = true;
            kill(pid, SIGKILL);
            break;
        }
        uint32_t v;
        ssize_t got = read(fds[0], &v, sizeof v);
        if (got < 0 && errno == EINTR)
            continue;
        if (got != (ssize_t)sizeof v)
            break;
        if (v == PROBE_REFUSED) {
            size_t have = 0;
            while (have < sizeof child_err) {
                ssize_t r = read(fds[0], (char *)&child_err + have, sizeof child_err - have);
                if (r < 0 && errno == EINTR)
                    continue;
                if (r <= 0)
                    break;
                have += (size_t)r;
            }
            refused = have == sizeof child_err;
            break;
        }
        last = v;
        started = true;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return CT_OK;
    if (refused) {
        child_err.msg[sizeof child_err.msg - 1] = '\0';
        return ct_fail_as(err, child_err.category, child_err.code, "%s", child_err.msg);
    }
    const char *path = started && last < n ? paths[last] : paths[0];
    if (hung)
        return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                          "corrupt input: %s: the HDF5 library did not finish reading its header "
                          "in 60 s",
                          path);
    if (WIFSIGNALED(status))
        return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                          "corrupt input: %s: the HDF5 library crashed reading it (signal %d)",
                          path, WTERMSIG(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
        return ct_fail(err, CT_EIO, "uvh5 probe of %s: its report could not be written", path);
    /* Any other end without a report: the child was stopped inside the library (a
     * sanitizer's handler exits instead of dying of the signal). */
    return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                      "corrupt input: %s: the HDF5 library failed reading it (exit %d)", path,
                      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

ct_code ct_uvh5_read_blts(ct_uvh5_file *f, size_t blt_start, size_t n_blt, float *vis, bool *flags,
                          float *nsamples, ct_err *err)
{
    if (f == NULL || f->writing)
        return ct_fail(err, CT_ESTATE, "uvh5: read from a file not open for reading");
    ct_code rc = range_check(f, blt_start, n_blt, err);
    if (rc != CT_OK)
        return rc;
    size_t n = n_blt * f->per_blt;
    int8_t *fl = NULL;
    if (flags != NULL && (fl = malloc(n)) == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory for %zu flags", n);
    quiet q;
    quiet_begin(&q);
    /* Flags come back as raw bytes of the stored type (enum or int8): no enum conversion,
     * so an out-of-range byte cannot fail the read, and any nonzero byte is true. */
    hid_t ft = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    if (vis != NULL && blt_io(f, f->d_vis, f->m_vis, blt_start, n_blt, vis, false) < 0)
        rc = io_fail(err, f->path, "cannot read Data/visdata");
    if (rc == CT_OK && flags != NULL) {
        ft = H5Dget_type(f->d_flags);
        mt = ft < 0 ? ft : H5Tget_native_type(ft, H5T_DIR_ASCEND);
        if (mt < 0 || blt_io(f, f->d_flags, mt, blt_start, n_blt, fl, false) < 0)
            rc = io_fail(err, f->path, "cannot read Data/flags");
        else
            for (size_t i = 0; i < n; i++)
                flags[i] = fl[i] != 0;
    }
    if (rc == CT_OK && nsamples != NULL &&
        blt_io(f, f->d_nsamples, H5T_NATIVE_FLOAT, blt_start, n_blt, nsamples, false) < 0)
        rc = io_fail(err, f->path, "cannot read Data/nsamples");
    if (mt >= 0)
        H5Tclose(mt);
    if (ft >= 0)
        H5Tclose(ft);
    quiet_end(&q);
    free(fl);
    return rc;
}

/* ---- A copy with more flags ---------------------------------------------------------- */

/* Flags move in blocks of about this many bytes. */
#define REFLAG_BLOCK_BYTES (16u << 20)

/* dst's Data/flags open for writing, unfiltered: a filtered one is unlinked and made
 * again, contiguous, with its type and shape (its old bytes stay as unused space). */
static hid_t reflag_dataset(hid_t fid)
{
    hid_t d = H5Dopen2(fid, "Data/flags", H5P_DEFAULT);
    if (d < 0)
        return d;
    hid_t dcpl = H5Dget_create_plist(d);
    const int nfilters = dcpl < 0 ? -1 : H5Pget_nfilters(dcpl);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (nfilters == 0)
        return d;
    hid_t t = nfilters > 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    hid_t sp = nfilters > 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    H5Dclose(d);
    d = H5I_INVALID_HID;
    if (t >= 0 && sp >= 0 && H5Ldelete(fid, "Data/flags", H5P_DEFAULT) >= 0)
        d = H5Dcreate2(fid, "Data/flags", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    close_id(&t, H5Tclose);
    close_id(&sp, H5Sclose);
    return d;
}

ct_code ct_uvh5_copy_reflag(const char *src, const char *dst, ct_uvh5_flag_fn mark, void *ctx,
                            ct_err *err)
{
    if (dst == NULL || *dst == '\0' || mark == NULL)
        return ct_fail(err, CT_EINVAL, "uvh5: copy_reflag needs an output path and a marker");
    ct_uvh5_file *f;
    ct_code rc = ct_uvh5_open(src, &f, err);
    if (rc != CT_OK)
        return rc;
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%lu", dst, (long)getpid(),
                 (unsigned long)atomic_fetch_add(&tmp_seq, 1)) >= (int)sizeof tmp) {
        ct_uvh5_close(f, NULL);
        return ct_fail(err, CT_EINVAL, "uvh5: output path too long: %s", dst);
    }
    const size_t per = f->per_blt;
    size_t nb = REFLAG_BLOCK_BYTES / per;
    nb = nb == 0 ? 1 : nb > f->nblts ? f->nblts : nb;
    bool *fl = malloc(nb * per);
    int8_t *raw = malloc(nb * per);
    if (fl == NULL || raw == NULL)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %zu flags", nb * per);
    if (rc == CT_OK)
        rc = ct_copy_file(src, tmp, err);
    const bool made = rc == CT_OK;
    quiet q;
    quiet_begin(&q);
    hid_t fid = H5I_INVALID_HID, d = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    if (rc == CT_OK) {
        hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (fapl >= 0 && H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0)
            fid = H5Fopen(tmp, H5F_ACC_RDWR, fapl);
        close_id(&fapl, H5Pclose);
        if (fid < 0 || (d = reflag_dataset(fid)) < 0)
            rc = io_fail(err, tmp, "cannot open Data/flags for writing");
    }
    if (rc == CT_OK) {
        hid_t ft = H5Dget_type(d);
        mt = ft < 0 ? ft : H5Tget_native_type(ft, H5T_DIR_ASCEND);
        close_id(&ft, H5Tclose);
        if (mt < 0)
            rc = io_fail(err, tmp, "cannot type Data/flags");
    }
    /* Bytes 0 and 1 in the stored type's own memory form: FALSE and TRUE of the bool enum. */
    for (size_t b0 = 0; rc == CT_OK && b0 < f->nblts; b0 += nb) {
        const size_t n = f->nblts - b0 < nb ? f->nblts - b0 : nb;
        if ((rc = ct_uvh5_read_blts(f, b0, n, NULL, fl, NULL, err)) != CT_OK)
            break;
        mark(ctx, b0, n, fl);
        for (size_t i = 0; i < n * per; i++)
            raw[i] = fl[i] ? 1 : 0;
        if (blt_io(f, d, mt, b0, n, raw, true) < 0)
            rc = io_fail(err, tmp, "cannot write Data/flags");
    }
    close_id(&mt, H5Tclose);
    close_id(&d, H5Dclose);
    if (fid >= 0 && H5Fclose(fid) < 0 && rc == CT_OK)
        rc = io_fail(err, tmp, "cannot close file");
    quiet_end(&q);
    ct_uvh5_close(f, NULL);
    free(fl);
    free(raw);
    if (rc == CT_OK && ct_fsync_path(tmp, false) < 0)
        rc = ct_fail(err, CT_EIO, "%s: fsync: %s", tmp, strerror(errno));
    if (rc == CT_OK && rename(tmp, dst) < 0)
        rc = ct_fail(err, CT_EIO, "rename %s -> %s: %s", tmp, dst, strerror(errno));
    if (rc == CT_OK)
        ct_fsync_parent(dst);
    else if (made)
        unlink(tmp);
    return rc;
}

/* ---- Parallel writing ----------------------------------------------------------------- */

/* A creation property list (group or dataset) without object time stamps. */
static hid_t untimed_plist(hid_t cls)
{
    hid_t pl = H5Pcreate(cls);
    if (pl >= 0 && H5Pset_obj_track_times(pl, 0) < 0) {
        H5Pclose(pl);
        return H5I_INVALID_HID;
    }
    return pl;
}

/* Contiguous, allocated at creation, never filled, no time stamps: the same bytes whatever
 * the number of ranks. */
static hid_t reproducible_dcpl(void)
{
    hid_t pl = untimed_plist(H5P_DATASET_CREATE);
    if (pl >= 0 &&
        (H5Pset_layout(pl, H5D_CONTIGUOUS) < 0 || H5Pset_alloc_time(pl, H5D_ALLOC_TIME_EARLY) < 0 ||
         H5Pset_fill_time(pl, H5D_FILL_TIME_NEVER) < 0)) {
        H5Pclose(pl);
        return H5I_INVALID_HID;
    }
    return pl;
}

/* The bytes a combined file of h takes at least: its three Data arrays and the
 * per-baseline-time header arrays -- a little less than the whole file, whose metadata
 * (a few kB) comes on top. */
static off_t planned_bytes(const ct_uvh5_header *h)
{
    const off_t per_blt = (off_t)h->Nfreqs * h->Npols * (8 + 1 + 4) + 56;
    return (off_t)h->Nblts * per_blt;
}

/* Room on the disk for a parallel file, taken before HDF5 writes anything. HDF5 1.10 does
 * not survive a failed flush at close: H5Fclose fails and leaves a half-freed file in its
 * ID table, which the library's own shutdown in MPI_Finalize then dereferences -- every rank
 * crashed at exit after a conversion met a full products disk (the fault harness,
 * tests/faults). So rank 0 first gives the planned bytes to a sibling file (nothing to undo
 * if the disk is full: no HDF5 file exists yet), and hands them to the real file as soon as
 * it exists. The reservation ends short of the file's end, so the metadata HDF5 flushes
 * at close (low offsets, allocated first) always has its room; only the tail of the last
 * array can still meet a full disk, a plain write error. A filesystem without
 * posix_fallocate (EOPNOTSUPP, EINVAL) is written unreserved. */
static ct_code reserve_hold(const char *reserve, off_t bytes, int *fd, ct_err *err)
{
    *fd = open(reserve, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (*fd < 0)
        return ct_fail(err, CT_EIO, "%s: %s", reserve, strerror(errno));
    int e = bytes > 0 ? posix_fallocate(*fd, 0, bytes) : 0;
    if (e == 0)
        return CT_OK;
    close(*fd);
    *fd = -1;
    unlink(reserve);
    if (e == EOPNOTSUPP || e == EINVAL)
        return CT_OK;
    return ct_fail(err, CT_EIO, "no room for %.1f MB beside %s: %s", (double)bytes / 1e6, reserve,
                   strerror(e));
}

static ct_code reserve_hand_over(const char *reserve, int fd, const char *path, off_t bytes,
                                 ct_err *err)
{
    if (fd < 0)
        return CT_OK;
    unlink(reserve);
    close(fd);
    int out = open(path, O_WRONLY | O_CLOEXEC);
    int e = out < 0 ? errno : posix_fallocate(out, 0, bytes);
    if (out >= 0)
        close(out);
    if (e == 0 || e == EOPNOTSUPP || e == EINVAL)
        return CT_OK;
    return ct_fail(err, CT_EIO, "no room for %.1f MB at %s: %s", (double)bytes / 1e6, path,
                   strerror(e));
}

static ct_code pcreate_body(ct_uvh5_file *f, MPI_Comm comm, const ct_uvh5_header *h, ct_err *err)
{

    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        hid_t es = err_save();
        if (fapl >= 0)
            H5Pclose(fapl);
        err_restore(es);
        return io_fail(err, f->tmp_path, "cannot set up parallel file access");
    }
    int me;
    MPI_Comm_rank(comm, &me);
    const off_t need = planned_bytes(h);
    char reserve[PATH_MAX + 16];
    int rfd = -1;
    ct_code crc = CT_OK;
    if (me == 0) {
        if (snprintf(reserve, sizeof reserve, "%s.reserve", f->tmp_path) >= (int)sizeof reserve)
            crc = ct_fail(err, CT_EINVAL, "uvh5: output path too long: %s", f->tmp_path);
        else
            crc = reserve_hold(reserve, need, &rfd, err);
    }
    if ((crc = ct_mpi_agree(comm, crc, err)) != CT_OK) {
        H5Pclose(fapl);
        return crc;
    }
    crc = create_file(f, fapl, err);
    if (me == 0 && crc == CT_OK)
        crc = reserve_hand_over(reserve, rfd, f->tmp_path, need, err);
    else if (me == 0 && rfd >= 0) {
        unlink(reserve);
        close(rfd);
    }
    if ((crc = ct_mpi_agree(comm, crc, err)) != CT_OK)
        return crc;

    wprops p = {untimed_plist(H5P_GROUP_CREATE), reproducible_dcpl()};
    ct_code rc = CT_OK;
    const char *what = "creation properties";
    if (p.gcpl < 0 || p.dcpl < 0 || write_header(f->fid, h, &f->layout, &p, &what) < 0)
        rc = io_fail(err, f->tmp_path, what);

    f->nblts = (size_t)h->Nblts;
    f->per_blt = (size_t)h->Nfreqs * (size_t)h->Npols;
    f->rank = 3;
    f->dims[0] = f->nblts;
    f->dims[1] = (hsize_t)h->Nfreqs;
    f->dims[2] = (hsize_t)h->Npols;
    hid_t g = H5I_INVALID_HID, fvis = H5I_INVALID_HID, fbool = H5I_INVALID_HID;
    hid_t s = H5I_INVALID_HID;
    if (rc == CT_OK) {
        const char *failed = NULL;
        if ((g = H5Gcreate2(f->fid, "Data", H5P_DEFAULT, p.gcpl, H5P_DEFAULT)) < 0)
            failed = "cannot create Data";
        else if ((fvis = complex_type(H5T_IEEE_F32LE)) < 0 ||
                 (fbool = bool_type(H5T_STD_I8LE)) < 0 ||
                 (s = H5Screate_simple(3, f->dims, NULL)) < 0)
            failed = "Data types";
        else if ((f->d_vis = H5Dcreate2(g, "visdata", fvis, s, H5P_DEFAULT, p.dcpl, H5P_DEFAULT)) <
                 0)
            failed = "Data/visdata";
        else if ((f->d_flags = H5Dcreate2(g, "flags", fbool, s, H5P_DEFAULT, p.dcpl, H5P_DEFAULT)) <
                 0)
            failed = "Data/flags";
        else if ((f->d_nsamples = H5Dcreate2(g, "nsamples", H5T_IEEE_F32LE, s, H5P_DEFAULT, p.dcpl,
                                             H5P_DEFAULT)) < 0)
            failed = "Data/nsamples";
        else if ((f->m_vis = complex_type(H5T_NATIVE_FLOAT)) < 0 ||
                 (f->dxpl = H5Pcreate(H5P_DATASET_XFER)) < 0 ||
                 H5Pset_dxpl_mpio(f->dxpl, H5FD_MPIO_COLLECTIVE) < 0)
            failed = "transfer properties";
        if (failed != NULL)
            rc = io_fail(err, f->tmp_path, failed);
    }
    hid_t es2 = rc != CT_OK ? err_save() : H5I_INVALID_HID;
    close_id(&s, H5Sclose);
    close_id(&fvis, H5Tclose);
    close_id(&fbool, H5Tclose);
    close_id(&g, H5Gclose);
    close_id(&p.gcpl, H5Pclose);
    close_id(&p.dcpl, H5Pclose);
    err_restore(es2);
    return rc;
}

ct_code ct_uvh5_pcreate(MPI_Comm comm, const char *tmp_path, const ct_uvh5_header *h,
                        ct_uvh5_file **out, ct_err *err)
{
    *out = NULL;
    if (tmp_path == NULL || *tmp_path == '\0')
        return ct_fail(err, CT_EINVAL, "uvh5: empty output path");
    ct_code rc = ct_uvh5_header_check(h, err);
    if (rc != CT_OK)
        return rc;
    ct_uvh5_file *f = file_new(tmp_path);
    if (f == NULL || (f->tmp_path = strdup(tmp_path)) == NULL) {
        if (f != NULL)
            file_free(f);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    f->writing = true;
    f->parallel = true;
    f->layout = (ct_uvh5_write_opts){.shape_4d = false, .uvw_float32 = false};
    quiet q;
    quiet_begin(&q);
    rc = pcreate_body(f, comm, h, err);
    if (rc != CT_OK) {
        writer_discard(f);
        file_free(f);
    }
    quiet_end(&q);
    if (rc == CT_OK)
        *out = f;
    return rc;
}

/* One collective H5Dwrite of a [blt][freq][pol] block; n == 0: an empty selection. */
static herr_t block_write(const ct_uvh5_file *f, hid_t d, hid_t mtype, const hsize_t off[3],
                          const hsize_t cnt[3], const void *buf)
{
    hsize_t m = cnt[0] * cnt[1] * cnt[2];
    hid_t fs = H5Dget_space(d);
    /* Shaped like the selection (see blt_io); a placeholder shape when empty. */
    static const hsize_t one[3] = {1, 1, 1};
    hid_t ms = H5Screate_simple(3, m > 0 ? cnt : one, NULL);
    herr_t rc = -1;
    if (fs >= 0 && ms >= 0) {
        if (m > 0)
            rc = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
        else
            rc = (H5Sselect_none(fs) < 0 || H5Sselect_none(ms) < 0) ? -1 : 0;
        if (rc >= 0)
            rc = H5Dwrite(d, mtype, ms, fs, f->dxpl, buf);
    }
    hid_t es = rc < 0 ? err_save() : H5I_INVALID_HID;
    if (fs >= 0)
        H5Sclose(fs);
    if (ms >= 0)
        H5Sclose(ms);
    err_restore(es);
    return rc;
}

ct_code ct_uvh5_pwrite(ct_uvh5_file *f, size_t blt_start, size_t n_blt, size_t freq_start,
                       size_t n_freq, const float *vis, const bool *flags, const float *nsamples,
                       ct_err *err)
{
    if (f == NULL || !f->parallel)
        return ct_fail(err, CT_ESTATE, "uvh5: parallel write to a file not made by pcreate");
    /* The writes below are collective: whatever goes wrong on this rank, it must still
     * make all three (empty if need be), or the other ranks wait forever. */
    ct_code rc = CT_OK;
    bool empty = n_blt == 0 || n_freq == 0;
    if (!empty &&
        (blt_start > f->nblts || n_blt > f->nblts - blt_start || freq_start > f->dims[1] ||
         n_freq > f->dims[1] - freq_start || vis == NULL || flags == NULL || nsamples == NULL)) {
        rc = ct_fail(err, CT_EINVAL, "uvh5: parallel write block outside the file");
        empty = true;
    }
    size_t n = empty ? 0 : n_blt * n_freq * (size_t)f->dims[2];
    int8_t *fl = malloc(n > 0 ? n : 1);
    if (fl == NULL) {
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %zu flags", n);
        empty = true;
        n = 0;
    }
    for (size_t i = 0; i < n; i++)
        fl[i] = flags[i] ? 1 : 0;
    hsize_t off[3] = {blt_start, freq_start, 0};
    hsize_t cnt[3] = {empty ? 0 : n_blt, empty ? 0 : n_freq, empty ? 0 : f->dims[2]};
    quiet q;
    quiet_begin(&q);
    hid_t mbool = bool_type(H5T_NATIVE_SCHAR);
    /* All three writes are attempted whatever happens, so every rank makes the same
     * collective calls. */
    herr_t h1 = block_write(f, f->d_vis, f->m_vis, off, cnt, vis);
    if (h1 < 0 && rc == CT_OK)
        rc = io_fail(err, f->tmp_path, "cannot write Data/visdata");
    /* Without the memory enum type, still take part: an empty write as int8. */
    herr_t h2 =
        mbool < 0
            ? (block_write(f, f->d_flags, H5T_NATIVE_SCHAR, off, (const hsize_t[3]){0, 0, 0}, fl),
               -1)
            : block_write(f, f->d_flags, mbool, off, cnt, fl);
    if (h2 < 0 && rc == CT_OK)
        rc = io_fail(err, f->tmp_path, "cannot write Data/flags");
    herr_t h3 = block_write(f, f->d_nsamples, H5T_NATIVE_FLOAT, off, cnt, nsamples);
    if (h3 < 0 && rc == CT_OK)
        rc = io_fail(err, f->tmp_path, "cannot write Data/nsamples");
    if (mbool >= 0)
        H5Tclose(mbool);
    quiet_end(&q);
    free(fl);
    return rc;
}

ct_code ct_uvh5_pclose(ct_uvh5_file *f, ct_err *err)
{
    if (f == NULL)
        return CT_OK;
    if (!f->parallel) {
        ct_uvh5_abort(f);
        return ct_fail(err, CT_ESTATE, "uvh5: pclose of a file not made by pcreate");
    }
    quiet q;
    quiet_begin(&q);
    ct_code rc = CT_OK;
    close_id(&f->dxpl, H5Pclose);
    close_id(&f->m_vis, H5Tclose);
    if (close_file(f) < 0)
        rc = io_fail(err, f->tmp_path, "cannot close file");
    file_free(f);
    quiet_end(&q);
    return rc;
}

ct_code ct_uvh5_pcreate_beside(MPI_Comm comm, const char *final_path, const ct_uvh5_header *h,
                               char *tmp, size_t tmp_size, ct_uvh5_file **out, ct_err *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    *out = NULL;
    memset(tmp, 0, tmp_size);
    ct_code rc = CT_OK;
    if (rank == 0 && snprintf(tmp, tmp_size, "%s.tmp-%ld-%lu", final_path, (long)getpid(),
                              (unsigned long)atomic_fetch_add(&tmp_seq, 1)) >= (int)tmp_size)
        rc = ct_fail(err, CT_EINVAL, "uvh5: output path too long: %s", final_path);
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        return rc;
    MPI_Bcast(tmp, (int)tmp_size, MPI_CHAR, 0, comm);
    rc = ct_uvh5_pcreate(comm, tmp, h, out, err);
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK) {
        ct_uvh5_abort(*out);
        *out = NULL;
        if (rank == 0)
            unlink(tmp);
    }
    return rc;
}

ct_code ct_uvh5_pcommit(MPI_Comm comm, ct_uvh5_file *f, ct_code rc, const char *tmp,
                        const char *final_path, ct_err *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    rc = ct_mpi_agree(comm, rc, err);
    ct_err ce;
    const ct_code crc = ct_uvh5_pclose(f, &ce);
    if (rc == CT_OK && crc != CT_OK) {
        rc = crc;
        if (err)
            *err = ce;
    }
    rc = ct_mpi_agree(comm, rc, err);
    if (rank == 0) {
        if (rc == CT_OK && ct_fsync_path(tmp, false) < 0)
            rc = ct_fail(err, CT_EIO, "%s: fsync: %s", tmp, strerror(errno));
        if (rc == CT_OK && rename(tmp, final_path) < 0)
            rc = ct_fail(err, CT_EIO, "rename %s -> %s: %s", tmp, final_path, strerror(errno));
        if (rc == CT_OK)
            ct_fsync_parent(final_path);
        else
            unlink(tmp);
    }
    return ct_mpi_agree(comm, rc, err);
}
