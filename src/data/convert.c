/* convert.c -- see convert.h. */
#define _POSIX_C_SOURCE 200809L
#include "convert.h"

#include "mpiutil.h"

#include "fsutil.h"

#include "groups.h"
#include "uvh5.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes of buffers per visibility sample in one block: vis (8), nsamples (4), flags as
 * bool (1), the writer's int8 copy (1), and the one-subband staging buffers (13/16).
 * MPI-IO's collective buffer (ROMIO cb_buffer_size, 16 MiB) comes on top. */
#define BYTES_PER_SAMPLE 15
/* Bytes of Data per sample in the file: visdata (8), nsamples (4), flags (1). */
#define FILE_BYTES_PER_SAMPLE 13

#define HISTORY_NOTE "combined by contimg convert from 16 subbands"

/* ---- Agreement across ranks ------------------------------------------------------------ */

/* ---- The group -------------------------------------------------------------------------- */

typedef struct group {
    ct_uvh5_file *f[CT_SUBBANDS]; /* by subband number */
    const ct_uvh5_header *h[CT_SUBBANDS];
    bool reversed; /* channels descend within each subband */
    int nchan;
} group;

static void group_close(group *g)
{
    for (int s = 0; s < CT_SUBBANDS; s++) {
        ct_uvh5_close(g->f[s], NULL);
        g->f[s] = NULL;
        g->h[s] = NULL;
    }
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Sorts the inputs into subband slots by name. */
static ct_code group_slots(const char *const *inputs, size_t n, const char *slot[CT_SUBBANDS],
                           ct_err *e)
{
    for (int s = 0; s < CT_SUBBANDS; s++)
        slot[s] = NULL;
    for (size_t i = 0; i < n; i++) {
        char ts[CT_TIMESTAMP_LEN + 1];
        double t;
        int sb;
        bool inc;
        if (inputs[i] == NULL || !ct_subband_name_parse(base_name(inputs[i]), ts, &t, &sb, &inc))
            return ct_fail(e, CT_EINVAL,
                           "incomplete_group: %s is not a subband file name "
                           "(YYYY-MM-DDTHH:MM:SS_sbNN.hdf5)",
                           inputs[i] ? inputs[i] : "(null)");
        if (inc)
            return ct_fail(e, CT_EINVAL, "incomplete_group: %s is still being written", inputs[i]);
        if (slot[sb] != NULL)
            return ct_fail(e, CT_EINVAL, "incomplete_group: two files for sb%02d: %s and %s", sb,
                           slot[sb], inputs[i]);
        slot[sb] = inputs[i];
    }
    char missing[CT_SUBBANDS * 6 + 1] = "";
    for (int s = 0; s < CT_SUBBANDS; s++)
        if (slot[s] == NULL) {
            size_t l = strlen(missing);
            snprintf(missing + l, sizeof missing - l, " sb%02d", s);
        }
    if (missing[0] != '\0')
        return ct_fail(e, CT_EINVAL, "incomplete_group: %zu files given, missing%s", n, missing);
    return CT_OK;
}

/* Opens one input, turning the reader's errors into categories. */
static ct_code open_input(const char *path, ct_uvh5_file **f, ct_err *e)
{
    ct_code rc = ct_uvh5_open(path, f, e);
    if (rc == CT_OK)
        return rc;
    char msg[CT_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", e->msg);
    /* The reader's own prefix gives way to the conversion's kind. */
    static const char corrupt[] = "corrupt input: ";
    const char *what =
        strncmp(msg, corrupt, sizeof corrupt - 1) == 0 ? msg + sizeof corrupt - 1 : msg;
    if (rc == CT_ENOTFOUND)
        return ct_fail(e, CT_EINVAL, "incomplete_group: %s", msg);
    if (rc == CT_EINVAL)
        return ct_fail_as(e, CT_CAT_CORRUPT_INPUT, CT_EINVAL, "corrupt_input: %s", what);
    return rc;
}

#define INCONSISTENT(e, s, ...)                                                                    \
    ct_fail(e, CT_EINVAL, "inconsistent_group: sb%02d disagrees with sb00: " __VA_ARGS__)

static bool same_ints(const int *a, const int *b, int n)
{
    return memcmp(a, b, (size_t)n * sizeof *a) == 0;
}

static bool same_doubles(const double *a, const double *b, int n)
{
    for (int i = 0; i < n; i++)
        if (!(a[i] == b[i]))
            return false;
    return true;
}

/* Whether x and y agree to a part in 1e9 (header numbers copied between files). */
static bool close9(double x, double y)
{
    return fabs(x - y) <= 1e-9 * fmax(fabs(x), fabs(y));
}

static ct_code check_against_ref(const group *g, int s, ct_err *e)
{
    const ct_uvh5_header *r = g->h[0], *h = g->h[s];
    const struct {
        const char *name;
        int a, b;
    } counts[] = {{"Nblts", h->Nblts, r->Nblts},
                  {"Ntimes", h->Ntimes, r->Ntimes},
                  {"Nbls", h->Nbls, r->Nbls},
                  {"Npols", h->Npols, r->Npols},
                  {"Nfreqs", h->Nfreqs, r->Nfreqs},
                  {"Nants_data", h->Nants_data, r->Nants_data},
                  {"Nants_telescope", h->Nants_telescope, r->Nants_telescope}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i].a != counts[i].b)
            return INCONSISTENT(e, s, "%s %d vs %d", s, counts[i].name, counts[i].a, counts[i].b);
    if (!same_ints(h->polarization_array, r->polarization_array, r->Npols))
        return INCONSISTENT(e, s, "polarization_array", s);
    if (!same_ints(h->ant_1_array, r->ant_1_array, r->Nblts) ||
        !same_ints(h->ant_2_array, r->ant_2_array, r->Nblts))
        return INCONSISTENT(e, s, "ant_1_array/ant_2_array (baseline order)", s);
    if (!same_doubles(h->time_array, r->time_array, r->Nblts))
        return INCONSISTENT(e, s, "time_array", s);
    if (!same_doubles(h->integration_time, r->integration_time, r->Nblts))
        return INCONSISTENT(e, s, "integration_time", s);
    /* The output carries sb00's uvw: every subband must agree, to the float32
     * rounding a correlator's files may carry. */
    for (int k = 0; k < 3 * r->Nblts; k++)
        if (!(fabs(h->uvw_array[k] - r->uvw_array[k]) <= 1e-6 * fmax(1.0, fabs(r->uvw_array[k]))))
            return INCONSISTENT(e, s, "uvw_array[%d] %.9g vs %.9g m", s, k / 3, h->uvw_array[k],
                                r->uvw_array[k]);
    if (strcmp(h->phase_type ? h->phase_type : "", r->phase_type ? r->phase_type : "") != 0)
        return INCONSISTENT(e, s, "phase_type", s);
    if (!same_ints(h->antenna_numbers, r->antenna_numbers, r->Nants_telescope) ||
        !same_doubles(h->antenna_positions, r->antenna_positions, 3 * r->Nants_telescope))
        return INCONSISTENT(e, s, "antenna table (antenna_numbers/antenna_positions)", s);
    for (int a = 0; a < r->Nants_telescope; a++)
        if (strcmp(h->antenna_names[a], r->antenna_names[a]) != 0)
            return INCONSISTENT(e, s, "antenna_names[%d] %s vs %s", s, a, h->antenna_names[a],
                                r->antenna_names[a]);
    if (!close9(h->latitude, r->latitude) || !close9(h->longitude, r->longitude) ||
        !close9(h->altitude, r->altitude))
        return INCONSISTENT(e, s, "telescope location", s);
    const ct_uvh5_keyword *kh = ct_uvh5_keyword_find(h, "phase_center_dec");
    const ct_uvh5_keyword *kr = ct_uvh5_keyword_find(r, "phase_center_dec");
    if ((kh == NULL) != (kr == NULL) ||
        (kh != NULL && (kh->is_string || kr->is_string || !close9(kh->value, kr->value))))
        return INCONSISTENT(e, s, "pointing (extra_keywords/phase_center_dec)", s);
    double w = fabs(r->channel_width[0]);
    if (!(w > 0) || !isfinite(w))
        return INCONSISTENT(e, s, "channel_width %.6f Hz is not a positive width", s, w);
    for (int c = 0; c < h->Nfreqs; c++)
        if (!close9(fabs(h->channel_width[c]), w))
            return INCONSISTENT(e, s, "channel_width[%d] %.6f Hz vs %.6f Hz", s, c,
                                h->channel_width[c], r->channel_width[0]);
    return CT_OK;
}

/* Channel order within subbands and contiguity across them. */
static ct_code check_freqs(group *g, ct_err *e)
{
    int nf = g->nchan;
    double w = fabs(g->h[0]->channel_width[0]);
    double tol = 1e-3 * w;
    g->reversed = nf > 1 && g->h[0]->freq_array[1] < g->h[0]->freq_array[0];
    double lo[CT_SUBBANDS], hi[CT_SUBBANDS];
    for (int s = 0; s < CT_SUBBANDS; s++) {
        const double *f = g->h[s]->freq_array;
        for (int c = 0; c + 1 < nf; c++) {
            double step = g->reversed ? f[c] - f[c + 1] : f[c + 1] - f[c];
            /* Written so that NaN fails too. */
            if (!(fabs(step - w) <= tol))
                return ct_fail(e, CT_EINVAL,
                               "inconsistent_group: sb%02d: channels %d and %d are %.3f Hz "
                               "apart, not one channel width (%.3f Hz) in the order of sb00",
                               s, c, c + 1, fabs(f[c + 1] - f[c]), w);
        }
        lo[s] = g->reversed ? f[nf - 1] : f[0];
        hi[s] = g->reversed ? f[0] : f[nf - 1];
    }
    for (int s = 0; s + 1 < CT_SUBBANDS; s++)
        if (!(fabs(lo[s] - hi[s + 1] - w) <= tol))
            return ct_fail(e, CT_EINVAL,
                           "inconsistent_group: frequencies are not contiguous and descending "
                           "with subband: sb%02d starts at %.3f Hz, sb%02d ends at %.3f Hz",
                           s, lo[s], s + 1, hi[s + 1]);
    return CT_OK;
}

static ct_code group_open(const char *const *inputs, size_t n, group *g, ct_err *e)
{
    memset(g, 0, sizeof *g);
    const char *slot[CT_SUBBANDS];
    ct_code rc = group_slots(inputs, n, slot, e);
    for (int s = 0; rc == CT_OK && s < CT_SUBBANDS; s++) {
        if ((rc = open_input(slot[s], &g->f[s], e)) == CT_OK)
            g->h[s] = ct_uvh5_header_get(g->f[s]);
    }
    if (rc == CT_OK)
        g->nchan = g->h[0]->Nfreqs;
    for (int s = 1; rc == CT_OK && s < CT_SUBBANDS; s++)
        rc = check_against_ref(g, s, e);
    if (rc == CT_OK)
        rc = check_freqs(g, e);
    if (rc != CT_OK)
        group_close(g);
    return rc;
}

/* The output header: sb00's, shallow-copied, with its own frequency axis and history.
 * Release with out_header_free (not ct_uvh5_header_free). */
static ct_code out_header(const group *g, ct_uvh5_header *o, ct_err *e)
{
    const ct_uvh5_header *r = g->h[0];
    *o = *r;
    int nc = g->nchan, nf = CT_SUBBANDS * nc;
    o->Nfreqs = nf;
    o->freq_array = malloc((size_t)nf * sizeof(double));
    o->channel_width = malloc((size_t)nf * sizeof(double));
    size_t hl = strlen(r->history) + sizeof HISTORY_NOTE + 2;
    o->history = malloc(hl);
    if (o->freq_array == NULL || o->channel_width == NULL || o->history == NULL)
        return ct_fail(e, CT_ENOMEM, "out of memory for the output header");
    snprintf(o->history, hl, "%s%s%s", r->history,
             r->history[0] != '\0' && r->history[strlen(r->history) - 1] != '\n' ? "\n" : "",
             HISTORY_NOTE);
    for (int k = 0; k < CT_SUBBANDS; k++) {
        const ct_uvh5_header *h = g->h[CT_SUBBANDS - 1 - k];
        for (int c = 0; c < nc; c++) {
            int src = g->reversed ? nc - 1 - c : c;
            o->freq_array[k * nc + c] = h->freq_array[src];
            o->channel_width[k * nc + c] = fabs(h->channel_width[src]);
        }
    }
    return CT_OK;
}

static void out_header_free(ct_uvh5_header *o)
{
    free(o->freq_array);
    free(o->channel_width);
    free(o->history);
    memset(o, 0, sizeof *o);
}

/* ---- Files ------------------------------------------------------------------------------ */

/* Reverses the channel axis of a [blt][chan][pol] block in place. */
static void reverse_channels(float *vis, bool *flags, float *ns, size_t nblt, int nc, int np)
{
    for (size_t b = 0; b < nblt; b++)
        for (int c = 0; c < nc / 2; c++)
            for (int p = 0; p < np; p++) {
                size_t i = (b * (size_t)nc + (size_t)c) * (size_t)np + (size_t)p;
                size_t j = (b * (size_t)nc + (size_t)(nc - 1 - c)) * (size_t)np + (size_t)p;
                float t0 = vis[2 * i], t1 = vis[2 * i + 1];
                vis[2 * i] = vis[2 * j];
                vis[2 * i + 1] = vis[2 * j + 1];
                vis[2 * j] = t0;
                vis[2 * j + 1] = t1;
                bool tb = flags[i];
                flags[i] = flags[j];
                flags[j] = tb;
                float tn = ns[i];
                ns[i] = ns[j];
                ns[j] = tn;
            }
}

/* The copying loop. Blocks of whole baseline-times (every channel of every subband)
 * go to the ranks in turn: block b to rank b mod size. A rank reads its block's rows
 * from all 16 files (contiguous reads) and writes them as one contiguous piece of the
 * output, so no write is a strided channel slice. Every rank makes the same number of
 * collective writes (an empty one when it has no block left). */
static ct_code copy_data(MPI_Comm comm, const group *g, ct_uvh5_file *out, size_t block_bytes,
                         unsigned long long *moved, ct_err *e)
{
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    const ct_uvh5_header *r = g->h[0];
    size_t nblts = (size_t)r->Nblts, nc = (size_t)g->nchan, np = (size_t)r->Npols;
    size_t sb_per_blt = nc * np, per_blt = CT_SUBBANDS * sb_per_blt;
    size_t rows = block_bytes / (per_blt * BYTES_PER_SAMPLE);
    if (rows < 1)
        rows = 1;
    if (rows > nblts)
        rows = nblts;
    size_t n_blocks = (nblts + rows - 1) / rows;
    size_t rounds = (n_blocks + (size_t)size - 1) / (size_t)size;
    /* One subband's rows as read, and the block's whole rows as written. */
    float *svis = malloc(rows * sb_per_blt * 2 * sizeof(float));
    float *sns = malloc(rows * sb_per_blt * sizeof(float));
    bool *sfl = malloc(rows * sb_per_blt * sizeof(bool));
    float *vis = malloc(rows * per_blt * 2 * sizeof(float));
    float *ns = malloc(rows * per_blt * sizeof(float));
    bool *fl = malloc(rows * per_blt * sizeof(bool));
    ct_code rc = CT_OK;
    if (!svis || !sns || !sfl || !vis || !ns || !fl)
        rc = ct_fail(e, CT_ENOMEM, "out of memory for a block of %zu blts", rows);
    *moved = 0;
    for (size_t i = 0; i < rounds; i++) {
        size_t blk = i * (size_t)size + (size_t)rank;
        bool mine = blk < n_blocks && rc == CT_OK;
        size_t start = mine ? blk * rows : 0;
        size_t n = mine ? (nblts - start < rows ? nblts - start : rows) : 0;
        for (int k = 0; mine && k < CT_SUBBANDS; k++) {
            int s = CT_SUBBANDS - 1 - k; /* output slot k holds sb(15 - k) */
            ct_code r2 = ct_uvh5_read_blts(g->f[s], start, n, svis, sfl, sns, e);
            if (r2 != CT_OK) {
                /* A file that validated and then fails to read is an I/O failure. */
                if (r2 == CT_EINVAL) {
                    e->code = CT_EIO;
                    e->category = ct_code_category(CT_EIO);
                }
                rc = e->code;
                mine = false;
                break;
            }
            if (g->reversed)
                reverse_channels(svis, sfl, sns, n, g->nchan, r->Npols);
            /* Row j of the subband goes to channels [k nc, (k + 1) nc) of row j. */
            for (size_t j = 0; j < n; j++) {
                size_t src = j * sb_per_blt, dst = j * per_blt + (size_t)k * sb_per_blt;
                memcpy(vis + 2 * dst, svis + 2 * src, 2 * sb_per_blt * sizeof(float));
                memcpy(ns + dst, sns + src, sb_per_blt * sizeof(float));
                memcpy(fl + dst, sfl + src, sb_per_blt * sizeof(bool));
            }
        }
        ct_err we;
        ct_code r3 =
            ct_uvh5_pwrite(out, start, mine ? n : 0, 0, CT_SUBBANDS * nc, vis, fl, ns, &we);
        if (r3 != CT_OK && rc == CT_OK) {
            rc = r3;
            *e = we;
        }
        if (mine && r3 == CT_OK)
            *moved += (unsigned long long)n * per_blt * FILE_BYTES_PER_SAMPLE;
    }
    free(svis);
    free(sns);
    free(sfl);
    free(vis);
    free(ns);
    free(fl);
    return rc;
}

/* The output replaces whatever is at out_path: never one of the inputs. Compared
 * by device and inode, so another name for the same file is caught too. */
static ct_code refuse_input_as_output(const char *const *inputs, size_t n, const char *out_path,
                                      ct_err *e)
{
    struct stat o;
    if (stat(out_path, &o) != 0)
        return CT_OK; /* nothing there yet */
    for (size_t i = 0; i < n; i++) {
        struct stat in;
        if (inputs[i] != NULL && stat(inputs[i], &in) == 0 && in.st_dev == o.st_dev &&
            in.st_ino == o.st_ino)
            return ct_fail(e, CT_EINVAL, "invalid_output: --out %s is the input %s", out_path,
                           inputs[i]);
    }
    return CT_OK;
}

ct_code ct_convert(MPI_Comm comm, const char *const *inputs, size_t n_inputs, const char *out_path,
                   const ct_convert_opts *opts, ct_convert_result *res, ct_err *err)
{
    double t0 = MPI_Wtime();
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    ct_err e;
    ct_err_clear(&e);
    if (res != NULL)
        memset(res, 0, sizeof *res);
    size_t block =
        opts != NULL && opts->block_bytes > 0 ? opts->block_bytes : CT_CONVERT_BLOCK_BYTES;

    /* 1. Every rank validates the group itself (same files, same verdict, same header). */
    group g;
    ct_code rc = CT_OK;
    if (out_path == NULL || *out_path == '\0')
        rc = ct_fail(&e, CT_EINVAL, "convert: empty output path");
    else if (inputs == NULL)
        rc = ct_fail(&e, CT_EINVAL, "incomplete_group: no input files");
    if (rc == CT_OK)
        rc = refuse_input_as_output(inputs, n_inputs, out_path, &e);
    if (rc == CT_OK)
        rc = group_open(inputs, n_inputs, &g, &e);
    else
        memset(&g, 0, sizeof g);
    ct_uvh5_header oh;
    memset(&oh, 0, sizeof oh);
    if (rc == CT_OK)
        rc = out_header(&g, &oh, &e);
    if ((rc = ct_mpi_agree(comm, rc, &e)) != CT_OK)
        goto done;

    /* 2. Create beside the output, copy, commit: collective throughout. */
    char tmp[4096];
    ct_uvh5_file *out = NULL;
    if ((rc = ct_uvh5_pcreate_beside(comm, out_path, &oh, tmp, sizeof tmp, &out, &e)) != CT_OK)
        goto done;
    unsigned long long moved = 0;
    rc = copy_data(comm, &g, out, block, &moved, &e);
    rc = ct_uvh5_pcommit(comm, out, rc, tmp, out_path, &e);
    if (rc == CT_OK && res != NULL) {
        unsigned long long total = 0;
        MPI_Allreduce(&moved, &total, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm);
        res->bytes_read = total;
        res->bytes_written = total;
        res->n_ranks = size;
        res->nblts = oh.Nblts;
        res->nfreqs = oh.Nfreqs;
        res->npols = oh.Npols;
        double dt = MPI_Wtime() - t0, dtmax = dt;
        MPI_Allreduce(&dt, &dtmax, 1, MPI_DOUBLE, MPI_MAX, comm);
        res->seconds = dtmax;
    }

done:
    out_header_free(&oh);
    group_close(&g);
    if (err != NULL)
        *err = e;
    return rc;
}

/* ---- Quality gate ----------------------------------------------------------------------- */

ct_code ct_convert_qa(const char *path, ct_qa_result *qa, ct_err *err)
{
    memset(qa, 0, sizeof *qa);
    ct_uvh5_file *f = NULL;
    ct_code rc = open_input(path, &f, err);
    if (rc != CT_OK)
        return rc;
    const ct_uvh5_header *h = ct_uvh5_header_get(f);
    size_t nblts = (size_t)h->Nblts, per_blt = (size_t)h->Nfreqs * (size_t)h->Npols;
    /* Opening checked header against Data; the frequency axis must also ascend. */
    qa->shapes_ok = true;
    for (int c = 0; c + 1 < h->Nfreqs; c++)
        if (!(h->freq_array[c + 1] > h->freq_array[c]))
            qa->shapes_ok = false;
    size_t rows = CT_CONVERT_BLOCK_BYTES / (per_blt * BYTES_PER_SAMPLE);
    if (rows < 1)
        rows = 1;
    if (rows > nblts)
        rows = nblts;
    float *vis = malloc(rows * per_blt * 2 * sizeof(float));
    bool *fl = malloc(rows * per_blt * sizeof(bool));
    if (vis == NULL || fl == NULL)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for QA of %s", path);
    for (size_t start = 0; rc == CT_OK && start < nblts; start += rows) {
        size_t n = nblts - start < rows ? nblts - start : rows;
        if ((rc = ct_uvh5_read_blts(f, start, n, vis, fl, NULL, err)) != CT_OK)
            break;
        for (size_t b = 0; b < n; b++) {
            bool is_auto = h->ant_1_array[start + b] == h->ant_2_array[start + b];
            for (size_t j = 0; j < per_blt; j++) {
                size_t i = b * per_blt + j;
                qa->n_samples++;
                if (fl[i]) {
                    qa->n_flagged++;
                    continue;
                }
                float re = vis[2 * i], im = vis[2 * i + 1];
                if (!isfinite(re) || !isfinite(im)) {
                    qa->n_nonfinite++;
                    continue;
                }
                if (is_auto) {
                    /* Cross-hand autocorrelations (XY, YX) are complex: only the
                     * parallel hands (XX, YY, ...) must be real and positive. */
                    int pol = h->polarization_array[j % (size_t)h->Npols];
                    bool parallel = pol == -5 || pol == -6 || pol == -1 || pol == -2 || pol == 1;
                    if (!parallel)
                        continue;
                    qa->n_auto++;
                    /* Exactly zero is a dead input (a correlator's lost antenna), whose
                     * baselines flagging flags; a file with one is not damaged. */
                    if (re == 0 && im == 0)
                        qa->n_auto_zero++;
                    else if (!(re > 0) || fabsf(im) > CT_QA_AUTO_IMAG_RATIO * fabsf(re))
                        qa->n_auto_bad++;
                }
            }
        }
    }
    free(vis);
    free(fl);
    ct_uvh5_close(f, NULL);
    if (rc != CT_OK)
        return rc;
    qa->fraction_flagged = qa->n_samples ? (double)qa->n_flagged / (double)qa->n_samples : 1.0;
    if (!qa->shapes_ok)
        snprintf(qa->reason, sizeof qa->reason, "freq_array does not ascend");
    else if (qa->n_nonfinite > 0)
        snprintf(qa->reason, sizeof qa->reason, "%llu unflagged samples are NaN or Inf",
                 qa->n_nonfinite);
    else if (qa->n_auto_bad > 0)
        snprintf(qa->reason, sizeof qa->reason,
                 "%llu unflagged autocorrelation samples are not real and positive",
                 qa->n_auto_bad);
    else if (!(qa->fraction_flagged < CT_QA_MAX_FLAGGED_FRACTION))
        snprintf(qa->reason, sizeof qa->reason, "%.3f of the samples are flagged (limit %.2f)",
                 qa->fraction_flagged, CT_QA_MAX_FLAGGED_FRACTION);
    qa->passed = qa->reason[0] == '\0';
    return CT_OK;
}
