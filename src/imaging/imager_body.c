/* imager_body.c -- the imager of imager.h at one precision of its grids,
 * compiled twice (imager_f64.c, imager_f32.c: CT_IMAGER_SINGLE 0 or 1) the
 * way FFTW itself is: one text, so that the two can never drift apart.
 * Only what lives on the uv grid changes type (greal, gcell: the slabs, the
 * halo rows, the transposed slab and their FFTW plans); the rows, weights,
 * taps and image columns stay in double precision in both. imager.c picks
 * one per imager. Not compiled on its own. */
#define _GNU_SOURCE /* M_PI */
#include "imager_impl.h"

#include "gridkernel.h"
#include "mpiutil.h"

#include <complex.h> /* before fftw3.h: fftw_complex is then double complex */
#include <fftw3-mpi.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef CT_IMAGER_SINGLE
#error "imager_body.c is included by imager_f32.c or imager_f64.c only"
#endif
#if CT_IMAGER_SINGLE
typedef float greal;
typedef float complex gcell;
#define GREAL_MPI    MPI_FLOAT
#define FFTW(name)   fftwf_##name
#define CT_IMP(name) ct_imp32_##name
#else
typedef double greal;
typedef double complex gcell;
#define GREAL_MPI    MPI_DOUBLE
#define FFTW(name)   fftw_##name
#define CT_IMP(name) ct_imp64_##name
#endif
typedef CT_IMP(imager) imp;
/* Complex cells in one 32-byte vector (2 or 4). */
enum { VC = 32 / (2 * (int)sizeof(greal)) };

/* Gridding tiles: CT_TILE cells a side (>= CT_GRID_MAX_SUPPORT - 1), coloured
 * by the parity of their place along each axis, plus a third colour for the
 * last tile of an odd count (it meets the first round the periodic edge). */
#define CT_TILE        16
#define CT_TILE_PHASES 9
_Static_assert(CT_TILE >= CT_GRID_MAX_SUPPORT - 1, "a kernel must not reach past the next tile");

/* Adjacent image columns a thread transforms at once (see rows_fft). */
enum { TRANSPOSE_BLOCK = 8 };

/* The most memory the slabs of one plane group may take (see setup_groups). */
#ifndef CT_IMAGER_GROUP_BYTES
#define CT_IMAGER_GROUP_BYTES (8.0 * 1024.0 * 1024.0 * 1024.0)
#endif

/* One row as it travels between ranks: its place in the rows' geometry
 * (its global baseline-time and its channel, two uint32 in one slot: see
 * rec_uvw), its weight, and the visibility. The visibility takes the slots
 * of a double complex, or with single-precision grids, where the held rows
 * keep it in float32 anyway, its two float32 parts in one slot (the
 * records are the load's peak: 24 bytes a row). Its global index travels
 * as its place: the records reach every rank in rank order, each rank's in
 * its own order, and every sort after is stable. */
enum { VIS_SLOTS = CT_IMAGER_SINGLE ? 1 : 2 };
enum { REC_BC, REC_WT, REC_VIS, REC_LEN = REC_VIS + VIS_SLOTS };

static inline void rec_set_vis(double *r, double complex v)
{
#if CT_IMAGER_SINGLE
    const float f[2] = {(float)creal(v), (float)cimag(v)};
    memcpy(r + REC_VIS, f, sizeof f);
#else
    r[REC_VIS] = creal(v);
    r[REC_VIS + 1] = cimag(v);
#endif
}

static inline double complex rec_vis(const double *r)
{
#if CT_IMAGER_SINGLE
    float f[2];
    memcpy(f, r + REC_VIS, sizeof f);
    return CMPLX(f[0], f[1]);
#else
    return CMPLX(r[REC_VIS], r[REC_VIS + 1]);
#endif
}

struct CT_IMP(imager) {
    MPI_Comm comm;
    int rank, size;
    int nx, ny, gx, gy;
    /* Slab rows are gs >= gx cells apart, and the slabs of a plane group
     * start at staggered offsets: a kernel's W rows on each of G planes
     * would otherwise fall on one set of the L1 cache (grids are multiples
     * of 4 KiB wide), and its set conflicts cost a third of a pass
     * (measured). The cells past gx are never read as data; FFTW-MPI
     * transposes them along as columns no one reads. */
    int gs;
    /* Compact rows (one rank, where no kernel wraps round the u edge): a
     * slab row holds only grid columns [cin0, cin0 + nin) as gridded, at
     * 0..nin-1, and after its transform along u only the image's columns,
     * image column i at i; rowlen (>= both) cells of it are ever written,
     * and rows are gs = a little more than rowlen apart (gs_full, the
     * create's, otherwise). Each row's transform runs in a thread's buffer
     * of gx cells (rowbuf, rowstride apart): the same plan on the same
     * numbers, so the same bits. Why: a row's used columns (|u| <= 12.4k
     * wavelengths of +-34.4k at the production geometry) and the image's
     * half of the transform are each under half of it, and a plane group
     * takes half the memory (0.7 GB less). */
    int compact, gs_full, rowlen;
    long cin0, nin;
    gcell *rowbuf;
    size_t rowstride;
    gcell **graw;       /* the plane group's allocations (gslab[q] inside) */
    size_t *graw_bytes; /* and their sizes (grid_alloc) */
    double cell;
    ct_gkernel k;
    int no_wterms;
    double max_bytes;
    int threads; /* OpenMP threads in this rank's loops */

    /* FFTW-MPI's slabs: rows [row0, row0 + nrow) of the gy x gx grid, and
     * columns [col0, col0 + ncol) of its transpose; every rank's, too. */
    ptrdiff_t row0, nrow, col0, ncol, alloc;
    ptrdiff_t *rows_start, *rows_count, *cols_start, *cols_count;
    int *row_owner; /* the owners of the gy grid rows */
    /* The weights' density grid (wnx by wny cells, weighting.h): density row
     * dr belongs to the rank that holds grid row qy dr, qy = gy / wny. */
    int wnx, wny, qy;
    int *drow_owner;
    gcell *slab, *tslab; /* tslab on more than one rank only (see rows_fft) */
    size_t slab_bytes;   /* each one's mapping (grid_alloc) */
    int slab_fresh;      /* slab has never been written: all zero */
    FFTW(plan) row_fwd, row_bwd, col_fwd, col_bwd, to_cols, to_rows;
    /* The forward column transforms go out of place, into a thread's own
     * column (colbuf + thread x colstride, in L2), where the pass sums it
     * into the image at once. */
    gcell *colbuf;
    size_t colstride;
    /* A model's image columns that hold a component (set_model): the
     * backward transforms need touch only these, the others being zero. */
    int *mcol, nmcol;
    /* Each pixel's first phase screen exp(-2 pi i w_first (n - 1 - mid)),
     * the same every pass: worked out once per load (a complex exponential
     * per pixel per pass was half a second at 4800^2). At the grids'
     * precision: its rounding is a fixed error of 6e-8 in float32. */
    gcell *scr0;

    double *corr_x, *corr_y;
    /* This rank's image columns: xs[i] for i < nxo, at column xcol[i] of
     * the transposed grid; per pixel (i, y), i-major: the w correction (at the grids'
     * precision, a fixed relative error like scr0's), and during a load
     * only, the w shift n - 1 - nm1_mid that scr0 is made from (set_model
     * works it out again for its few pixels: pixel_shift). */
    int nxo, *xs, *xcol;
    double *wshift;
    greal *corr_w;
    /* use_w: the w term is applied; wcand: create found the field large
     * enough for it (the slant decided at load may still change n - 1). */
    int use_w, wcand, slant_mode;
    double nm1_mid, dw, wmin;
    /* The plain grid's plane spacing and the half-diagonal of the field the
     * slant is decided for (ct_imager_geom's slant_nx, slant_ny): AUTO's
     * yardstick, the same on every load. */
    double dw_plain, slant_half;
    /* The slant projection (imager.h): rows hold w' = w + xi u + eta v, and
     * the least-squares moments it was fitted from (sum u u, u v, v v, u w,
     * v w over the kept rows, in density-row order). */
    double xi, eta, fitm[5];
    long plane_lo, plane_hi;

    /* Held rows, ordered by (first w plane, 8 x 8 density tile, global index). The
     * visibilities are kept with the phase common to the field applied
     * (times exp(-2 pi i w nm1_mid), see gridder.h), the frame every pass
     * grids and degrids in, so that no pass pays a complex exponential per
     * row; ct_imager_row undoes it. */
    size_t n;
    /* The rows' geometry (ct_imager_rows): every rank's baseline-times'
     * uvw and epochs in global order (ntab of them), each channel's scale;
     * a held row is its baseline-time hb[i] and channel hc[i]. wslant: the
     * slant is applied (row_uvw's w is then w'). */
    double *tab_uvw, *cscale;
    int *tab_epoch;
    size_t ntab;
    uint32_t *hb;
    uint16_t *hc;
    int wslant;
    /* At the grids' precision: in float32 (epsilon >= 1e-5) their rounding
     * is 6e-8 of each value, far below what the grids keep, and a row's
     * weight and visibilities take 20 bytes instead of 40 (1.1 GB less at
     * the production geometry). Every product and sum a pass forms from
     * them is still made in double. */
    greal *wt;
    gcell *vis; /* the residual: the loaded visibilities less the model's prediction */
    /* The model last set (mprev_n components as (x, y, flux) triples, the
     * same on every rank): set_model subtracts only what changed. */
    double *mprev;
    long mprev_n;
    /* Per slab row, whether any held row's kernel touches it (the FFTs
     * skip the rest). */
    unsigned char *row_used;
    /* Gridding tiles (setup_tiles): the held rows in runs of one plane
     * bucket and one tile, rows [run_from[r], run_to[r]); the tiles that
     * have runs in phase order, phase p's k in [phase_tile[p],
     * phase_tile[p + 1]), tile k (tile_id[k]) with runs [tile_run[2 k],
     * tile_run[2 k + 1]) in bucket order. */
    size_t *run_from, *run_to;
    int32_t *run_bucket;
    size_t *tile_run;
    long *tile_id;
    long phase_tile[CT_TILE_PHASES + 1];
    size_t *bucket; /* rows of plane bucket b: [bucket[b], bucket[b + 1]) */
    long nbuckets;
    /* Rows of the grid a degrid needs: (row0 + ext_lo + t) mod gy, t < ext_n. */
    long ext_lo, ext_n;
    gcell *ext;
    /* Plane groups (setup_groups): G slabs (the first is slab) and, on more
     * than one rank, G halo buffers (the first is ext); which planes have
     * rows on some rank; per pixel, the screen's step from plane to plane. */
    int group;
    gcell **gslab, **gext;
    /* gclean[q]: slab q is zero outside the rows some kernel touches (so a
     * pass need zero only those). FFTW-MPI's transposes write every row. */
    unsigned char *gclean;
    unsigned char *plane_any;
    /* At the grids' precision too: in float32 its rounding (6e-8) is
     * compounded over the planes of a pass (7 at the production geometry:
     * 4e-7, measured 1e-8 of the peak against the double gridder), and it
     * takes 8 bytes a pixel instead of 16 (0.18 GB at 4800^2); the running
     * screens it steps are double. */
    gcell *wstep;
    double need_bytes;   /* what ct_imager_create counted */
    double *acc;         /* a pass's image columns (the real part: all that is read) */
    double complex *scr; /* and its phase screens */

    int loaded;
    void (*on_copied)(void *); /* ct_imager_on_copied's, for the next load */
    void *on_copied_arg;
    double wsum;
    int nchan, nepoch;
    double *chan_w, *epoch_w;
    ct_imager_stats st;
};

static long mod_long(long a, long n)
{
    long r = a % n;
    return r < 0 ? r + n : r;
}

/* The uvw of baseline-time b in channel c, as the rows' geometry gives it:
 * the table's times the channel's scale, each product rounded once (for a
 * UVH5 file the very bits visset.h would give a row), and once the slant is
 * decided w' = w + (xi u + eta v), the sum a per-row w' was always formed
 * with. */
static inline __attribute__((always_inline)) void row_uvw(const imp *im, uint32_t b, unsigned c,
                                                          double uvw[3])
{
    const double *t = im->tab_uvw + 3 * (size_t)b, s = im->cscale[c];
    uvw[0] = t[0] * s;
    uvw[1] = t[1] * s;
    uvw[2] = t[2] * s;
    if (im->wslant)
        uvw[2] += im->xi * uvw[0] + im->eta * uvw[1];
}

/* Row i's visibility and natural weight, from whichever pair the caller gave
 * (ct_imager_rows: double or float32). */
static inline double complex rows_vis(const ct_imager_rows *rw, size_t i)
{
    return rw->vis ? rw->vis[i] : (double complex)rw->vis_f[i];
}

static inline double rows_weight(const ct_imager_rows *rw, size_t i)
{
    return rw->weight ? rw->weight[i] : (double)rw->weight_f[i];
}

/* A record's baseline-time and channel, two uint32 in the slot of a double
 * (memcpy: no division per lookup, and no arithmetic on the bits). */
static inline void rec_set_bc(double *r, uint32_t b, uint32_t c)
{
    const uint32_t bc[2] = {b, c};
    memcpy(r + REC_BC, bc, sizeof bc);
}

static inline void rec_bc(const double *r, uint32_t *b, uint32_t *c)
{
    uint32_t bc[2];
    memcpy(bc, r + REC_BC, sizeof bc);
    *b = bc[0];
    *c = bc[1];
}

static inline void rec_uvw(const imp *im, const double *r, double uvw[3])
{
    uint32_t b, c;
    rec_bc(r, &b, &c);
    row_uvw(im, b, c, uvw);
}

/* Where the kernel of a row at (u, v) starts: its first grid row (global,
 * mod gy) and first column (mod gx, the grid's centre at gx / 2). */
static inline void kernel_start(const imp *im, double u, double v, long *gv, long *cu)
{
    *gv = mod_long(ct_gkernel_first(&im->k, v * im->gy * im->cell), im->gy);
    *cu = mod_long(ct_gkernel_first(&im->k, u * im->gx * im->cell) + im->gx / 2, im->gx);
}

/* The same for held row i. */
static inline void held_start(const imp *im, size_t i, long *gv, long *cu)
{
    double uvw[3];
    row_uvw(im, im->hb[i], im->hc[i], uvw);
    kernel_start(im, uvw[0], uvw[1], gv, cu);
}

/* Density row dr of the imaging grid (ny rows) is owned by the rank whose
 * slab holds padded grid row 2 dr: every point counted in it has its kernel
 * on that row. Rank r owns density rows [drow_start, drow_end). */
static long drow_start(const imp *im, int r)
{
    return im->rows_count[r] > 0 ? (long)(im->rows_start[r] + im->qy - 1) / im->qy : 0;
}
static long drow_end(const imp *im, int r)
{
    return im->rows_count[r] > 0
               ? (long)(im->rows_start[r] + im->rows_count[r] + im->qy - 1) / im->qy
               : 0;
}

/* disp[r] = count[0] + ... + count[r - 1]: where each rank's block starts in
 * an MPI_Alltoallv buffer (disp[0] must already be 0). */
static void displacements(const int *count, int *disp, int n)
{
    for (int r = 1; r < n; r++)
        disp[r] = disp[r - 1] + count[r - 1];
}

/* A contiguous MPI type of n elements of base (rows of records or grid
 * rows, so that counts stay small). */
static MPI_Datatype row_type_of(size_t n, MPI_Datatype base)
{
    MPI_Datatype t;
    MPI_Type_contiguous((int)n, base, &t);
    MPI_Type_commit(&t);
    return t;
}

static MPI_Datatype row_type(size_t n)
{
    return row_type_of(n, MPI_DOUBLE);
}

/* Fetches rows of a row-distributed array of ncols elements per row
 * (elements of etype, esize bytes: density rows of doubles, grid rows of
 * cells; rank r owns the global rows i with owner_tab[i] == r; this rank's
 * are stored from `local`, row local_start first, `stride` elements apart):
 * out[i] receives global row want[i]. */
static ct_code fetch_rows(imp *im, const void *local, size_t stride, size_t ncols, size_t esize,
                          MPI_Datatype etype, const int *owner_tab, long local_start,
                          const long *want, size_t nwant, void *out, ct_err *err)
{
    int P = im->size;
    int *scount = calloc(4 * (size_t)P, sizeof *scount);
    size_t *order = malloc((nwant + 1) * sizeof *order);
    int *owner = malloc((nwant + 1) * sizeof *owner);
    if (!scount || !order || !owner) {
        free(scount);
        free(order);
        free(owner);
        return ct_fail(err, CT_ENOMEM, "out of memory exchanging grid rows");
    }
    int *sdispl = scount + P, *rcount = scount + 2 * P, *rdispl = scount + 3 * P;
    for (size_t i = 0; i < nwant; i++) {
        owner[i] = owner_tab[want[i]];
        scount[owner[i]]++;
    }
    displacements(scount, sdispl, P);
    {
        int *fill = malloc((size_t)P * sizeof *fill);
        if (!fill) {
            free(scount);
            free(order);
            free(owner);
            return ct_fail(err, CT_ENOMEM, "out of memory exchanging grid rows");
        }
        memcpy(fill, sdispl, (size_t)P * sizeof *fill);
        for (size_t i = 0; i < nwant; i++)
            order[fill[owner[i]]++] = i;
        free(fill);
    }
    MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, im->comm);
    long nreq = 0;
    for (int r = 0; r < P; r++) {
        rdispl[r] = (int)nreq;
        nreq += rcount[r];
    }
    long *sidx = malloc((nwant + 1) * sizeof *sidx),
         *ridx = malloc(((size_t)nreq + 1) * sizeof *ridx);
    const size_t rowb = ncols * esize;
    char *sendrows = malloc((size_t)nreq * rowb + 1), *recvrows = malloc(nwant * rowb + 1);
    ct_code rc = (sidx && ridx && sendrows && recvrows)
                     ? CT_OK
                     : ct_fail(err, CT_ENOMEM, "out of memory exchanging grid rows");
    if (rc == CT_OK) {
        for (size_t i = 0; i < nwant; i++)
            sidx[i] = want[order[i]];
        MPI_Alltoallv(sidx, scount, sdispl, MPI_LONG, ridx, rcount, rdispl, MPI_LONG, im->comm);
        for (long q = 0; q < nreq; q++)
            memcpy(sendrows + (size_t)q * rowb,
                   (const char *)local + (size_t)(ridx[q] - local_start) * stride * esize, rowb);
        MPI_Datatype t = row_type_of(ncols, etype);
        MPI_Alltoallv(sendrows, rcount, rdispl, t, recvrows, scount, sdispl, t, im->comm);
        MPI_Type_free(&t);
        for (size_t i = 0; i < nwant; i++)
            memcpy((char *)out + order[i] * rowb, recvrows + i * rowb, rowb);
    }
    free(sidx);
    free(ridx);
    free(sendrows);
    free(recvrows);
    free(scount);
    free(order);
    free(owner);
    return rc;
}

/* ---- create / destroy ---- */

/* Asks for transparent huge pages over a big buffer (where the kernel has
 * them in "madvise" mode, as Debian's default): a pass strides through the
 * grid a row (tens of KiB) at a time, and with 4 KiB pages nearly every row
 * it touches is a TLB miss -- in the gridding, the degridding and above all
 * the transposes. Only whole 2 MiB pages inside the buffer are advised;
 * where the kernel refuses, nothing changes but the speed. */
static void *advise_huge(void *p, size_t n)
{
#if defined(MADV_HUGEPAGE)
    const uintptr_t huge = (uintptr_t)2 << 20, a = ((uintptr_t)p + huge - 1) & ~(huge - 1),
                    b = ((uintptr_t)p + n) & ~(huge - 1);
    if (p && b > a)
        (void)madvise((void *)a, b - a, MADV_HUGEPAGE);
#else
    (void)n;
#endif
    return p;
}

/* The grids' slabs come straight from the kernel (anonymous mmap): their
 * pages read as zero and take no memory until first written. On one rank
 * nothing ever writes a slab row that no kernel touches (the gridding, the
 * FFTs and the column reads all skip such rows), so only the used rows of
 * a slab become resident: at the production geometry the data reach
 * |v| <= 12.4k wavelengths of the padded grid's +-34.4k, and a plane costs
 * about 27 % of its 738 MB (measured). (FFTW-MPI's transposes, on more
 * ranks, write every row.) Page-aligned, so aligned for any FFTW plan. */
static void *grid_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : advise_huge(p, n);
}

static void grid_free(void *p, size_t n)
{
    if (p)
        (void)munmap(p, n);
}

static double node_memory_share(MPI_Comm comm)
{
    MPI_Comm node;
    int local = 1;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &local);
        MPI_Comm_free(&node);
    }
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    return 0.8 * phys / local;
}

static ct_code setup_pixels(imp *im, ct_err *err)
{
    ct_gkernel_ft ft;
    ct_code rc = ct_gkernel_ft_init(&ft, im->k, err);
    if (rc != CT_OK)
        return rc;
    /* The grid's columns hold u = 0 at gx / 2 (see row_kernel_at): the
     * half-grid shift is a sign (-1)^(x - nx / 2) on the image's columns,
     * folded into their correction (it serves both directions). */
    for (int x = 0; x < im->nx; x++)
        im->corr_x[x] = (mod_long(x - im->nx / 2, 2) ? -1.0 : 1.0) /
                        ct_gkernel_ft_at(&ft, (double)(x - im->nx / 2) / im->gx);
    for (int y = 0; y < im->ny; y++)
        im->corr_y[y] = 1.0 / ct_gkernel_ft_at(&ft, (double)(y - im->ny / 2) / im->gy);
    /* This rank's image columns: those whose padded column lies in its
     * transposed slab. */
    im->nxo = 0;
    im->xcol = im->xs + im->nx + 1;
    for (int x = 0; x < im->nx; x++) {
        long c = mod_long(x - im->nx / 2, im->gx);
        if (c >= im->col0 && c < im->col0 + im->ncol) {
            im->xcol[im->nxo] = (int)(c - im->col0);
            im->xs[im->nxo++] = x;
        }
    }
    int usable = 0;
    double nm1_mid, dw;
    if (!im->no_wterms) /* refuses a field reaching the horizon, before anything large */
        rc = ct_wstack_geometry(im->nx, im->ny, im->cell, &usable, &nm1_mid, &dw, err);
    (void)dw;
    ct_gkernel_ft_free(&ft);
    /* usable is 0 with no w-terms or a field too small for n - 1 to show;
     * the screens themselves wait for the load (setup_wterms), which knows
     * whether the grid is slanted. */
    im->wcand = usable;
    im->use_w = usable;
    return rc;
}

/* 1 / psi(x), psi the kernel's transform, for |x| <= xmax, as a Chebyshev
 * series (the w correction at every pixel: 23 million quadratures of ~90
 * nodes each would take longer than a gridding pass). Even in x, so the
 * series is in T_2j. */
enum { WCORR_DEGREE = 40 };
typedef struct wcorr_series {
    double xmax, c[WCORR_DEGREE + 1];
} wcorr_series;

static double wcorr_eval(const wcorr_series *s, double x)
{
    double t = x / s->xmax, t2 = 2.0 * t, b1 = 0, b2 = 0;
    for (int j = WCORR_DEGREE; j >= 1; j--) {
        double b0 = s->c[j] + t2 * b1 - b2;
        b2 = b1;
        b1 = b0;
    }
    return s->c[0] + t * b1 - b2;
}

/* The series, and whether it holds to 1e-13 of the exact value at points
 * between its nodes (if not, the caller takes the exact quadrature). */
static int wcorr_fit(const ct_gkernel_ft *ft, double xmax, wcorr_series *s)
{
    const int N = 2 * WCORR_DEGREE + 2;
    double f[2 * WCORR_DEGREE + 2];
    s->xmax = xmax;
    for (int k = 0; k < N; k++)
        f[k] = 1.0 / ct_gkernel_ft_at(ft, xmax * cos(M_PI * (k + 0.5) / N));
    for (int j = 0; j <= WCORR_DEGREE; j++) {
        double a = 0;
        for (int k = 0; k < N; k++)
            a += f[k] * cos(M_PI * j * (k + 0.5) / N);
        s->c[j] = (j == 0 ? 1.0 : 2.0) * a / N;
    }
    for (int k = 0; k <= 64; k++) {
        double x = xmax * (k / 32.0 - 1.0) * 0.999, exact = 1.0 / ct_gkernel_ft_at(ft, x);
        if (!(fabs(wcorr_eval(s, x) - exact) <= 1e-13 * fabs(exact)))
            return 0;
    }
    return 1;
}

/* Pixel (i, y) of this rank's columns: n - 1 at its direction (through the
 * slant, if any), into *nm1; 0 for a direction beyond the horizon. */
static int pixel_nm1(const imp *im, int i, int y, double *nm1)
{
    double l, m;
    if (!ct_slant_to_lm((im->xs[i] - im->nx / 2) * im->cell, (y - im->ny / 2) * im->cell, im->xi,
                        im->eta, &l, &m))
        return 0;
    *nm1 = ct_n_minus_1(l, m);
    return 1;
}

/* Its w shift n - 1 - nm1_mid, the very bits setup_wterms gave it. */
static double pixel_shift(const imp *im, int i, int y)
{
    double nm1 = 0;
    (void)pixel_nm1(im, i, y, &nm1);
    return nm1 - im->nm1_mid;
}

/* Per pixel of this rank's columns: its direction (through the slant, if
 * any), n - 1 less the middle of its range over the image (a min over all
 * ranks: exact), the w correction and the screen's step from plane to
 * plane. Decides use_w: off when n - 1 is 0 over the whole image. */
static ct_code setup_wterms(imp *im, ct_err *err)
{
    free(im->wshift);
    free(im->corr_w);
    free(im->wstep);
    free(im->scr0); /* made once the load knows the first plane */
    im->wshift = NULL;
    im->corr_w = NULL;
    im->wstep = NULL;
    im->scr0 = NULL;
    im->use_w = im->wcand;
    if (!im->wcand)
        return CT_OK;
    const size_t np = (size_t)im->nxo * (size_t)im->ny;
    ct_code rc = CT_OK;
    im->wshift = malloc((np + 1) * sizeof *im->wshift);
    if (!im->wshift)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the w-term corrections");
    double lo = 0;
    int off_sky = 0;
    if (rc == CT_OK) {
#pragma omp parallel for num_threads(im->threads) schedule(static) reduction(min                   \
                                                                             : lo)                 \
    reduction(max                                                                                  \
              : off_sky)
        for (int i = 0; i < im->nxo; i++)
            for (int y = 0; y < im->ny; y++) {
                const size_t p = (size_t)i * im->ny + y;
                if (!pixel_nm1(im, i, y, &im->wshift[p])) {
                    off_sky = 1;
                    im->wshift[p] = 0;
                    continue;
                }
                lo = fmin(lo, im->wshift[p]);
            }
        if (off_sky) /* the slant is chosen only well inside the horizon */
            rc = ct_fail(err, CT_EINVAL, "slant projection: a pixel beyond the horizon");
    }
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK)
        return rc;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_DOUBLE, MPI_MIN, im->comm);
    if (!(lo < 0)) {
        im->use_w = 0;
        return CT_OK;
    }
    ct_wstack_spacing(lo, &im->nm1_mid, &im->dw);
#pragma omp parallel for num_threads(im->threads) schedule(static)
    for (size_t p = 0; p < np; p++)
        im->wshift[p] -= im->nm1_mid;
    return CT_OK;
}

/* The per-pixel screens a pass needs (corr_w, wstep, scr0), from the w
 * shifts, which then go. Made at the end of a load, once its records and
 * sorts are gone: they and the held rows are the load's peak, and these
 * arrays (20 bytes a pixel, 0.46 GB at 4800^2) need not add to it. */
static ct_code setup_screens(imp *im, ct_err *err)
{
    ct_code rc = CT_OK;
    const size_t np = (size_t)im->nxo * (size_t)im->ny;
    if (im->use_w) {
        im->corr_w = malloc((np + 1) * sizeof *im->corr_w);
        im->wstep = malloc((np + 1) * sizeof *im->wstep);
        im->scr0 = malloc((np + 1) * sizeof *im->scr0);
        if (!im->corr_w || !im->wstep || !im->scr0)
            rc = ct_fail(err, CT_ENOMEM, "out of memory for the w-term screens");
    }
    ct_gkernel_ft ft;
    if (rc == CT_OK && im->use_w)
        rc = ct_gkernel_ft_init(&ft, im->k, err);
    if (rc == CT_OK && im->use_w) {
        wcorr_series ser;
        const int fast = wcorr_fit(&ft, im->dw * -im->nm1_mid * (1 + 1e-12), &ser);
        const double w_first = im->wmin + (double)im->plane_lo * im->dw;
#pragma omp parallel for num_threads(im->threads) schedule(static)
        for (size_t p = 0; p < np; p++) {
            const double s = im->wshift[p], x = im->dw * s;
            im->corr_w[p] = (greal)(fast ? wcorr_eval(&ser, x) : 1.0 / ct_gkernel_ft_at(&ft, x));
            im->wstep[p] = (gcell)cexp(-2.0 * M_PI * I * x);
            im->scr0[p] = (gcell)cexp(-2.0 * M_PI * I * w_first * s);
        }
        ct_gkernel_ft_free(&ft);
    }
    free(im->wshift);
    im->wshift = NULL;
    return ct_mpi_agree(im->comm, rc, err);
}

ct_code CT_IMP(create)(MPI_Comm comm, const ct_imager_geom *g, imp **out, ct_err *err)
{
    *out = NULL;
    ct_code rc = CT_OK;
    if (g->nx < 2 || g->ny < 2 || g->nx % 2 || g->ny % 2 || g->nx > INT_MAX / 4 ||
        g->ny > INT_MAX / 4)
        rc = ct_fail(err, CT_EINVAL, "image size %d x %d: both sides must be even and >= 2", g->nx,
                     g->ny);
    else if (!(g->cell_rad > 0) || !(g->cell_rad < 1))
        rc = ct_fail(err, CT_EINVAL, "pixel size %g: must be in (0, 1) (direction cosine)",
                     g->cell_rad);
    else if (!(g->epsilon >= 1e-14 && g->epsilon <= 1e-1))
        rc = ct_fail(err, CT_EINVAL, "gridder accuracy %g: must be in [1e-14, 1e-1]", g->epsilon);
    else if (!(g->max_bytes >= 0))
        rc = ct_fail(err, CT_EINVAL, "memory limit %g: must be >= 0", g->max_bytes);
    else if (g->threads < 0 || g->threads > 4096)
        rc = ct_fail(err, CT_EINVAL, "threads %d: must be in 0..4096 (0: automatic)", g->threads);
    else if (g->slant != CT_IMAGER_SLANT_AUTO && g->slant != CT_IMAGER_SLANT_OFF &&
             g->slant != CT_IMAGER_SLANT_ON)
        rc = ct_fail(err, CT_EINVAL, "slant %d: must be AUTO, OFF or ON", g->slant);
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        return rc;

    FFTW(mpi_init)();
    int P, rank;
    MPI_Comm_size(comm, &P);
    MPI_Comm_rank(comm, &rank);
    const int gx = CT_GRID_OVERSAMPLING * g->nx, gy = CT_GRID_OVERSAMPLING * g->ny;
    /* 8 or 16 cells past gx, so that no row is a multiple of 4 KiB long. */
    const int page = 4096 / (int)sizeof(gcell);
    const int gs = gx + ((gx + 8) % page ? 8 : 16);
    ptrdiff_t n[2] = {gy, gs}, n0, s0, n1, s1;
    /* Complex numbers travel as 2 doubles ("howmany" 2). */
    ptrdiff_t alloc = FFTW(mpi_local_size_many_transposed)(
        2, n, 2, FFTW_MPI_DEFAULT_BLOCK, FFTW_MPI_DEFAULT_BLOCK, comm, &n0, &s0, &n1, &s1);
    /* Memory per rank: slab and transposed slab, the halo rows of a degrid,
     * this rank's image columns (accumulator, w corrections) and on rank 0 the
     * gathered image; checked on every rank before anything large exists. */
    double limit = g->max_bytes > 0 ? g->max_bytes : node_memory_share(comm);
    double cols = ceil((double)g->nx / P) + 1;
    const double T = g->threads > 0 ? g->threads : 1;
    double need = (P > 1 ? 2.0 : 1.0) * (double)alloc * sizeof(greal) +
                  (2.0 * n0 + 4.0 * CT_GRID_MAX_SUPPORT) * gx * sizeof(gcell) +
                  /* per image-column pixel: the sum, the screen's step, the first
                   * screen and the w correction (at the grids' precision), during
                   * a load the w shift, and on more ranks the running screen: 36
                   * bytes on one rank in float32; and the threads' column buffers
                   * and block screens (columns_fused) */
                  cols * g->ny *
                      ((P > 1 ? 2.0 : 1.0) * sizeof(double complex) + sizeof(gcell) +
                       sizeof(greal) + 2.0 * sizeof(double)) +
                  (T + 1.0) * (1.0 + TRANSPOSE_BLOCK) * gy * sizeof(gcell) +
                  T * TRANSPOSE_BLOCK * g->ny * sizeof(double complex) +
                  (rank == 0 ? 8.0 * g->nx * (double)g->ny * sizeof(double) : 0);
    if (need > limit)
        rc = ct_fail(err, CT_EINVAL,
                     "image %d x %d needs %.3g GiB per rank on %d rank(s), over the %.3g GiB "
                     "available: make it smaller or use more ranks",
                     g->nx, g->ny, need / 1073741824.0, P, limit / 1073741824.0);
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK)
        return rc;

    imp *im = calloc(1, sizeof *im);
    if (!im)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for an imager");
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK) {
        free(im); /* allocated here, failed on another rank */
        return rc;
    }
    MPI_Comm_dup(comm, &im->comm);
    im->rank = rank;
    im->size = P;
    im->nx = g->nx;
    im->ny = g->ny;
    im->gx = gx;
    im->gy = gy;
    im->gs = im->gs_full = gs;
    im->rowlen = gx;
    im->cell = g->cell_rad;
    im->k = ct_gkernel_for(g->epsilon);
    im->no_wterms = g->no_wterms != 0;
    im->slant_mode = g->slant;
    {
        /* The slant is decided for the reference field (imager.h). */
        const int rnx = g->slant_nx > 0 ? g->slant_nx : g->nx,
                  rny = g->slant_ny > 0 ? g->slant_ny : g->ny;
        int ok = 0;
        double mid, dwp = 0;
        ct_err ignored;
        const double lc = 0.5 * rnx * g->cell_rad, mc = 0.5 * rny * g->cell_rad;
        if (lc * lc + mc * mc < 1.0 &&
            ct_wstack_geometry(rnx, rny, g->cell_rad, &ok, &mid, &dwp, &ignored) == CT_OK && ok)
            im->dw_plain = dwp;
        im->slant_half = hypot(lc, mc);
    }
    im->max_bytes = limit;
    im->need_bytes = need;
    im->threads = g->threads > 0 ? g->threads : ct_mpi_cpu_share(comm);
    im->row0 = s0;
    im->nrow = n0;
    im->col0 = s1;
    im->ncol = n1;
    im->alloc = alloc;
    im->rows_start = malloc(4 * (size_t)P * sizeof(ptrdiff_t));
    im->slab_bytes = (size_t)alloc * sizeof(greal) + 64;
    im->slab = grid_alloc(im->slab_bytes);
    im->slab_fresh = 1;
    im->tslab = P > 1 ? grid_alloc(im->slab_bytes) : NULL;
    im->corr_x = malloc(((size_t)g->nx + (size_t)g->ny) * sizeof(double));
    im->xs = malloc(2 * ((size_t)g->nx + 1) * sizeof(int));
    gcell *scratch = FFTW(malloc)((size_t)(gx > gy ? gx : gy) * sizeof(gcell));
    if (!im->rows_start || !im->slab || (P > 1 && !im->tslab) || !im->corr_x || !im->xs || !scratch)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the %d x %d grid's slabs", gx, gy);
    if (rc == CT_OK) {
        im->rows_count = im->rows_start + P;
        im->cols_start = im->rows_start + 2 * P;
        im->cols_count = im->rows_start + 3 * P;
        ptrdiff_t mine[4] = {s0, n0, s1, n1}, *all = malloc(4 * (size_t)P * sizeof *all);
        if (!all)
            rc = ct_fail(err, CT_ENOMEM, "out of memory for the slab table");
        else {
            MPI_Allgather(mine, 4 * (int)sizeof(ptrdiff_t), MPI_BYTE, all,
                          4 * (int)sizeof(ptrdiff_t), MPI_BYTE, im->comm);
            for (int r = 0; r < P; r++) {
                im->rows_start[r] = all[4 * r];
                im->rows_count[r] = all[4 * r + 1];
                im->cols_start[r] = all[4 * r + 2];
                im->cols_count[r] = all[4 * r + 3];
            }
            free(all);
        }
        im->corr_y = im->corr_x + g->nx;
        im->row_owner = malloc(((size_t)gy + 1) * sizeof(int));
        if (!im->row_owner)
            rc = ct_fail(err, CT_ENOMEM, "out of memory for the slab table");
    }
    if (rc == CT_OK) {
        for (int r = 0; r < P; r++)
            for (ptrdiff_t i = 0; i < im->rows_count[r]; i++)
                im->row_owner[im->rows_start[r] + i] = r;
    }
    if (rc == CT_OK) {
        /* One plan per axis and direction, applied to every row: where rows
         * (and the transposed slab's columns) are whole multiples of 64
         * bytes apart in FFTW-aligned memory, every one has the scratch
         * array's alignment and the plan's arithmetic; where not (single
         * precision, a side not a multiple of 4), the plan must not count
         * on it. The slabs, their stagger and the halo rows keep it. */
        const unsigned rflag = FFTW_ESTIMATE | (gs * sizeof(gcell) % 64 ? FFTW_UNALIGNED : 0);
        const unsigned cflag = FFTW_ESTIMATE | (gy * sizeof(gcell) % 64 ? FFTW_UNALIGNED : 0);
        im->row_fwd = FFTW(plan_dft_1d)(gx, scratch, scratch, FFTW_FORWARD, rflag);
        im->row_bwd = FFTW(plan_dft_1d)(gx, scratch, scratch, FFTW_BACKWARD, rflag);
        im->colstride = ((size_t)gy + 15) / 16 * 16; /* each thread's column 128-byte aligned */
        im->colbuf = FFTW(malloc)((size_t)im->threads * im->colstride * sizeof(gcell) + 64);
        im->col_fwd =
            im->colbuf ? FFTW(plan_dft_1d)(gy, scratch, im->colbuf, FFTW_FORWARD, cflag) : NULL;
        im->col_bwd = FFTW(plan_dft_1d)(gy, scratch, scratch, FFTW_BACKWARD, cflag);
        if (P > 1) {
            im->to_cols = FFTW(mpi_plan_many_transpose)(
                gy, gs, 2, FFTW_MPI_DEFAULT_BLOCK, FFTW_MPI_DEFAULT_BLOCK, (greal *)im->slab,
                (greal *)im->tslab, im->comm, FFTW_ESTIMATE);
            im->to_rows = FFTW(mpi_plan_many_transpose)(gs, gy, 2, FFTW_MPI_DEFAULT_BLOCK,
                                                        FFTW_MPI_DEFAULT_BLOCK, (greal *)im->tslab,
                                                        (greal *)im->slab, im->comm, FFTW_ESTIMATE);
        }
        if (!im->row_fwd || !im->row_bwd || !im->col_fwd || !im->col_bwd ||
            (P > 1 && (!im->to_cols || !im->to_rows)))
            rc = ct_fail(err, CT_ENOMEM, "FFTW could not plan the %d x %d transforms", gx, gy);
    }
    FFTW(free)(scratch);
    if (rc == CT_OK)
        rc = setup_pixels(im, err);
    im->st.support = im->k.support;
    im->st.grid_bits = 8 * (int)sizeof(greal);
    im->st.ranks = P;
    im->st.threads = im->threads;
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK) {
        CT_IMP(destroy)(im);
        return rc;
    }
    *out = im;
    return CT_OK;
}

static void free_groups(imp *im);
static ct_code setup_groups(imp *im, ct_err *err);

static void free_rows(imp *im)
{
    free_groups(im);
    FFTW(free)(im->rowbuf);
    im->rowbuf = NULL;
    im->compact = 0;
    im->gs = im->gs_full;
    im->rowlen = im->gx;
    im->cin0 = 0;
    free(im->tab_uvw);
    free(im->cscale);
    free(im->tab_epoch);
    free(im->hb);
    free(im->hc);
    im->tab_uvw = im->cscale = NULL;
    im->tab_epoch = NULL;
    im->hb = NULL;
    im->hc = NULL;
    im->ntab = 0;
    im->wslant = 0;
    free(im->wt);
    free(im->vis);
    free(im->mprev);
    im->mprev = NULL;
    im->mprev_n = 0;
    free(im->bucket);
    FFTW(free)(im->ext);
    free(im->chan_w);
    free(im->drow_owner);
    free(im->row_used);
    free(im->run_from);
    free(im->run_to);
    free(im->tile_id);
    free(im->run_bucket);
    free(im->tile_run);
    im->row_used = NULL;
    im->run_from = im->run_to = im->tile_run = NULL;
    im->run_bucket = NULL;
    im->tile_id = NULL;
    im->drow_owner = NULL;
    im->chan_w = im->epoch_w = NULL;
    im->wt = NULL;
    im->vis = NULL;
    im->ext = NULL;
    im->bucket = NULL;
    im->n = 0;
    im->loaded = 0;
}

void CT_IMP(destroy)(imp *im)
{
    if (!im)
        return;
    free_rows(im);
    FFTW(plan)
    plans[] = {im->row_fwd, im->row_bwd, im->col_fwd, im->col_bwd, im->to_cols, im->to_rows};
    for (size_t i = 0; i < sizeof plans / sizeof plans[0]; i++)
        if (plans[i])
            FFTW(destroy_plan)(plans[i]);
    grid_free(im->slab, im->slab_bytes);
    grid_free(im->tslab, im->slab_bytes);
    FFTW(free)(im->colbuf);
    free(im->rows_start);
    free(im->row_owner);
    free(im->corr_x);
    free(im->xs);
    free(im->wshift);
    free(im->corr_w);
    free(im->wstep);
    free(im->acc);
    free(im->scr);
    free(im->scr0);
    free(im->mcol);
    if (im->comm != MPI_COMM_NULL && im->comm != 0)
        MPI_Comm_free(&im->comm);
    free(im);
}

void CT_IMP(get_stats)(const imp *im, ct_imager_stats *out)
{
    *out = im->st;
}

size_t CT_IMP(nrows)(const imp *im)
{
    return im->n;
}

void CT_IMP(row)(const imp *im, size_t k, double uvw[3], double complex *vis, double *weight)
{
    double ws[3];
    row_uvw(im, im->hb[k], im->hc[k], ws); /* w' */
    const double complex v = im->vis[k];
    *vis = im->use_w ? v * cexp(2.0 * M_PI * I * ws[2] * im->nm1_mid) : v;
    const double *t = im->tab_uvw + 3 * (size_t)im->hb[k], sc = im->cscale[im->hc[k]];
    uvw[0] = t[0] * sc; /* w as loaded, exactly */
    uvw[1] = t[1] * sc;
    uvw[2] = t[2] * sc;
    *weight = im->wt[k];
}

const double *CT_IMP(channel_weights)(const imp *im)
{
    return im->chan_w;
}

const double *CT_IMP(epoch_weights)(const imp *im)
{
    return im->epoch_w;
}

/* ---- load: weights, then rows to slabs ---- */

/* Exchanges records: *send holds the records for rank r at
 * [sdisp[r], sdisp[r] + scount[r]) and is consumed (freed, or on one rank
 * handed over as the result: the visibilities are the largest thing in
 * memory, so no copy is made that need not be); returns the received ones, in
 * source-rank order, in *recv (malloc'd) and their number in *nrecv. */
static ct_code exchange_records(imp *im, double **send, const int *scount, const int *sdisp,
                                int width, double **recv, size_t *nrecv, ct_err *err)
{
    int P = im->size;
    if (P == 1) {
        /* One rank sends everything to itself: hand the buffer over. */
        *recv = *send;
        *send = NULL;
        *nrecv = (size_t)scount[0];
        return CT_OK;
    }
    int *rcount = malloc(2 * (size_t)P * sizeof *rcount);
    if (!rcount)
        return ct_fail(err, CT_ENOMEM, "out of memory exchanging visibilities");
    int *rdisp = rcount + P;
    MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, im->comm);
    long total = 0;
    for (int r = 0; r < P; r++) {
        rdisp[r] = (int)total;
        total += rcount[r];
    }
    ct_code rc = CT_OK;
    if (total > INT_MAX)
        rc = ct_fail(err, CT_EINVAL,
                     "%ld rows on one rank: more than one exchange can carry; "
                     "use more ranks",
                     total);
    *recv = rc == CT_OK ? malloc(((size_t)total * width + 1) * sizeof(double)) : NULL;
    if (rc == CT_OK && !*recv)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %ld visibility rows", total);
    if ((rc = ct_mpi_agree(im->comm, rc, err)) == CT_OK) {
        MPI_Datatype t = row_type((size_t)width);
        MPI_Alltoallv(*send, scount, sdisp, t, *recv, rcount, rdisp, t, im->comm);
        MPI_Type_free(&t);
        *nrecv = (size_t)total;
    } else {
        free(*recv);
        *recv = NULL;
    }
    free(rcount);
    free(*send);
    *send = NULL;
    return rc;
}

/* Stable counting sort of the records by key[i] in [0, nkeys): writes the
 * permutation to perm. */
static ct_code counting_order(const uint32_t *key, size_t n, long nkeys, uint32_t *perm,
                              int threads, ct_err *err)
{
    /* Stable, so the order is unique: each thread counts a contiguous chunk,
     * the offsets run key by key and, within a key, chunk by chunk, and each
     * thread places its chunk in index order -- the serial sort's result on
     * any thread count. */
    int T = threads > 1 && n >= 65536 ? threads : 1;
    if ((double)T * (double)(nkeys + 1) > 3e7)
        T = 1; /* the per-thread counts would outweigh the rows */
    /* Each thread's counts on cache lines of their own (a few keys, as the
     * w planes are, would otherwise share one between threads). */
    const size_t stride = ((size_t)nkeys + 1 + 7) / 8 * 8 + 8;
    size_t *cnt = calloc((size_t)T * stride, sizeof *cnt);
    if (!cnt)
        return ct_fail(err, CT_ENOMEM, "out of memory sorting visibilities");
#pragma omp parallel for num_threads(T) schedule(static, 1)
    for (int t = 0; t < T; t++) {
        size_t *c = cnt + (size_t)t * stride;
        for (size_t i = n * (size_t)t / (size_t)T; i < n * ((size_t)t + 1) / (size_t)T; i++)
            c[key[i]]++;
    }
    size_t run = 0;
    for (long b = 0; b < nkeys; b++)
        for (int u = 0; u < T; u++) {
            size_t *cu = cnt + (size_t)u * stride + b;
            const size_t here = *cu;
            *cu = run;
            run += here;
        }
#pragma omp parallel for num_threads(T) schedule(static, 1)
    for (int t = 0; t < T; t++) {
        size_t *c = cnt + (size_t)t * stride;
        for (size_t i = n * (size_t)t / (size_t)T; i < n * ((size_t)t + 1) / (size_t)T; i++)
            perm[c[key[i]]++] = (uint32_t)i;
    }
    free(cnt);
    return CT_OK;
}

static long density_row(const imp *im, const ct_weight_opts *o, double u, double v, long *iu_out)
{
    long long iu, iv;
    ct_weight_cell(o, u, v, &iu, &iv);
    *iu_out = mod_long((long)iu, im->wnx);
    return mod_long((long)iv, im->wny);
}

/* Sums per density row (a row-major table of nrows x width on each owner)
 * gathered on every rank and added up in row order: the same bits on any
 * number of ranks. */
static ct_code sum_by_rows(imp *im, const double *mine, size_t width, double *total, ct_err *err)
{
    int P = im->size;
    int *cnt = malloc(2 * (size_t)P * sizeof *cnt);
    double *all = malloc(((size_t)im->wny * width + 1) * sizeof *all);
    if (!cnt || !all) {
        free(cnt);
        free(all);
        return ct_fail(err, CT_ENOMEM, "out of memory summing weights");
    }
    int *disp = cnt + P;
    for (int r = 0; r < P; r++) {
        cnt[r] = (int)(drow_end(im, r) - drow_start(im, r));
        disp[r] = (int)drow_start(im, r);
    }
    MPI_Datatype t = row_type(width);
    MPI_Allgatherv(mine, cnt[im->rank], t, all, cnt, disp, t, im->comm);
    MPI_Type_free(&t);
    for (size_t c = 0; c < width; c++)
        total[c] = 0;
    for (int r = 0; r < im->wny; r++)
        for (size_t c = 0; c < width; c++)
            total[c] += all[(size_t)r * width + c];
    free(cnt);
    free(all);
    return CT_OK;
}

/* Step 1 of a load: rows to the owners of their density rows, which weight them. */
static ct_code weight_rows(imp *im, const ct_imager_rows *rw, size_t boff, const ct_weight_opts *o,
                           double **owned, size_t *nowned, ct_err *err)
{
    int P = im->size;
    const size_t n = rw->n;
    /* Row i's global baseline-time. */
#define ROW_B(i) ((uint32_t)(boff + (rw->blt ? (size_t)rw->blt[i] : (size_t)(i))))
    ct_code rc = CT_OK;
    int *scount = calloc(2 * (size_t)P, sizeof *scount);
    int *dest = malloc((n + 1) * sizeof *dest);
    double *send = NULL;
    if (!scount || !dest)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %zu rows", n);
    size_t nkept = 0;
    if (rc == CT_OK) {
        /* Each row's destination on the threads, the counts after (serial:
         * the order of the records is the rows' own). */
#pragma omp parallel for num_threads(im->threads) schedule(static)
        for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++) {
            long iu;
            double uvw[3];
            row_uvw(im, ROW_B(i), (unsigned)rw->chan[i], uvw);
            dest[i] = ct_weight_kept(o, uvw[0], uvw[1], rows_weight(rw, (size_t)i))
                          ? im->drow_owner[density_row(im, o, uvw[0], uvw[1], &iu)]
                          : -1;
        }
        for (size_t i = 0; i < n; i++)
            if (dest[i] >= 0) {
                scount[dest[i]]++;
                nkept++;
            }
    }
    if (rc == CT_OK && nkept > (size_t)INT_MAX)
        rc = ct_fail(err, CT_EINVAL, "%zu rows on one rank: use more ranks", nkept);
    if (rc == CT_OK && !(send = malloc((nkept * REC_LEN + 1) * sizeof *send)))
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %zu rows", nkept);
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK) {
        free(scount);
        free(dest);
        free(send);
        return rc;
    }
    int *sdisp = scount + P;
    displacements(scount, sdisp, P);
    {
        /* The records in the rows' order per destination, packed by the
         * threads: each counts its own contiguous chunk, and its records
         * for a destination follow those of the chunks before it -- the
         * serial layout on any thread count (the packing, and the first
         * touch of 5 GB of pages, was 7 s on one thread at full size). */
        int T = im->threads > 1 && n >= 65536 ? im->threads : 1;
        size_t *fill = calloc((size_t)T * (size_t)P, sizeof *fill);
        if (!fill)
            T = 1;
        size_t one[P > 0 ? P : 1];
        size_t *f = fill ? fill : one;
#pragma omp parallel for num_threads(T) schedule(static, 1)
        for (int t = 0; t < T; t++) {
            size_t c[P > 0 ? P : 1]; /* counted apart: see ft below */
            memset(c, 0, sizeof c);
            for (size_t i = n * (size_t)t / (size_t)T; i < n * ((size_t)t + 1) / (size_t)T; i++)
                if (T > 1 && dest[i] >= 0)
                    c[dest[i]]++;
            memcpy(f + (size_t)t * (size_t)P, c, (size_t)P * sizeof *c);
        }
        for (int d = 0; d < P; d++) {
            size_t pos = (size_t)sdisp[d];
            for (int t = 0; t < T; t++) {
                const size_t here = T > 1 ? f[(size_t)t * (size_t)P + (size_t)d] : 0;
                f[(size_t)t * (size_t)P + (size_t)d] = pos;
                pos += here;
            }
        }
#pragma omp parallel for num_threads(T) schedule(static, 1)
        for (int t = 0; t < T; t++) {
            /* The thread's own copy of its offsets: the shared table's
             * entries of two threads share a cache line. */
            size_t ft[P > 0 ? P : 1];
            memcpy(ft, f + (size_t)t * (size_t)P, (size_t)P * sizeof *ft);
            for (size_t i = n * (size_t)t / (size_t)T; i < n * ((size_t)t + 1) / (size_t)T; i++) {
                if (dest[i] < 0)
                    continue;
                double *r = send + ft[dest[i]]++ * REC_LEN;
                rec_set_bc(r, ROW_B(i), (uint32_t)rw->chan[i]);
                rec_set_vis(r, rows_vis(rw, i));
                r[REC_WT] = rows_weight(rw, i);
            }
        }
        free(fill);
    }
#undef ROW_B
    free(dest);
    if (im->on_copied) { /* the caller's arrays are read no more */
        void (*fn)(void *) = im->on_copied;
        im->on_copied = NULL;
        fn(im->on_copied_arg);
    }
    double *recv = NULL;
    size_t nrecv = 0;
    rc = exchange_records(im, &send, scount, sdisp, REC_LEN, &recv, &nrecv, err);
    free(scount);
    if (rc != CT_OK)
        return rc;

    /* The density: P_c over this rank's density rows, in global row order
     * (the records arrived in it), then W_c = P_c + P_-c with the mirrored
     * rows fetched from their owners. */
    const long d0 = drow_start(im, im->rank), nd = drow_end(im, im->rank) - d0;
    /* sum w, sum w W, sum w_img, then sum w_img per channel and per epoch,
     * then the slant's moments (fitm) */
    const size_t fit0 = 3 + (size_t)im->nchan + (size_t)im->nepoch, width = fit0 + 5;
    double *dens = calloc((size_t)nd * im->wnx + 1, sizeof *dens);
    double *mirror = malloc(((size_t)nd * im->wnx + 1) * sizeof *mirror);
    double *rowsum = calloc((size_t)nd * width + 1, sizeof *rowsum);
    long *want = malloc(((size_t)nd + 1) * sizeof *want);
    if (!dens || !mirror || !rowsum || !want)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the weight density");
    rc = ct_mpi_agree(im->comm, rc, err);
    const int density = o->kind != CT_WEIGHT_NATURAL;
    if (rc == CT_OK && density) {
        for (size_t i = 0; i < nrecv; i++) {
            const double *r = recv + i * REC_LEN;
            double uvw[3];
            rec_uvw(im, r, uvw);
            long iu, dr = density_row(im, o, uvw[0], uvw[1], &iu);
            dens[(size_t)(dr - d0) * im->wnx + iu] += r[REC_WT];
        }
        for (long d = 0; d < nd; d++)
            want[d] = mod_long(-(d0 + d), im->wny);
        rc = ct_mpi_agree(im->comm,
                          fetch_rows(im, dens, (size_t)im->wnx, (size_t)im->wnx, sizeof(double),
                                     MPI_DOUBLE, im->drow_owner, d0, want, (size_t)nd, mirror, err),
                          err);
    }
    /* Per density row, in record order: sum w and sum w W (Briggs' mean density). */
    for (size_t i = 0; rc == CT_OK && i < nrecv; i++) {
        double *r = recv + i * REC_LEN;
        double uvw[3];
        rec_uvw(im, r, uvw);
        long iu, dr = density_row(im, o, uvw[0], uvw[1], &iu);
        double *rs = rowsum + (size_t)(dr - d0) * width;
        double W = 0;
        if (density) {
            W = dens[(size_t)(dr - d0) * im->wnx + iu] +
                mirror[(size_t)(dr - d0) * im->wnx + mod_long(-iu, im->wnx)];
        }
        rs[0] += r[REC_WT];
        rs[1] += r[REC_WT] * W;
        const double u = uvw[0], v = uvw[1], w = uvw[2];
        rs[fit0] += u * u;
        rs[fit0 + 1] += u * v;
        rs[fit0 + 2] += v * v;
        rs[fit0 + 3] += u * w;
        rs[fit0 + 4] += v * w;
    }
    double *tot = malloc((width + 1) * sizeof *tot);
    if (rc == CT_OK && !tot)
        rc = ct_fail(err, CT_ENOMEM, "out of memory summing weights");
    if ((rc = ct_mpi_agree(im->comm, rc, err)) == CT_OK)
        rc = ct_mpi_agree(im->comm, sum_by_rows(im, rowsum, width, tot, err), err);
    double f2 = 0;
    if (rc == CT_OK)
        memcpy(im->fitm, tot + fit0, sizeof im->fitm);
    if (rc == CT_OK && o->kind == CT_WEIGHT_BRIGGS)
        f2 = ct_weight_briggs_f2(o->robust, tot[1], tot[0]);
    if (rc == CT_OK) {
        for (long d = 0; d < nd; d++)
            for (size_t c = 0; c < width; c++)
                rowsum[(size_t)d * width + c] = 0;
        for (size_t i = 0; i < nrecv; i++) {
            double *r = recv + i * REC_LEN;
            double uvw[3];
            rec_uvw(im, r, uvw);
            long iu, dr = density_row(im, o, uvw[0], uvw[1], &iu);
            double W = density ? dens[(size_t)(dr - d0) * im->wnx + iu] +
                                     mirror[(size_t)(dr - d0) * im->wnx + mod_long(-iu, im->wnx)]
                               : 0;
            r[REC_WT] = ct_weight_final(o, r[REC_WT], W, f2);
            double *rs = rowsum + (size_t)(dr - d0) * width;
            rs[2] += r[REC_WT];
            uint32_t b, c;
            rec_bc(r, &b, &c);
            rs[3 + c] += r[REC_WT];
            rs[3 + (size_t)im->nchan + (size_t)im->tab_epoch[b]] += r[REC_WT];
        }
        rc = ct_mpi_agree(im->comm, sum_by_rows(im, rowsum, width, tot, err), err);
    }
    if (rc == CT_OK) {
        im->wsum = tot[2];
        im->chan_w = malloc(((size_t)im->nchan + (size_t)im->nepoch + 1) * sizeof *im->chan_w);
        if (!im->chan_w)
            rc = ct_fail(err, CT_ENOMEM, "out of memory");
        else {
            memcpy(im->chan_w, tot + 3, ((size_t)im->nchan + (size_t)im->nepoch) * sizeof(double));
            im->epoch_w = im->chan_w + im->nchan;
        }
        rc = ct_mpi_agree(im->comm, rc, err);
    }
    free(tot);
    free(dens);
    free(mirror);
    free(rowsum);
    free(want);
    if (rc != CT_OK) {
        free(recv);
        return rc;
    }
    *owned = recv;
    *nowned = nrecv;
    return CT_OK;
}

/* Step 2: weighted rows to every rank whose slab their kernel touches, then
 * ordered by (first w plane, density row, global index). */

/* The distinct ranks whose slabs a kernel starting at grid row `first` touches. */
static int kernel_ranks(const imp *im, long first, int *ranks)
{
    int n = 0;
    for (int b = 0; b < im->k.support; b++) {
        int d = im->row_owner[mod_long(first + b, im->gy)], seen = 0;
        for (int q = 0; q < n; q++)
            seen |= ranks[q] == d;
        if (!seen)
            ranks[n++] = d;
    }
    return n;
}

/* Tiles along an axis of n cells: CT_TILE cells each, the last taking the
 * remainder too (so that no tile is shorter than the reach of a kernel). */
static long tiles_along(long n)
{
    return n / CT_TILE > 1 ? n / CT_TILE : 1;
}

static long tile_of(long c, long n)
{
    const long t = c / CT_TILE, nt = tiles_along(n);
    return t < nt ? t : nt - 1;
}

/* The tile of a row's kernel: where its first cell lies (global grid row g,
 * column c). */
static long row_tile(const imp *im, long g, long c)
{
    return tile_of(g, im->gy) * tiles_along(im->gx) + tile_of(c, im->gx);
}

/* The phase of tile t: tiles of one phase are at least a tile apart on both
 * axes, so the kernels whose first cells lie in them (reaching W - 1 <=
 * CT_TILE cells right and down, round the periodic edges too) write
 * disjoint cells, and a cell receives from at most one of them. */
static int tile_phase(const imp *im, long t)
{
    const long ntx = tiles_along(im->gx), nty = tiles_along(im->gy);
    const long tx = t % ntx, ty = t / ntx;
    const int cx = (ntx % 2 && tx == ntx - 1) ? 2 : (int)(tx % 2);
    const int cy = (nty % 2 && ty == nty - 1) ? 2 : (int)(ty % 2);
    return cy * 3 + cx;
}

/* The threads' work in a gridding pass. Held rows are ordered by (plane
 * bucket, tile, global index); here they are cut into runs of one bucket
 * and one tile, the runs grouped by tile (in bucket order) and the tiles
 * by phase. A pass grids phase after phase, the tiles of a phase at once,
 * one thread to a tile: every row once, by one thread, and every cell's
 * contributions in one order -- (phase, bucket, global index) -- whatever
 * the thread count, and whatever the rank count too, since tiles and phases
 * are the global grid's. Regions of the slab cut among the threads instead
 * made a third of the rows (those whose kernels straddle a cut) compute
 * their taps twice and left the threads uneven (1.3 x on 2 threads). */
typedef struct tile_load {
    size_t rows;
    long id;
    size_t r0, r1;
} tile_load;

static int heavier_first(const void *a, const void *b)
{
    const tile_load *x = a, *y = b;
    if (x->rows != y->rows)
        return x->rows > y->rows ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static ct_code setup_tiles(imp *im, ct_err *err)
{
    const long ntiles = row_tile(im, im->gy - 1, im->gx - 1) + 1;
    /* Each held row's tile, on the threads (a table lookup and two roundings
     * a row: serial, it was most of what the load's threads could not share). */
    uint32_t *tid = malloc((im->n + 1) * sizeof *tid);
    if (!tid)
        return ct_fail(err, CT_ENOMEM, "out of memory for %zu rows' tiles", im->n);
#pragma omp parallel for num_threads(im->threads) schedule(static)
    for (ptrdiff_t i = 0; i < (ptrdiff_t)im->n; i++) {
        long gv, cu;
        held_start(im, (size_t)i, &gv, &cu);
        tid[i] = (uint32_t)row_tile(im, gv, cu);
    }
    size_t nruns = 0;
    long prev_t = -1, prev_b = -1;
    for (long b = 0; b < im->nbuckets; b++)
        for (size_t i = im->bucket[b]; i < im->bucket[b + 1]; i++) {
            const long t = tid[i];
            nruns += t != prev_t || b != prev_b;
            prev_t = t;
            prev_b = b;
        }
    size_t *from = malloc((nruns + 1) * sizeof *from), *to = malloc((nruns + 1) * sizeof *to);
    int32_t *bk = malloc((nruns + 1) * sizeof *bk);
    long *rtile = malloc((nruns + 1) * sizeof *rtile);
    size_t *count = calloc((size_t)ntiles + 2, sizeof *count);
    im->run_from = malloc((nruns + 1) * sizeof *im->run_from);
    im->run_to = malloc((nruns + 1) * sizeof *im->run_to);
    im->run_bucket = malloc((nruns + 1) * sizeof *im->run_bucket);
    ct_code rc = CT_OK;
    if (!from || !to || !bk || !rtile || !count || !im->run_from || !im->run_to || !im->run_bucket)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %zu gridding runs", nruns);
    size_t r = 0;
    prev_t = prev_b = -1;
    for (long b = 0; rc == CT_OK && b < im->nbuckets; b++)
        for (size_t i = im->bucket[b]; i < im->bucket[b + 1]; i++) {
            const long t = tid[i];
            if (t != prev_t || b != prev_b) {
                from[r] = i;
                bk[r] = (int32_t)b;
                rtile[r++] = t;
                count[t + 1]++;
            }
            to[r - 1] = i + 1;
            prev_t = t;
            prev_b = b;
        }
    /* Runs grouped by tile, stably (each tile's in bucket order). */
    long nused = 0;
    for (long t = 0; rc == CT_OK && t < ntiles; t++) {
        nused += count[t + 1] > 0;
        count[t + 1] += count[t];
    }
    for (size_t q = 0; rc == CT_OK && q < nruns; q++) {
        size_t at = count[rtile[q]]++;
        im->run_from[at] = from[q];
        im->run_to[at] = to[q];
        im->run_bucket[at] = bk[q];
    }
    /* The tiles that have runs, by phase (in tile order within one);
     * count[t] is now the end of tile t's runs. */
    im->tile_run = rc == CT_OK ? malloc((2 * (size_t)nused + 1) * sizeof *im->tile_run) : NULL;
    im->tile_id = rc == CT_OK ? malloc(((size_t)nused + 1) * sizeof *im->tile_id) : NULL;
    if (rc == CT_OK && (!im->tile_run || !im->tile_id))
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %ld gridding tiles", nused);
    long nphase[CT_TILE_PHASES + 1] = {0};
    for (long t = 0; rc == CT_OK && t < ntiles; t++)
        if (count[t] > (t ? count[t - 1] : 0))
            nphase[tile_phase(im, t) + 1]++;
    for (int ph = 0; ph < CT_TILE_PHASES; ph++)
        nphase[ph + 1] += nphase[ph];
    memcpy(im->phase_tile, nphase, sizeof im->phase_tile);
    for (long t = 0; rc == CT_OK && t < ntiles; t++) {
        size_t r0 = t ? count[t - 1] : 0;
        if (count[t] > r0) {
            long k = nphase[tile_phase(im, t)]++;
            im->tile_run[2 * k] = r0;
            im->tile_run[2 * k + 1] = count[t];
            im->tile_id[k] = t;
        }
    }
    /* Within a phase, the tiles by decreasing rows (then tile order): the
     * threads take them one at a time, so the heaviest (the dense centre of
     * the uv plane) go first and the phase ends evenly. The order of a
     * phase's tiles changes no sum: they write disjoint cells. */
    const long ntile_used = im->phase_tile[CT_TILE_PHASES];
    tile_load *tl = rc == CT_OK ? malloc(((size_t)ntile_used + 1) * sizeof *tl) : NULL;
    if (rc == CT_OK && !tl)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %ld gridding tiles", ntile_used);
    for (long k = 0; rc == CT_OK && k < ntile_used; k++) {
        tl[k] = (tile_load){0, im->tile_id[k], im->tile_run[2 * k], im->tile_run[2 * k + 1]};
        for (size_t q = tl[k].r0; q < tl[k].r1; q++)
            tl[k].rows += im->run_to[q] - im->run_from[q];
    }
    for (int ph = 0; rc == CT_OK && ph < CT_TILE_PHASES; ph++)
        qsort(tl + im->phase_tile[ph], (size_t)(im->phase_tile[ph + 1] - im->phase_tile[ph]),
              sizeof *tl, heavier_first);
    for (long k = 0; rc == CT_OK && k < ntile_used; k++) {
        im->tile_id[k] = tl[k].id;
        im->tile_run[2 * k] = tl[k].r0;
        im->tile_run[2 * k + 1] = tl[k].r1;
    }
    free(tl);
    free(tid);
    free(from);
    free(to);
    free(bk);
    free(rtile);
    free(count);
    return rc;
}

/* The least-squares plane w = -xi u - eta v through the kept rows (their
 * moments, summed in density-row order by weight_rows: the same on any rank
 * count), when the mode allows a slant, the rows span a plane (not a line)
 * and the field lies within 45 degrees of the centre (the projection is
 * then far from its horizon); xi = eta = 0 otherwise. Whether it is worth
 * it is share_rows' call, from the w ranges. */
static void decide_slant(imp *im)
{
    im->xi = im->eta = 0;
    const double *f = im->fitm;
    const double det = f[0] * f[2] - f[1] * f[1];
    const double half =
        fmax(im->slant_half, 0.5 * hypot((double)im->nx, (double)im->ny) * im->cell);
    if (im->slant_mode == CT_IMAGER_SLANT_OFF || !im->wcand || !(det > 1e-9 * f[0] * f[2]) ||
        !(half < M_SQRT1_2))
        return;
    const double a = (f[3] * f[2] - f[4] * f[1]) / det, b = (f[4] * f[0] - f[3] * f[1]) / det;
    /* Mild enough at the corners for the inverse map to settle fast:
     * |xi l + eta m| / n <= 1/2 (DSA-110 at Dec 55 over 4 degrees: 0.02). */
    if (!isfinite(a) || !isfinite(b) || fabs(a) > 10 || fabs(b) > 10 ||
        !(hypot(a, b) * half / sqrt(1 - half * half) <= 0.5))
        return;
    im->xi = -a;
    im->eta = -b;
}

static ct_code share_rows(imp *im, double **owned_p, size_t nowned, const ct_weight_opts *o,
                          ct_err *err)
{
    int P = im->size, W = im->k.support;
    ct_code rc = CT_OK;
    double *owned = *owned_p;
    int *scount = calloc(2 * (size_t)P, sizeof *scount);
    size_t total = 0;
    int dests[CT_GRID_MAX_SUPPORT];
    if (P == 1 && scount) { /* one slab holds every kernel */
        scount[0] = (int)nowned;
        total = nowned;
    }
    for (size_t i = 0; P > 1 && scount && i < nowned; i++) {
        double uvw[3];
        rec_uvw(im, owned + i * REC_LEN, uvw);
        int nd = kernel_ranks(im, ct_gkernel_first(&im->k, uvw[1] * im->gy * im->cell), dests);
        for (int q = 0; q < nd; q++)
            scount[dests[q]]++;
        total += (size_t)nd;
    }
    double *send = NULL;
    if (P == 1) { /* every row stays: the owned records are the ones to send */
        send = owned;
        *owned_p = owned = NULL;
    } else if (scount)
        send = malloc((total * REC_LEN + 1) * sizeof *send);
    if (!send || !scount)
        rc = ct_fail(err, CT_ENOMEM, "out of memory sharing %zu visibility rows", total);
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK) {
        free(scount);
        free(send);
        return rc;
    }
    int *sdisp = scount + P;
    displacements(scount, sdisp, P);
    if (P > 1) {
        int fill[P];
        memcpy(fill, sdisp, (size_t)P * sizeof(int));
        for (size_t i = 0; i < nowned; i++) {
            const double *r = owned + i * REC_LEN;
            double uvw[3];
            rec_uvw(im, r, uvw);
            int nd = kernel_ranks(im, ct_gkernel_first(&im->k, uvw[1] * im->gy * im->cell), dests);
            for (int q = 0; q < nd; q++)
                memcpy(send + (size_t)fill[dests[q]]++ * REC_LEN, r, REC_LEN * sizeof(double));
        }
    }
    free(*owned_p);
    *owned_p = NULL;
    double *recv = NULL;
    size_t n = 0;
    rc = exchange_records(im, &send, scount, sdisp, REC_LEN, &recv, &n, err);
    free(scount);
    if (rc != CT_OK)
        return rc;

    /* The slant (imager.h): the plane through the rows' w, and the w range
     * with and without it (mins and maxes: exact on any number of ranks). */
    decide_slant(im);
    double wr[4] = {INFINITY, INFINITY, INFINITY, INFINITY}, gwr[4];
    for (size_t i = 0; i < n; i++) {
        double uvw[3];
        rec_uvw(im, recv + i * REC_LEN, uvw);
        const double ws = uvw[2] + (im->xi * uvw[0] + im->eta * uvw[1]);
        wr[0] = fmin(wr[0], uvw[2]);
        wr[1] = fmin(wr[1], -uvw[2]);
        wr[2] = fmin(wr[2], ws);
        wr[3] = fmin(wr[3], -ws);
    }
    MPI_Allreduce(wr, gwr, 4, MPI_DOUBLE, MPI_MIN, im->comm);
    /* AUTO slants only where it at least halves the w planes (counted at the
     * plain grid's spacing): a slant grid moves every pixel off the plain
     * one's directions, which a user comparing pixels with another imager's
     * plain SIN image must then resample, so it must pay for itself. */
    const double W1 = im->k.support + 1.0;
    const int slanted = (im->xi != 0 || im->eta != 0) &&
                        (im->slant_mode == CT_IMAGER_SLANT_ON ||
                         (im->dw_plain > 0 && 2.0 * ((-gwr[3] - gwr[2]) / im->dw_plain + W1) <=
                                                  (-gwr[1] - gwr[0]) / im->dw_plain + W1));
    if (slanted)
        im->wslant = 1; /* every row's w is w' from here on (row_uvw) */
    else
        im->xi = im->eta = 0;
    im->st.slant_xi = im->xi;
    im->st.slant_eta = im->eta;
    if ((rc = setup_wterms(im, err)) != CT_OK) {
        free(recv);
        return rc;
    }
    double wmin = slanted ? gwr[2] : gwr[0], wmax = slanted ? -gwr[3] : -gwr[1];
    im->plane_lo = im->plane_hi = 0;
    if (im->use_w && !(wmin == 0 && wmax == 0))
        rc = ct_wplane_range(&im->k, wmin, wmax, im->dw, &im->plane_lo, &im->plane_hi, err);
    else
        im->use_w = 0; /* every w is 0: the w term vanishes, the 2-D path runs */
    im->wmin = wmin;
    im->nbuckets = im->plane_hi - im->plane_lo + 1;

    uint32_t *key = malloc((n + 1) * sizeof *key);
    /* In 32 bits (a rank's rows are fewer than 2^31: exchange_records), the
     * sort's three arrays take 12 bytes a row, not 24: they and the records
     * are the load's peak. */
    uint32_t *perm1 = malloc((n + 1) * sizeof *perm1), *perm2 = malloc((n + 1) * sizeof *perm2);
    im->row_used = calloc((size_t)im->nrow + 1, 1);
    im->bucket = calloc((size_t)im->nbuckets + 1, sizeof *im->bucket);
    if (rc == CT_OK && (!key || !perm1 || !perm2 || !im->row_used || !im->bucket))
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %zu visibility rows", n);
    /* Rows sorted by (plane bucket, gridding tile of their kernel's first
     * cell, density row, arrival): each tile's rows a run in each bucket
     * (setup_tiles), consecutive rows touching the same few cache lines of
     * the slab. The density row is there for the order's sake: the records
     * arrive by density-row owner (weight_rows), and only within one density
     * row is arrival order the global order on any rank count. Three stable
     * counting sorts, each composed into the permutation so far (in place:
     * element i reads only its own); the sorts are stable, so the order is
     * unique and the same on any thread count (counting_order), and the
     * per-row loops are the threads'. */
    const ptrdiff_t nn = (ptrdiff_t)n;
    if (rc == CT_OK) {
#pragma omp parallel for num_threads(im->threads) schedule(static)
        for (ptrdiff_t i = 0; i < nn; i++) {
            long iu;
            double uvw[3];
            rec_uvw(im, recv + (size_t)i * REC_LEN, uvw);
            key[i] = (uint32_t)density_row(im, o, uvw[0], uvw[1], &iu);
        }
        rc = counting_order(key, n, im->wny, perm1, im->threads, err);
    }
    if (rc == CT_OK) {
#pragma omp parallel for num_threads(im->threads) schedule(static)
        for (ptrdiff_t i = 0; i < nn; i++) {
            double uvw[3];
            long gv, cu;
            rec_uvw(im, recv + perm1[i] * REC_LEN, uvw);
            kernel_start(im, uvw[0], uvw[1], &gv, &cu);
            key[i] = (uint32_t)row_tile(im, gv, cu);
        }
        rc = counting_order(key, n, row_tile(im, im->gy - 1, im->gx - 1) + 1, perm2, im->threads,
                            err);
    }
    if (rc == CT_OK) {
#pragma omp parallel for num_threads(im->threads) schedule(static)
        for (ptrdiff_t i = 0; i < nn; i++)
            perm2[i] = perm1[perm2[i]];
#pragma omp parallel for num_threads(im->threads) schedule(static)
        for (ptrdiff_t i = 0; i < nn; i++) {
            double uvw[3];
            rec_uvw(im, recv + perm2[i] * REC_LEN, uvw);
            long b = im->use_w ? ct_wplane_first(&im->k, uvw[2], wmin, im->dw) - im->plane_lo : 0;
            if (b < 0 || b >= im->nbuckets) /* cannot happen: the range covers w */
                b = b < 0 ? 0 : im->nbuckets - 1;
            key[i] = (uint32_t)b;
        }
        for (size_t i = 0; i < n; i++)
            im->bucket[key[i] + 1]++;
        rc = counting_order(key, n, im->nbuckets, perm1, im->threads, err);
    }
    /* The final permutation into perm2, and the sort's arrays freed before
     * the held rows are allocated: the peak of a load is the records and
     * the held rows together. */
    if (rc == CT_OK) {
#pragma omp parallel for num_threads(im->threads) schedule(static)
        for (ptrdiff_t i = 0; i < nn; i++)
            perm1[i] = perm2[perm1[i]];
        uint32_t *t = perm1;
        perm1 = perm2;
        perm2 = t;
    }
    free(key);
    free(perm1);
    key = NULL;
    perm1 = NULL;
    if (rc == CT_OK) {
        im->hb = malloc((n + 1) * sizeof *im->hb);
        im->hc = malloc((n + 1) * sizeof *im->hc);
        im->wt = malloc((n + 1) * sizeof *im->wt);
        im->vis = malloc((n + 1) * sizeof *im->vis);
        if (!im->hb || !im->hc || !im->wt || !im->vis)
            rc = ct_fail(err, CT_ENOMEM, "out of memory for %zu visibility rows", n);
    }
    if (rc == CT_OK) {
        for (long b = 0; b < im->nbuckets; b++)
            im->bucket[b + 1] += im->bucket[b];
        long dmin = LONG_MAX, dmax = LONG_MIN, cmin = LONG_MAX, cmax = LONG_MIN;
#pragma omp parallel for num_threads(im->threads) schedule(static) reduction(min                   \
                                                                             : dmin, cmin)         \
    reduction(max                                                                                  \
              : dmax, cmax)
        for (ptrdiff_t i = 0; i < nn; i++) {
            const double *r = recv + perm2[i] * REC_LEN;
            uint32_t b, c;
            rec_bc(r, &b, &c);
            im->hb[i] = b;
            im->hc[i] = (uint16_t)c;
            double uvw[3];
            row_uvw(im, b, c, uvw);
            double complex v = rec_vis(r);
            if (im->use_w)
                v *= cexp(-2.0 * M_PI * I * uvw[2] * im->nm1_mid);
            im->vis[i] = (gcell)v;
            im->wt[i] = (greal)r[REC_WT];
            long gv, cu;
            kernel_start(im, uvw[0], uvw[1], &gv, &cu);
            long d = mod_long(gv - im->row0, im->gy);
            cmin = cu < cmin ? cu : cmin;
            cmax = cu > cmax ? cu : cmax;
            if (d > im->gy / 2)
                d -= im->gy;
            dmin = d < dmin ? d : dmin;
            dmax = d > dmax ? d : dmax;
        }
        /* The slab rows some kernel touches: each thread marks its own copy,
         * then the copies are or-ed (no two threads write one byte). */
        const int T = im->threads > 1 && n >= 65536 ? im->threads : 1;
        unsigned char *used = T > 1 ? calloc((size_t)T * ((size_t)im->nrow + 1), 1) : NULL;
        const int TT = used ? T : 1;
#pragma omp parallel for num_threads(TT) schedule(static, 1)
        for (int t = 0; t < TT; t++) {
            unsigned char *u = used ? used + (size_t)t * ((size_t)im->nrow + 1) : im->row_used;
            for (size_t i = n * (size_t)t / (size_t)TT; i < n * ((size_t)t + 1) / (size_t)TT; i++) {
                long gv, cu;
                held_start(im, i, &gv, &cu);
                const long vf = mod_long(gv - im->row0, im->gy);
                for (int b = 0; b < W; b++) {
                    long lr = vf + b < im->gy ? vf + b : vf + b - im->gy;
                    if (lr < im->nrow)
                        u[lr] = 1;
                }
            }
        }
        for (int t = 0; used && t < TT; t++)
            for (ptrdiff_t r = 0; r < im->nrow; r++)
                im->row_used[r] |= used[(size_t)t * ((size_t)im->nrow + 1) + (size_t)r];
        free(used);
        im->n = n;
        if (P == 1 && n > 0 && cmax + W <= im->gx) {
            /* Compact rows (see compact) where they save a tenth or more. */
            const long page = 4096 / (long)sizeof(gcell);
            long cw = cmax + W - cmin > im->nxo ? cmax + W - cmin : im->nxo;
            cw = (cw + 7) / 8 * 8;
            const long gsc = cw + ((cw + 8) % page ? 8 : 16);
            if (gsc <= 0.9 * im->gs_full) {
                im->rowstride = ((size_t)im->gx + 7) / 8 * 8;
                im->rowbuf = FFTW(malloc)((size_t)im->threads * im->rowstride * sizeof(gcell));
                if (!im->rowbuf)
                    rc = ct_fail(err, CT_ENOMEM, "out of memory for the threads' row buffers");
                else {
                    im->compact = 1;
                    im->cin0 = cmin;
                    im->nin = cmax + W - cmin;
                    im->rowlen = (int)cw;
                    im->gs = (int)gsc;
                }
            }
        }
        /* The grid rows a degrid reads: the held rows' kernels. One rank
         * reads its own slab, the whole grid. */
        if (P == 1 || n == 0) {
            im->ext_lo = 0;
            im->ext_n = P == 1 ? im->gy : 0;
        } else {
            im->ext_lo = dmin;
            im->ext_n = dmax + W - dmin < im->gy ? dmax + W - dmin : im->gy;
            im->ext = advise_huge(FFTW(malloc)((size_t)im->ext_n * im->gs * sizeof(gcell) + 16),
                                  (size_t)im->ext_n * im->gs * sizeof(gcell));
            if (!im->ext)
                rc = ct_fail(err, CT_ENOMEM, "out of memory for %ld grid rows", im->ext_n);
        }
    }
    free(perm2);
    free(recv);
    if (rc == CT_OK)
        rc = setup_tiles(im, err);
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK)
        return rc;
    return setup_screens(im, err);
}

void CT_IMP(on_copied)(imp *im, void (*fn)(void *arg), void *arg)
{
    im->on_copied = fn;
    im->on_copied_arg = arg;
}

/* Row i of a load's input: its indices in range, its uvw finite and on a
 * sane grid, its weight and visibility usable (CT_OK), or the reason (err
 * may be NULL). */
static ct_code check_row(const imp *im, const ct_imager_rows *rw, size_t i, ct_err *err)
{
    const int nchan = rw->nchan;
    ct_code rc = CT_OK;
    const size_t b = rw->blt ? rw->blt[i] : i;
    if (b >= rw->nblt || rw->chan[i] < 0 || rw->chan[i] >= nchan) {
        rc = ct_fail(err, CT_EINVAL,
                     "row %zu: baseline-time %zu or channel %d outside 0..%zu, "
                     "0..%d",
                     i, b, rw->chan[i], rw->nblt - 1, nchan - 1);
        return rc;
    }
    const double sc = rw->chan_scale ? rw->chan_scale[rw->chan[i]] : 1.0;
    const double uvw[3] = {rw->blt_uvw[3 * b] * sc, rw->blt_uvw[3 * b + 1] * sc,
                           rw->blt_uvw[3 * b + 2] * sc};
    if (!isfinite(uvw[0]) || !isfinite(uvw[1]) || !isfinite(uvw[2]) ||
        fabs(uvw[0]) * im->cell * im->gx > 1e12 || fabs(uvw[1]) * im->cell * im->gy > 1e12)
        rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                        "corrupt input: row %zu has uvw (%g, %g, %g)", i, uvw[0], uvw[1], uvw[2]);
    const double nw = rows_weight(rw, i);
    const double complex v = rows_vis(rw, i);
    if (rc != CT_OK)
        return rc;
    if (!(nw >= 0) || isinf(nw))
        rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                        "corrupt input: row %zu has weight %g", i, nw);
    else if (nw > 0 && (!isfinite(creal(v)) || !isfinite(cimag(v))))
        rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                        "corrupt input: row %zu has a non-finite visibility and weight %g "
                        "(flag it)",
                        i, nw);
    else if (CT_IMAGER_SINGLE && nw > 0 &&
             !(fmax(fmax(fabs(creal(v)), fabs(cimag(v))), nw) <= 1e30))
        /* the held rows are float32 (see wt) */
        rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                        "corrupt input: row %zu has a visibility (%g, %g) or weight %g beyond "
                        "single precision",
                        i, creal(v), cimag(v), nw);
    return rc;
}

/* Every rank's baseline-times into im's table (rank order: global
 * baseline-time k), and the channels' scales; *boff is this rank's first. */
static ct_code gather_table(imp *im, const ct_imager_rows *rw, size_t *boff, ct_err *err)
{
    const int P = im->size;
    ct_code rc = CT_OK;
    unsigned long long mine = rw->nblt, *all = malloc((size_t)P * sizeof *all);
    int *cnt = malloc(2 * (size_t)P * sizeof *cnt);
    if (!all || !cnt)
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
    if ((rc = ct_mpi_agree(im->comm, rc, err)) == CT_OK)
        MPI_Allgather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, im->comm);
    unsigned long long tot = 0;
    for (int r = 0; rc == CT_OK && r < P; r++) {
        if (r == im->rank)
            *boff = (size_t)tot;
        if (all[r] > INT_MAX)
            rc = ct_fail(err, CT_EINVAL, "%llu baseline-times on rank %d: use more ranks", all[r],
                         r);
        cnt[r] = (int)all[r];
        cnt[P + r] = (int)tot;
        tot += all[r];
    }
    if (rc == CT_OK && (tot >= UINT32_MAX || tot > INT_MAX))
        rc = ct_fail(err, CT_EINVAL, "%llu baseline-times in all: more than one load takes", tot);
    if (rc == CT_OK) {
        im->ntab = (size_t)tot;
        im->tab_uvw = malloc((3 * im->ntab + 1) * sizeof *im->tab_uvw);
        im->tab_epoch = malloc((im->ntab + 1) * sizeof *im->tab_epoch);
        im->cscale = malloc(((size_t)im->nchan + 1) * sizeof *im->cscale);
        if (!im->tab_uvw || !im->tab_epoch || !im->cscale)
            rc = ct_fail(err, CT_ENOMEM, "out of memory for %zu baseline-times", im->ntab);
    }
    if ((rc = ct_mpi_agree(im->comm, rc, err)) == CT_OK) {
        MPI_Datatype t3 = row_type(3);
        MPI_Allgatherv(rw->blt_uvw, cnt[im->rank], t3, im->tab_uvw, cnt, cnt + P, t3, im->comm);
        MPI_Type_free(&t3);
        MPI_Allgatherv(rw->blt_epoch, cnt[im->rank], MPI_INT, im->tab_epoch, cnt, cnt + P, MPI_INT,
                       im->comm);
        for (int c = 0; c < im->nchan; c++)
            im->cscale[c] = rw->chan_scale ? rw->chan_scale[c] : 1.0;
    }
    free(all);
    free(cnt);
    return rc;
}

ct_code CT_IMP(load)(imp *im, const ct_imager_rows *rw, const ct_weight_opts *wopts, ct_err *err)
{
    double t0 = MPI_Wtime();
    free_rows(im);
    const size_t n = rw->n;
    const int nchan = rw->nchan, nepoch = rw->nepoch;
    ct_code rc = ct_weight_opts_check(wopts, err);
    if (rc == CT_OK && (im->gx % wopts->nx || im->gy % wopts->ny || wopts->cell_rad != im->cell))
        rc = ct_fail(err, CT_EINVAL,
                     "weights: grid %d x %d of cell %g does not divide the image's padded grid "
                     "%d x %d of cell %g",
                     wopts->nx, wopts->ny, wopts->cell_rad, im->gx, im->gy, im->cell);
    int nc[4] = {nchan, -nchan, nepoch, -nepoch}, gnc[4];
    MPI_Allreduce(nc, gnc, 4, MPI_INT, MPI_MAX, im->comm);
    if (rc == CT_OK && (nchan < 1 || gnc[0] != nchan || -gnc[1] != nchan || nepoch < 1 ||
                        gnc[2] != nepoch || -gnc[3] != nepoch || nchan > UINT16_MAX))
        rc = ct_fail(err, CT_EINVAL,
                     "the channel and epoch counts (%d, %d) must be the same, and positive, on "
                     "every rank (channels at most %d)",
                     nchan, nepoch, UINT16_MAX);
    if (rc == CT_OK && n > 0 && ((!rw->vis && !rw->vis_f) || (!rw->weight && !rw->weight_f)))
        rc = ct_fail(err, CT_EINVAL, "rows without visibilities or weights");
    if (rc == CT_OK && !rw->blt && rw->nblt != n)
        rc = ct_fail(err, CT_EINVAL, "rows without baseline-time indices need one each (%zu, %zu)",
                     rw->nblt, n);
    for (int c = 0; rc == CT_OK && rw->chan_scale && c < nchan; c++)
        if (!isfinite(rw->chan_scale[c]))
            rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                            "corrupt input: channel %d has scale %g", c, rw->chan_scale[c]);
    for (size_t b = 0; rc == CT_OK && b < rw->nblt; b++)
        if (rw->blt_epoch[b] < 0 || rw->blt_epoch[b] >= nepoch)
            rc = ct_fail(err, CT_EINVAL, "baseline-time %zu: epoch %d outside 0..%d", b,
                         rw->blt_epoch[b], nepoch - 1);
    /* Every row checked on the threads; the first bad one (the lowest
     * index, whatever the thread count) is the one reported. */
    size_t first_bad = n;
    if (rc == CT_OK) {
#pragma omp parallel for num_threads(im->threads) schedule(static) reduction(min : first_bad)
        for (ptrdiff_t i = 0; i < (ptrdiff_t)n; i++)
            if (check_row(im, rw, (size_t)i, NULL) != CT_OK && (size_t)i < first_bad)
                first_bad = (size_t)i;
        if (first_bad < n)
            rc = check_row(im, rw, first_bad, err);
    }
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK)
        return rc;
    im->nchan = nchan;
    im->nepoch = nepoch;
    im->wnx = wopts->nx;
    im->wny = wopts->ny;
    im->qy = im->gy / wopts->ny;
    size_t boff = 0;
    if ((rc = gather_table(im, rw, &boff, err)) != CT_OK) {
        free_rows(im);
        return rc;
    }
    im->drow_owner = malloc(((size_t)im->wny + 1) * sizeof(int));
    rc = im->drow_owner ? CT_OK : ct_fail(err, CT_ENOMEM, "out of memory");
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK) {
        free_rows(im);
        return rc;
    }
    for (int d = 0; d < im->wny; d++)
        im->drow_owner[d] = im->row_owner[(long)im->qy * d];
    double *owned = NULL;
    size_t nowned = 0;
    rc = weight_rows(im, rw, boff, wopts, &owned, &nowned, err);
    if (rc == CT_OK) {
        unsigned long long mine = nowned, all = 0;
        MPI_Allreduce(&mine, &all, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, im->comm);
        im->st.n_rows = (size_t)all;
        if (all == 0)
            rc = ct_fail(err, CT_EINVAL,
                         "no data: nothing left to image after flags and the uv cut");
        rc = ct_mpi_agree(im->comm, rc, err);
    }
    if (rc == CT_OK)
        rc = share_rows(im, &owned, nowned, wopts, err);
    free(owned);
    if (rc == CT_OK)
        rc = setup_groups(im, err);
    if (rc != CT_OK) {
        free_rows(im);
        return rc;
    }
    im->loaded = 1;
    im->st.weight_sum = im->wsum;
    im->st.w_planes = im->nbuckets;
    im->st.t_weights += MPI_Wtime() - t0;
    return CT_OK;
}

/* ---- the transforms ---- */

/* A buffer's rows forward-transformed along u, transposed, and forward
 * transformed along v: the plane's image columns. Only what is read is
 * transformed: rows no kernel touched are zero and stay so, and of the
 * transposed grid only the image's own columns (half of them, with the
 * grid padded by 2) are ever read. The threads each take whole rows or
 * columns, made by the same plan, so the bits do not depend on them.
 *
 * On more than one rank FFTW-MPI's transposes move the grid to and from
 * tslab. On one rank nothing is transposed: a pass reads each image column
 * of a plane straight from the row-transformed grid, in blocks of
 * TRANSPOSE_BLOCK adjacent columns (a cache line of each used row), into a
 * thread's own column buffers -- the very numbers the transpose would put
 * in tslab's column, zero in the rows no kernel touches -- and transforms
 * and sums them there, plane after plane of the group; a model's columns
 * are built, transformed and written into the grid's rows the same way.
 * The same plans on the same numbers: the same bits as on more ranks. One
 * rank then holds no transposed slab and no per-pixel running screen (the
 * block's screens live in the thread's buffer): 740 MB less at the
 * production geometry, and the transposed slab's traffic gone. */
/* The used rows of buf along u, with plan (row_fwd or row_bwd). */
static void rows_fft(imp *im, gcell *buf, FFTW(plan) plan)
{
    double t0 = MPI_Wtime();
    if (!im->compact) {
#pragma omp parallel for num_threads(im->threads) schedule(static)
        for (ptrdiff_t r = 0; r < im->nrow; r++)
            if (im->row_used[r])
                FFTW(execute_dft)(plan, buf + r * im->gs, buf + r * im->gs);
        im->st.t_fft += MPI_Wtime() - t0;
        return;
    }
    /* Compact rows: the row spread over the thread's buffer of gx cells
     * (zero where it holds nothing), transformed there in place, and what
     * is read of it gathered back: forward, from the gridded columns to the
     * image's; backward, the other way. */
    const int fwd = plan == im->row_fwd;
#pragma omp parallel num_threads(im->threads)
    {
        gcell *tb = im->rowbuf + (size_t)omp_get_thread_num() * im->rowstride;
#pragma omp for schedule(static)
        for (ptrdiff_t r = 0; r < im->nrow; r++) {
            if (!im->row_used[r])
                continue;
            gcell *row = buf + r * im->gs;
            memset(tb, 0, (size_t)im->gx * sizeof *tb);
            if (fwd)
                memcpy(tb + im->cin0, row, (size_t)im->nin * sizeof *row);
            else
                for (int i = 0; i < im->nxo; i++)
                    tb[im->xcol[i]] = row[i];
            FFTW(execute_dft)(plan, tb, tb);
            if (fwd)
                for (int i = 0; i < im->nxo; i++)
                    row[i] = tb[im->xcol[i]];
            else
                memcpy(row, tb + im->cin0, (size_t)im->nin * sizeof *row);
        }
    }
    im->st.t_fft += MPI_Wtime() - t0;
}

/* Image column a (ny pixels) of a pass's sum over planes, from out, the
 * plane's transform of the column along v (any 0: the plane is empty,
 * nothing is summed), with the column's phase screens sc (NULL without w
 * terms), which then step to the next plane by st. Only the real part of
 * the sum is kept (the image is real): Re(val scr) is formed as a complex
 * product's real part is, (vr sr) - (vi si). Image row y is transform row
 * (y - ny/2) mod gy: for y < ny/2 near the column's end, for the rest from
 * its start. */
static void sum_column(const imp *im, int any, const gcell *out, double *a, double complex *sc,
                       const gcell *st)
{
    const int h = im->ny / 2;
    for (int part = 0; part < 2; part++) {
        const int ya = part ? h : 0, yb = part ? im->ny : h;
        const ptrdiff_t sh = part ? -(ptrdiff_t)h : (ptrdiff_t)im->gy - h;
        if (any && sc)
            for (int y = ya; y < yb; y++) {
                const double vr = creal(out[y + sh]), vi = cimag(out[y + sh]);
                a[y] += vr * creal(sc[y]) - vi * cimag(sc[y]);
            }
        else if (any)
            for (int y = ya; y < yb; y++)
                a[y] += creal(out[y + sh]);
        if (sc)
            for (int y = ya; y < yb; y++)
                sc[y] *= st[y];
    }
}

/* More than one rank: the rows of buf along u and FFTW-MPI's transpose into
 * tslab. */
static void forward_fft(imp *im, gcell *buf)
{
    rows_fft(im, buf, im->row_fwd);
    double t0 = MPI_Wtime();
    FFTW(mpi_execute_r2r)(im->to_cols, (greal *)buf, (greal *)im->tslab);
    im->st.t_fft += MPI_Wtime() - t0;
}

/* More than one rank: a plane's columns, transformed along v out of place
 * into the thread's own column buffer (L2-resident), summed into acc with
 * the running screens scr (sum_column). */
static void columns_to_image(imp *im, int any, double *acc, double complex *scr)
{
    double t0 = MPI_Wtime();
#pragma omp parallel num_threads(im->threads)
    {
        gcell *out = im->colbuf + (size_t)omp_get_thread_num() * im->colstride;
#pragma omp for schedule(static)
        for (int i = 0; i < im->nxo; i++) {
            if (any)
                FFTW(execute_dft)(im->col_fwd, im->tslab + (ptrdiff_t)im->xcol[i] * im->gy, out);
            sum_column(im, any, out, acc + (size_t)i * im->ny,
                       im->use_w ? scr + (size_t)i * im->ny : NULL,
                       im->use_w ? im->wstep + (size_t)i * im->ny : NULL);
        }
    }
    im->st.t_fft += MPI_Wtime() - t0;
}

/* One rank: the planes j0..j1 of the group (rows already transformed along
 * u, in gslab) summed into acc, block of columns by block (see above). A
 * block's screens start at plane j0 as scr0 stepped j0 - plane_lo times,
 * the very products a pass over every plane forms. Returns nonzero when a
 * thread's buffers could not be had (nothing is then summed by it). */
static int columns_fused(imp *im, long j0, long j1, double *acc)
{
    double t0 = MPI_Wtime();
    const int B = TRANSPOSE_BLOCK;
    const size_t cs = im->colstride;
    const long nblk = (im->nxo + B - 1) / B;
    int no_mem = 0;
#pragma omp parallel num_threads(im->threads)
    {
        gcell *in = FFTW(malloc)((size_t)B * cs * sizeof(gcell));
        double complex *sb = im->use_w ? malloc((size_t)B * im->ny * sizeof *sb) : NULL;
        gcell *out = im->colbuf + (size_t)omp_get_thread_num() * cs;
        const int ok = in && (sb || !im->use_w);
        if (!ok) {
#pragma omp atomic write
            no_mem = 1;
        }
#pragma omp for schedule(static)
        for (long bk = 0; bk < nblk; bk++) {
            if (!ok)
                continue;
            const int i0 = (int)bk * B, i1 = i0 + B < im->nxo ? i0 + B : im->nxo;
            for (int i = i0; sb && i < i1; i++)
                for (int y = 0; y < im->ny; y++) {
                    const size_t p = (size_t)i * im->ny + y;
                    double complex sc = im->scr0[p];
                    for (long j = im->plane_lo; j < j0; j++)
                        sc *= im->wstep[p];
                    sb[(size_t)(i - i0) * im->ny + y] = sc;
                }
            for (long j = j0; j <= j1; j++) {
                const int any = im->plane_any[j - im->plane_lo];
                const gcell *buf = im->gslab[j - j0];
                for (ptrdiff_t r = 0; any && r < im->gy; r++) {
                    if (!im->row_used[r]) {
                        for (int i = i0; i < i1; i++)
                            in[(size_t)(i - i0) * cs + (size_t)r] = 0;
                        continue;
                    }
                    const gcell *row = buf + r * im->gs;
                    for (int i = i0; i < i1; i++)
                        in[(size_t)(i - i0) * cs + (size_t)r] = row[im->compact ? i : im->xcol[i]];
                }
                for (int i = i0; i < i1; i++) {
                    if (any)
                        FFTW(execute_dft)(im->col_fwd, in + (size_t)(i - i0) * cs, out);
                    sum_column(im, any, out, acc + (size_t)i * im->ny,
                               sb ? sb + (size_t)(i - i0) * im->ny : NULL,
                               sb ? im->wstep + (size_t)i * im->ny : NULL);
                }
            }
        }
        FFTW(free)(in);
        free(sb);
    }
    im->st.t_fft += MPI_Wtime() - t0;
    return no_mem;
}

/* More than one rank: tslab's columns back to the rows of buf. The columns
 * outside the image are zero (the model lives in the image), and only the
 * rows some kernel reads are transformed (the others hold what the
 * transpose left). */
static void backward_fft(imp *im, gcell *buf)
{
    double t0 = MPI_Wtime();
    /* Only the columns that hold a component: the others are zero, and so
     * is their transform. */
#pragma omp parallel for num_threads(im->threads) schedule(static)
    for (int k = 0; k < im->nmcol; k++) {
        gcell *col = im->tslab + (ptrdiff_t)im->xcol[im->mcol[k]] * im->gy;
        FFTW(execute_dft)(im->col_bwd, col, col);
    }
    FFTW(mpi_execute_r2r)(im->to_rows, (greal *)im->tslab, (greal *)buf);
    im->st.t_fft += MPI_Wtime() - t0;
    rows_fft(im, buf, im->row_bwd);
}

/* The value the model's component c adds to its column's cell on plane w =
 * wj (image column i of this rank, pixel row y). */
static double complex model_value(const imp *im, const double *comp, long c, int i, double wj)
{
    const int x = (int)comp[3 * c], y = (int)comp[3 * c + 1];
    double complex val = comp[3 * c + 2] * im->corr_x[x] * im->corr_y[y];
    if (im->use_w)
        val *= (double)im->corr_w[(size_t)i * im->ny + y] *
               cexp(2.0 * M_PI * I * wj * pixel_shift(im, i, y));
    return val;
}

/* One rank: the model's plane at w = wj onto the used rows of buf (see
 * above): the rows zeroed; each block of image columns that holds a
 * component built in a thread's buffer (column i's components, cidx[cfrom[i]
 * .. cfrom[i + 1]), added in their order: the sums tslab would hold),
 * transformed along v and written into the rows; then the rows transformed
 * along u. Returns nonzero when a thread's buffer could not be had. */
static int model_to_rows(imp *im, gcell *buf, const double *comp, const long *cfrom,
                         const long *cidx, double wj)
{
    double t0 = MPI_Wtime();
    const int B = TRANSPOSE_BLOCK;
    const size_t cs = im->colstride;
    const long nblk = (im->nxo + B - 1) / B;
    int no_mem = 0;
#pragma omp parallel for num_threads(im->threads) schedule(static)
    for (ptrdiff_t r = 0; r < im->gy; r++)
        if (im->row_used[r])
            memset(buf + r * im->gs, 0, (size_t)im->rowlen * sizeof *buf);
#pragma omp parallel num_threads(im->threads)
    {
        gcell *in = FFTW(malloc)((size_t)B * cs * sizeof(gcell));
        if (!in) {
#pragma omp atomic write
            no_mem = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (long bk = 0; bk < nblk; bk++) {
            const int i0 = (int)bk * B, i1 = i0 + B < im->nxo ? i0 + B : im->nxo;
            if (!in || cfrom[i0] == cfrom[i1])
                continue;
            for (int i = i0; i < i1; i++) {
                gcell *col = in + (size_t)(i - i0) * cs;
                if (cfrom[i] == cfrom[i + 1])
                    continue;
                memset(col, 0, (size_t)im->gy * sizeof *col);
                for (long k = cfrom[i]; k < cfrom[i + 1]; k++) {
                    const long c = cidx[k];
                    col[mod_long((long)comp[3 * c + 1] - im->ny / 2, im->gy)] +=
                        model_value(im, comp, c, i, wj);
                }
                FFTW(execute_dft)(im->col_bwd, col, col);
            }
            for (ptrdiff_t r = 0; r < im->gy; r++) {
                if (!im->row_used[r])
                    continue;
                gcell *row = buf + r * im->gs;
                for (int i = i0; i < i1; i++)
                    if (cfrom[i] != cfrom[i + 1])
                        row[im->compact ? i : im->xcol[i]] = in[(size_t)(i - i0) * cs + (size_t)r];
            }
        }
        FFTW(free)(in);
    }
    im->st.t_fft += MPI_Wtime() - t0;
    rows_fft(im, buf, im->row_bwd);
    return no_mem;
}

/* Zeroes n bytes with the threads, each its own part (which also places the
 * pages near the threads that fill them). */
static void zero_parallel(const imp *im, void *p, size_t n)
{
    const size_t chunk = (size_t)1 << 20;
    const long nchunks = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for num_threads(im->threads) schedule(static)
    for (long c = 0; c < nchunks; c++) {
        size_t off = (size_t)c * chunk;
        memset((char *)p + off, 0, n - off < chunk ? n - off : chunk);
    }
}

/* Plane groups. A visibility's kernel in u and v is the same on each of the
 * W w planes it reaches, so planes are gridded G at a time into G slabs and
 * each visibility's u and v taps are worked out once per group, not once per
 * plane. A cell still receives its contributions in the order of the rows
 * (w-plane bucket, density row, global index), whatever G is, so G (chosen
 * from the memory left, at most 2 W) changes the speed only (and, in a
 * degrid, the order of the sum over planes: G is the same on any rank count
 * wherever memory is not what limits it). */
static ct_code setup_groups(imp *im, ct_err *err)
{
    const long np = im->plane_hi - im->plane_lo + 1;
    const int W = im->k.support;
    ct_code rc = CT_OK;
    im->plane_any = calloc((size_t)np + 1, sizeof *im->plane_any);
    if (!im->plane_any)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for %ld w planes", np);
    for (long j = 0; rc == CT_OK && j < np; j++) {
        long b1 = im->use_w ? j : im->nbuckets - 1, b0 = im->use_w ? j - W + 1 : 0;
        b0 = b0 < 0 ? 0 : b0;
        b1 = b1 >= im->nbuckets ? im->nbuckets - 1 : b1;
        im->plane_any[j] = b0 <= b1 && im->bucket[b1 + 1] > im->bucket[b0];
    }
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK)
        return rc;
    MPI_Allreduce(MPI_IN_PLACE, im->plane_any, (int)np, MPI_UNSIGNED_CHAR, MPI_MAX, im->comm);

    double slab = (double)im->nrow * im->gs * sizeof(gcell);
    double ext = im->size > 1 ? (double)im->ext_n * im->gs * sizeof(gcell) : 0;
    double rows = (double)im->n * 96.0;
    double left = im->max_bytes - im->need_bytes - rows;
    long g = 1 + (slab + ext > 0 ? (long)fmax(0, floor(left / (slab + ext))) : W);
    /* And no more than CT_IMAGER_GROUP_BYTES of slabs in all. A group pays
     * for its memory at every size: each row's taps and its reads of the row
     * are made once per group, not once per plane, and at the production
     * geometry (planes of 9600^2, 738 MB in float32) groups of 6 planes
     * instead of 1 made a degridding pass 2.7 x and a gridding pass 1.7 x
     * faster (10.4 -> 3.8 s, 6.0 -> 3.5 s; peak memory 8.5 -> 11.7 GB).
     * The cap keeps one rank from taking a node's memory for it; max_bytes
     * (--max-memory-gb) lowers it further. */
    if (slab + ext > 0 && (double)g * (slab + ext) > CT_IMAGER_GROUP_BYTES)
        g = (long)fmax(1, floor(CT_IMAGER_GROUP_BYTES / (slab + ext)));
    /* Up to 2 W: a row reaches W consecutive planes, so with groups of W
     * most rows straddle two groups and have their taps worked twice; with
     * all of a slant grid's few planes (7 at the production geometry) in one
     * group, every row is worked once. */
    g = g > 2 * W ? 2 * W : g;
    g = g > np ? np : g;
    g = g < 1 ? 1 : g;
    long gmin = g;
    MPI_Allreduce(&g, &gmin, 1, MPI_LONG, MPI_MIN, im->comm);
    im->group = (int)gmin;
    if (im->size > 1 && !im->ext && !(im->ext = FFTW(malloc)(16)))
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
    im->gslab = calloc((size_t)im->group, sizeof *im->gslab);
    im->gclean = calloc((size_t)im->group + 1, 1);
    im->gext = calloc((size_t)im->group, sizeof *im->gext);
    im->graw = calloc(2 * (size_t)im->group, sizeof *im->graw);
    im->graw_bytes = calloc(2 * (size_t)im->group, sizeof *im->graw_bytes);
    if (!im->gslab || !im->gext || !im->gclean || !im->graw || !im->graw_bytes)
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
    const size_t ext_bytes = (size_t)im->ext_n * im->gs * sizeof(gcell);
    for (int q = 0; rc == CT_OK && q < im->group; q++) {
        /* Slab q starts q x 14 cache lines (896 bytes) into its
         * allocation (see gs). */
        const size_t stagger_bytes = (size_t)q * 896, stagger = stagger_bytes / sizeof(gcell);
        if (q > 0) {
            im->graw_bytes[q] = im->slab_bytes + stagger_bytes;
            im->graw[q] = grid_alloc(im->graw_bytes[q]);
            im->gslab[q] = im->graw[q] ? im->graw[q] + stagger : NULL;
            im->gclean[q] = im->size == 1; /* fresh zero pages (grid_alloc) */
        } else {
            im->gslab[q] = im->slab;
            im->gclean[q] = im->size == 1 && im->slab_fresh;
            im->slab_fresh = 0; /* the next load's used rows may differ */
        }
        if (im->size == 1)
            im->gext[q] = im->gslab[q];
        else if (q == 0)
            im->gext[q] = im->ext;
        else {
            im->graw_bytes[im->group + q] = ext_bytes + 16 + stagger_bytes;
            im->graw[im->group + q] = grid_alloc(im->graw_bytes[im->group + q]);
            im->gext[q] = im->graw[im->group + q] ? im->graw[im->group + q] + stagger : NULL;
        }
        if (!im->gslab[q] || !im->gext[q])
            rc = ct_fail(err, CT_ENOMEM, "out of memory for %d w planes at once", im->group);
    }
    im->st.plane_group = im->group;
    im->st.row_cells = im->rowlen;
    return ct_mpi_agree(im->comm, rc, err);
}

static void free_groups(imp *im)
{
    for (int q = 0; im->graw && q < 2 * im->group; q++)
        grid_free(im->graw[q], im->graw_bytes[q]);
    free(im->graw);
    free(im->graw_bytes);
    im->graw = NULL;
    im->graw_bytes = NULL;
    free(im->gslab);
    free(im->gclean);
    im->gclean = NULL;
    free(im->gext);
    free(im->plane_any);
    im->gslab = im->gext = NULL;
    im->plane_any = NULL;
    im->group = 0;
}

/* The buckets whose rows' planes meet the group [j0, j1]: j0 - W + 1 .. j1
 * (all of them without w-terms: one bucket); *b0 > *b1 when none. */
static void group_buckets(const imp *im, long j0, long j1, long *b0, long *b1)
{
    if (!im->use_w) {
        *b0 = 0;
        *b1 = im->nbuckets - 1;
        return;
    }
    *b0 = j0 - im->plane_lo - im->k.support + 1;
    *b1 = j1 - im->plane_lo;
    *b0 = *b0 < 0 ? 0 : *b0;
    *b1 = *b1 >= im->nbuckets ? im->nbuckets - 1 : *b1;
}

/* The rows whose planes meet the group [j0, j1]. */
static void group_rows(const imp *im, long j0, long j1, size_t *from, size_t *to)
{
    long b0, b1;
    group_buckets(im, j0, j1, &b0, &b1);
    *from = b0 <= b1 ? im->bucket[b0] : 0;
    *to = b0 <= b1 ? im->bucket[b1 + 1] : 0;
}

/* Row i's kernel for the plane group [j0, j1]: its taps in u and v (from
 * grid row gv mod gy and column cu mod gx, as kernel_start gives them), its
 * weights on the w planes (plane wf + q has kw[q]; 1 without w-terms), the
 * planes pa..pb of the group it reaches, and its w (w' when slanted).
 * Returns 0 when it reaches none. */
typedef struct row_kernel {
    double kx[CT_GRID_MAX_SUPPORT], ky[CT_GRID_MAX_SUPPORT], kw[CT_GRID_MAX_SUPPORT];
    long wf, pa, pb, gv, cu;
    double w;
} row_kernel;

static inline __attribute__((always_inline)) int row_kernel_at(const imp *im, size_t i, long j0,
                                                               long j1, row_kernel *rk)
{
    double uvw[3];
    row_uvw(im, im->hb[i], im->hc[i], uvw);
    /* The series offsets as ct_gkernel_taps and ct_wplane_taps form them. */
    const double h = 0.5 * im->k.support, gu = uvw[0] * im->gx * im->cell,
                 gv = uvw[1] * im->gy * im->cell, fu = __builtin_ceil(gu - h),
                 fv = __builtin_ceil(gv - h);
    /* kernel_start's cells (ct_gkernel_first is this very ceil). */
    rk->gv = mod_long((long)fv, im->gy);
    rk->cu = mod_long((long)fu + im->gx / 2, im->gx);
    rk->w = uvw[2];
    double t[3] = {2.0 * (fu - gu + h) - 1.0, 2.0 * (fv - gv + h) - 1.0, 0.0};
    if (im->use_w) {
        const double tw = (uvw[2] - im->wmin) / im->dw, fw = __builtin_ceil(tw - h);
        rk->wf = (long)fw;
        t[2] = 2.0 * (fw - tw + h) - 1.0;
        rk->pa = rk->wf > j0 ? rk->wf : j0;
        rk->pb = rk->wf + im->k.support - 1 < j1 ? rk->wf + im->k.support - 1 : j1;
    } else
        rk->wf = rk->pa = rk->pb = j0;
    if (rk->pa > rk->pb)
        return 0;
    ct_gkernel_series3(&im->k, t, rk->kx, rk->ky, rk->kw);
    if (!im->use_w)
        rk->kw[0] = 1.0;
    return 1;
}

/* The hot loops, compiled twice: for AVX2 and for the baseline instruction
 * set, chosen once when the program loads (GCC's target_clones). ISO C
 * mode contracts no multiply-add into an FMA, so both clones compute the
 * same bits; only the width of the vector registers differs. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define CT_HOT __attribute__((target_clones("avx2", "default")))
#else
#define CT_HOT
#endif

/* The degridding's reads of the grid's cells as interleaved (re, im)
 * numbers at the grid's precision, 32 bytes (VC cells), two cells or one
 * at a time: GCC's and Clang's vector types, element by element the same
 * arithmetic as scalar code (so every clone gives the same bits), but
 * without the shuffles a loop over complex numbers compiles to. The
 * unaligned types let a kernel start at any cell. */
typedef greal ct_gv __attribute__((vector_size(32)));
typedef greal ct_gvu __attribute__((vector_size(32), aligned(sizeof(greal))));
typedef greal ct_g2 __attribute__((vector_size(4 * sizeof(greal))));
typedef greal ct_g2u __attribute__((vector_size(4 * sizeof(greal)), aligned(sizeof(greal))));
typedef greal ct_g1 __attribute__((vector_size(2 * sizeof(greal))));
typedef greal ct_g1u __attribute__((vector_size(2 * sizeof(greal)), aligned(sizeof(greal))));

/* Row i's weight x visibility as a pass grids it, in the frame of the
 * phase common to the field (the held visibilities are kept in it; for the
 * PSF, unit visibilities are turned into it here). The residual
 * visibilities are the loaded ones until a model is set. */
static inline double complex gridded_value(const imp *im, int psf, size_t i, double w)
{
    if (psf)
        return (double)im->wt[i] * (im->use_w ? cexp(-2.0 * M_PI * I * w * im->nm1_mid) : 1.0);
    const double complex v = im->vis[i];
    return (double)im->wt[i] * v;
}

/* A thread's tile buffer: the cells that the kernels of one tile's rows
 * reach (the tile and W - 1 more on each axis) on each plane of a group,
 * interleaved (re, im) doubles, rows TB_SIDE cells apart. Why a buffer: a
 * tile's rows add into it at double precision, in L1 or L2, and it is then
 * added to the slab once -- so a cell of a single-precision grid gets one
 * rounding per tile, not one per visibility (a dense cell near the uv
 * origin gets 1e5 visibilities, and float32 sums of them lost 1e-5 of the
 * peak), and the slab is touched once per cell per tile, not W^2 x planes
 * times per row. */
#define TB_SIDE (2 * CT_TILE - 1 + CT_GRID_MAX_SUPPORT - 1)

typedef double ct_v4d __attribute__((vector_size(32)));
typedef double ct_v4du __attribute__((vector_size(32), aligned(8)));
typedef double ct_v2d __attribute__((vector_size(16)));
typedef double ct_v2du __attribute__((vector_size(16), aligned(8)));

/* The box of the buffer a tile's rows touched: planes, rows, columns. */
typedef struct tile_box {
    long p0, p1, y0, y1, x0, x1;
} tile_box;

/* Grids rows [from, to) of the tile whose first cell is global row gy0,
 * column cx0, for the plane group [j0, j1], into buf (plane q at q *
 * TB_SIDE^2 cells), for a support W constant where it is inlined (so the
 * loops over taps unroll and their vectors stay in registers). Every
 * kernel lies inside the buffer: no row wraps here (the flush wraps). */
static inline __attribute__((always_inline)) void grid_tile_w(const imp *im, int psf, size_t from,
                                                              size_t to, long j0, long j1, long gy0,
                                                              long cx0, double *buf, tile_box *box,
                                                              const int W)
{
    const long sx = TB_SIDE, sp = (long)TB_SIDE * TB_SIDE;
    row_kernel rk = {0};
    for (size_t i = from; i < to; i++) {
        if (!row_kernel_at(im, i, j0, j1, &rk))
            continue;
        const long y0 = rk.gv - gy0;
        const long x0 = rk.cu - cx0;
        box->p0 = rk.pa - j0 < box->p0 ? rk.pa - j0 : box->p0;
        box->p1 = rk.pb - j0 > box->p1 ? rk.pb - j0 : box->p1;
        box->y0 = y0 < box->y0 ? y0 : box->y0;
        box->y1 = y0 + W - 1 > box->y1 ? y0 + W - 1 : box->y1;
        box->x0 = x0 < box->x0 ? x0 : box->x0;
        box->x1 = x0 + W - 1 > box->x1 ? x0 + W - 1 : box->x1;
        const double complex gi = gridded_value(im, psf, i, rk.w);
        /* The u taps with each value twice, (kx0, kx0, kx1, kx1, ...): the
         * shape of a row of cells. */
        double k2[2 * CT_GRID_MAX_SUPPORT];
        for (int a = 0; a < W; a++)
            k2[2 * a] = k2[2 * a + 1] = rk.kx[a];
        const ct_v2d tt = {rk.kx[W - 1], rk.kx[W - 1]};
        for (long j = rk.pa; j <= rk.pb; j++) {
            const double complex v = rk.kw[j - rk.wf] * gi;
            const double vr = creal(v), vi = cimag(v);
            double *cells = buf + 2 * ((j - j0) * sp + y0 * sx + x0);
            for (int b = 0; b < W; b++) {
                const double br = vr * rk.ky[b], bi = vi * rk.ky[b];
                const ct_v4d p = {br, bi, br, bi};
                double *d = cells + 2 * b * sx;
                for (int q = 0; q < W / 2; q++)
                    *(ct_v4du *)(d + 4 * q) += p * *(const ct_v4du *)(k2 + 4 * q);
                if (W & 1)
                    *(ct_v2du *)(d + 4 * (W / 2)) += (ct_v2d){br, bi} * tt;
            }
        }
    }
}

CT_HOT static void grid_tile(const imp *im, int psf, size_t from, size_t to, long j0, long j1,
                             long gy0, long cx0, double *buf, tile_box *box)
{
    switch (im->k.support) {
#define CT_GRID_CASE(w)                                                                            \
    case w: grid_tile_w(im, psf, from, to, j0, j1, gy0, cx0, buf, box, w); break;
        CT_GRID_CASE(4)
        CT_GRID_CASE(5)
        CT_GRID_CASE(6)
        CT_GRID_CASE(7)
        CT_GRID_CASE(8)
#undef CT_GRID_CASE
    default: grid_tile_w(im, psf, from, to, j0, j1, gy0, cx0, buf, box, im->k.support);
    }
}

/* Adds the box of a tile's buffer to the group's slabs (the rows in this
 * rank's slab; round the periodic edges) and zeroes it for the next tile. */
static void flush_tile(const imp *im, long gy0, long cx0, double *buf, const tile_box *box)
{
    const long sx = TB_SIDE, sp = (long)TB_SIDE * TB_SIDE;
    for (long q = box->p0; q <= box->p1; q++) {
        greal *slab = (greal *)im->gslab[q];
        for (long y = box->y0; y <= box->y1; y++) {
            double *brow = buf + 2 * (q * sp + y * sx);
            const long lr = mod_long(gy0 + y - im->row0, im->gy);
            if (lr < im->nrow) {
                greal *srow = slab + 2 * lr * im->gs;
                for (long x = box->x0; x <= box->x1; x++) {
                    const long c = mod_long(cx0 + x, im->gx) - im->cin0;
                    srow[2 * c] += (greal)brow[2 * x];
                    srow[2 * c + 1] += (greal)brow[2 * x + 1];
                }
            }
            memset(brow + 2 * box->x0, 0, (size_t)(box->x1 - box->x0 + 1) * 2 * sizeof(double));
        }
    }
}

/* Row i's prediction from the plane group [j0, j1] (the group's grids in
 * gext), for a support W constant where it is inlined. Per plane the
 * kernel's rows are summed cell by cell (weighted by ky), the planes
 * summed weighted by kw, and only then the u taps applied across the
 * cells: one vector multiply-add per four doubles of the grid read. */
static inline __attribute__((always_inline)) double complex degrid_row_w(const imp *im, size_t i,
                                                                         long j0, long j1,
                                                                         const int W)
{
    row_kernel rk = {0};
    if (!row_kernel_at(im, i, j0, j1, &rk))
        return 0;
    const long gx = im->gx, gy = im->gy, gs = im->gs, c0 = rk.cu - im->cin0;
    const long e0 = mod_long(rk.gv - im->row0 - im->ext_lo, gy);
    double re = 0, imv = 0;
    if (c0 + W <= gx) {
        /* Sums over the kernel's rows and planes at the grid's precision
         * (VC cells a vector; past W / VC vectors, two cells in half a
         * vector where single precision leaves two or three, then cells
         * one by one), then across its columns in double. */
        enum { NQ = CT_GRID_MAX_SUPPORT / VC };
        const int nq = W / VC, a0 = VC * nq, two = VC == 4 && W - a0 >= 2, a1 = a0 + 2 * two;
        ct_gv col[NQ];
        ct_g2 half = {0};
        ct_g1 tail[VC];
        for (int q = 0; q < nq; q++)
            col[q] = (ct_gv){0};
        for (int a = a1; a < W; a++)
            tail[a - a1] = (ct_g1){0, 0};
        for (long j = rk.pa; j <= rk.pb; j++) {
            const greal *cells = (const greal *)(im->gext[j - j0] + c0);
            ct_gv sq[NQ];
            ct_g2 sh = {0};
            ct_g1 st[VC];
            for (int q = 0; q < nq; q++)
                sq[q] = (ct_gv){0};
            for (int a = a1; a < W; a++)
                st[a - a1] = (ct_g1){0, 0};
            for (int b = 0; b < W; b++) {
                const long er = e0 + b < gy ? e0 + b : e0 + b - gy;
                const greal *d = cells + 2 * er * gs;
                const greal kyb = (greal)rk.ky[b];
                for (int q = 0; q < nq; q++)
                    sq[q] += *(const ct_gvu *)(d + 2 * VC * q) * kyb;
                if (two)
                    sh += *(const ct_g2u *)(d + 2 * a0) * kyb;
                for (int a = a1; a < W; a++)
                    st[a - a1] += *(const ct_g1u *)(d + 2 * a) * kyb;
            }
            const greal kwj = (greal)rk.kw[j - rk.wf];
            for (int q = 0; q < nq; q++)
                col[q] += sq[q] * kwj;
            if (two)
                half += sh * kwj;
            for (int a = a1; a < W; a++)
                tail[a - a1] += st[a - a1] * kwj;
        }
        for (int q = 0; q < nq; q++) {
            double sr = 0, si = 0;
            for (int e = 0; e < VC; e++) {
                sr += (double)col[q][2 * e] * rk.kx[VC * q + e];
                si += (double)col[q][2 * e + 1] * rk.kx[VC * q + e];
            }
            re += sr;
            imv += si;
        }
        if (two) {
            re += (double)half[0] * rk.kx[a0] + (double)half[2] * rk.kx[a0 + 1];
            imv += (double)half[1] * rk.kx[a0] + (double)half[3] * rk.kx[a0 + 1];
        }
        for (int a = a1; a < W; a++) {
            re += (double)tail[a - a1][0] * rk.kx[a];
            imv += (double)tail[a - a1][1] * rk.kx[a];
        }
        return CMPLX(re, imv);
    }
    /* The kernel wraps round the grid's edge: the same sums, cell by cell
     * (in double). */
    double cr[CT_GRID_MAX_SUPPORT] = {0}, ci[CT_GRID_MAX_SUPPORT] = {0};
    for (long j = rk.pa; j <= rk.pb; j++) {
        const gcell *ext = im->gext[j - j0];
        double sr[CT_GRID_MAX_SUPPORT] = {0}, si[CT_GRID_MAX_SUPPORT] = {0};
        for (int b = 0; b < W; b++) {
            const long er = e0 + b < gy ? e0 + b : e0 + b - gy;
            const gcell *row = ext + er * gs;
            for (int a = 0; a < W; a++) {
                const long c = c0 + a < gx ? c0 + a : c0 + a - gx;
                sr[a] += creal(row[c]) * rk.ky[b];
                si[a] += cimag(row[c]) * rk.ky[b];
            }
        }
        const double kwj = rk.kw[j - rk.wf];
        for (int a = 0; a < W; a++) {
            cr[a] += sr[a] * kwj;
            ci[a] += si[a] * kwj;
        }
    }
    for (int a = 0; a < W; a++) {
        re += cr[a] * rk.kx[a];
        imv += ci[a] * rk.kx[a];
    }
    return CMPLX(re, imv);
}

/* Takes from res[i], for rows [from, to), their prediction from the plane
 * group [j0, j1]. Each row's sum is formed by one thread in one fixed
 * order. */
CT_HOT static void degrid_rows(const imp *im, gcell *res, size_t from, size_t to, long j0, long j1)
{
    const int W = im->k.support;
#pragma omp parallel for num_threads(im->threads) schedule(dynamic, 4096)
    for (size_t i = from; i < to; i++) {
        double complex p;
        switch (W) {
        case 4: p = degrid_row_w(im, i, j0, j1, 4); break;
        case 5: p = degrid_row_w(im, i, j0, j1, 5); break;
        case 6: p = degrid_row_w(im, i, j0, j1, 6); break;
        case 7: p = degrid_row_w(im, i, j0, j1, 7); break;
        case 8: p = degrid_row_w(im, i, j0, j1, 8); break;
        default: p = degrid_row_w(im, i, j0, j1, W);
        }
        const double complex r = res[i];
        res[i] = (gcell)(r - p); /* in double, rounded once */
    }
}

/* Gathers this rank's image columns (i-major, nxo x ny) into image on rank 0. */
static ct_code gather_image(imp *im, const double *cols, double *image, ct_err *err)
{
    int P = im->size;
    ct_code rc = CT_OK;
    if (P == 1) { /* no copy of the whole image: column xs[i] is cols' i */
#pragma omp parallel for num_threads(im->threads) schedule(static)
        for (int y = 0; y < im->ny; y++)
            for (int i = 0; i < im->nxo; i++)
                image[(size_t)y * im->nx + im->xs[i]] = cols[(size_t)i * im->ny + y];
        return CT_OK;
    }
    int *cnt = NULL, *disp = NULL;
    double *all = NULL;
    if (im->rank == 0) {
        cnt = malloc(2 * (size_t)P * sizeof *cnt);
        all = malloc(((size_t)im->nx * im->ny + 1) * sizeof *all);
        if (!cnt || !all)
            rc = ct_fail(err, CT_ENOMEM, "out of memory gathering the image");
        else {
            disp = cnt + P;
            int off = 0;
            for (int r = 0; r < P; r++) {
                int c = 0;
                for (int x = 0; x < im->nx; x++) {
                    long gc = mod_long(x - im->nx / 2, im->gx);
                    c += gc >= im->cols_start[r] && gc < im->cols_start[r] + im->cols_count[r];
                }
                cnt[r] = c;
                disp[r] = off;
                off += c;
            }
        }
    }
    if ((rc = ct_mpi_agree(im->comm, rc, err)) == CT_OK) {
        MPI_Datatype t = row_type((size_t)im->ny);
        MPI_Gatherv(cols, im->nxo, t, all, cnt, disp, t, 0, im->comm);
        MPI_Type_free(&t);
        if (im->rank == 0) {
            /* Rank r's columns are the x whose padded column is in its range,
             * in increasing x. */
            for (int r = 0, i = 0; r < P; r++)
                for (int x = 0; x < im->nx; x++) {
                    long gc = mod_long(x - im->nx / 2, im->gx);
                    if (!(gc >= im->cols_start[r] && gc < im->cols_start[r] + im->cols_count[r]))
                        continue;
                    for (int y = 0; y < im->ny; y++)
                        image[(size_t)y * im->nx + x] = all[(size_t)i * im->ny + y];
                    i++;
                }
        }
    }
    free(cnt);
    free(all);
    return rc;
}

/* Zeroes slab q of the group for a gridding pass. */
static void zero_slab(imp *im, int q)
{
    gcell *slab = im->gslab[q];
    if (!im->gclean[q]) {
        zero_parallel(im, slab, (size_t)im->nrow * im->gs * sizeof *slab);
        im->gclean[q] = 1;
        return;
    }
#pragma omp parallel for num_threads(im->threads) schedule(static)
    for (ptrdiff_t r = 0; r < im->nrow; r++)
        if (im->row_used[r])
            memset(slab + r * im->gs, 0, (size_t)im->rowlen * sizeof *slab);
}

ct_code CT_IMP(image)(imp *im, int psf, double *image, ct_err *err)
{
    ct_code rc = CT_OK;
    if (!im->loaded)
        rc = ct_fail(err, CT_ESTATE, "image: no visibilities loaded");
    else if (im->rank == 0 && !image)
        rc = ct_fail(err, CT_EINVAL, "image: NULL output on rank 0");
    const size_t np = (size_t)im->nxo * im->ny;
    /* The pass's buffers live as long as the imager: fresh pages each pass
     * would cost the kernel's zeroing of them (a tenth of a pass, measured). */
    if (rc == CT_OK && !im->acc) {
        im->acc = malloc((np + 1) * sizeof *im->acc);
        /* the running screens of a pass over several ranks' transposes */
        im->scr = im->use_w && im->size > 1 ? malloc((np + 1) * sizeof *im->scr) : NULL;
    }
    if (rc == CT_OK && (!im->acc || (im->use_w && im->size > 1 && !im->scr)))
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the image's columns");
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK)
        return rc;
    double *acc = im->acc;
    double complex *scr = im->scr;
    zero_parallel(im, acc, np * sizeof *acc);
    im->st.grid_passes++;
    /* Each pixel's phase screen exp(-2 pi i w_j (n - 1 - mid)), from the
     * first plane on by one multiplication per plane. */
#pragma omp parallel for num_threads(im->threads) schedule(static)
    for (size_t p = 0; p < (scr ? np : 0); p++)
        scr[p] = im->scr0[p];
    for (long j0 = im->plane_lo; j0 <= im->plane_hi; j0 += im->group) {
        long j1 = j0 + im->group - 1 < im->plane_hi ? j0 + im->group - 1 : im->plane_hi;
        double t0 = MPI_Wtime();
        for (long j = j0; j <= j1; j++)
            if (im->plane_any[j - im->plane_lo])
                zero_slab(im, (int)(j - j0));
        long b0, b1;
        group_buckets(im, j0, j1, &b0, &b1);
        const long ntx = tiles_along(im->gx);
        const size_t buf_len = 2 * (size_t)(j1 - j0 + 1) * TB_SIDE * TB_SIDE;
        int no_buf = 0;
        for (int ph = 0; ph < CT_TILE_PHASES && !no_buf; ph++) {
#pragma omp parallel num_threads(im->threads)
            {
                double *buf = calloc(buf_len, sizeof *buf);
                if (!buf) {
#pragma omp atomic write
                    no_buf = 1;
                }
#pragma omp for schedule(dynamic, 1)
                for (long k = im->phase_tile[ph]; k < im->phase_tile[ph + 1]; k++) {
                    if (!buf)
                        continue;
                    const long t = im->tile_id[k], gy0 = (t / ntx) * CT_TILE,
                               cx0 = (t % ntx) * CT_TILE;
                    tile_box box = {LONG_MAX, LONG_MIN, LONG_MAX, LONG_MIN, LONG_MAX, LONG_MIN};
                    /* A tile's runs are in bucket order. */
                    for (size_t r = im->tile_run[2 * k];
                         r < im->tile_run[2 * k + 1] && im->run_bucket[r] <= b1; r++)
                        if (im->run_bucket[r] >= b0)
                            grid_tile(im, psf, im->run_from[r], im->run_to[r], j0, j1, gy0, cx0,
                                      buf, &box);
                    if (box.p0 <= box.p1)
                        flush_tile(im, gy0, cx0, buf, &box);
                }
                free(buf);
            }
        }
        if (no_buf)
            rc = ct_fail(err, CT_ENOMEM, "out of memory for the gridding threads' tile buffers");
        im->st.t_grid += MPI_Wtime() - t0;
        /* Every rank stops at the same group: the FFTs below are collective. */
        if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK)
            return rc;
        if (im->size == 1) {
            for (long j = j0; j <= j1; j++)
                if (im->plane_any[j - im->plane_lo])
                    rows_fft(im, im->gslab[j - j0], im->row_fwd);
            if (columns_fused(im, j0, j1, acc))
                return ct_fail(err, CT_ENOMEM, "out of memory for the threads' column buffers");
        } else
            for (long j = j0; j <= j1; j++) {
                const int any = im->plane_any[j - im->plane_lo];
                if (any)
                    forward_fft(im, im->gslab[j - j0]);
                columns_to_image(im, any, acc, scr);
            }
    }
#pragma omp parallel for num_threads(im->threads) schedule(static)
    for (int i = 0; i < im->nxo; i++) {
        int x = im->xs[i];
        for (int y = 0; y < im->ny; y++) {
            size_t p = (size_t)i * im->ny + y;
            double c = im->corr_x[x] * (im->corr_y[y] / im->wsum);
            acc[p] = acc[p] * c * (im->use_w ? (double)im->corr_w[p] : 1.0);
        }
    }
    double t0 = MPI_Wtime();
    rc = gather_image(im, acc, image, err);
    im->st.t_comm += MPI_Wtime() - t0;
    return rc;
}

ct_code CT_IMP(set_model)(imp *im, const ct_clean_components *root, ct_err *err)
{
    ct_code rc = CT_OK;
    if (!im->loaded)
        rc = ct_fail(err, CT_ESTATE, "model: no visibilities loaded");
    else if (im->rank == 0 && !root)
        rc = ct_fail(err, CT_EINVAL, "model: NULL components on rank 0");
    long ncomp = im->rank == 0 && root ? (long)root->n : 0;
    MPI_Bcast(&ncomp, 1, MPI_LONG, 0, im->comm);
    double *comp = malloc(((size_t)ncomp * 3 + 1) * sizeof *comp);
    int *xpos = malloc(((size_t)im->nx + 1) * sizeof *xpos);
    long *want = malloc(((size_t)im->ext_n + 1) * sizeof *want);
    if (rc == CT_OK && (!comp || !xpos || !want))
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the model");
    for (long c = 0; rc == CT_OK && im->rank == 0 && c < ncomp; c++) {
        const ct_clean_component *cc = &root->items[c];
        if (cc->ix < 0 || cc->ix >= im->nx || cc->iy < 0 || cc->iy >= im->ny || !isfinite(cc->flux))
            rc = ct_fail(err, CT_EINVAL, "model: component %ld at (%d, %d) is outside the image", c,
                         cc->ix, cc->iy);
        comp[3 * c] = cc->ix;
        comp[3 * c + 1] = cc->iy;
        comp[3 * c + 2] = cc->flux;
    }
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK) {
        free(comp);
        free(xpos);
        free(want);
        return rc;
    }
    MPI_Bcast(comp, (int)(3 * ncomp), MPI_DOUBLE, 0, im->comm);
    /* What changed since the model last set, the same list on every rank:
     * the residual is updated in place by its prediction alone, so that no
     * copy of the loaded visibilities is kept (8 bytes a row, 0.46 GB at the
     * production geometry). CLEAN's lists grow at the end and change the
     * fluxes of pixels already in them (clean.h), so the change is per entry;
     * any other new list is the new model less the old. */
    long ndelta = 0;
    double *delta = malloc(((size_t)(ncomp + im->mprev_n) * 3 + 1) * sizeof *delta);
    if (!delta) {
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the model");
    } else {
        int grows = im->mprev_n <= ncomp;
        for (long c = 0; grows && c < im->mprev_n; c++)
            grows = comp[3 * c] == im->mprev[3 * c] && comp[3 * c + 1] == im->mprev[3 * c + 1];
        for (long c = 0; c < ncomp; c++) {
            const double d =
                grows && c < im->mprev_n ? comp[3 * c + 2] - im->mprev[3 * c + 2] : comp[3 * c + 2];
            if (d != 0) {
                delta[3 * ndelta] = comp[3 * c];
                delta[3 * ndelta + 1] = comp[3 * c + 1];
                delta[3 * ndelta++ + 2] = d;
            }
        }
        for (long c = 0; !grows && c < im->mprev_n; c++) {
            delta[3 * ndelta] = im->mprev[3 * c];
            delta[3 * ndelta + 1] = im->mprev[3 * c + 1];
            delta[3 * ndelta++ + 2] = -im->mprev[3 * c + 2];
        }
    }
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK) {
        free(comp);
        free(xpos);
        free(want);
        free(delta);
        return rc;
    }
    {
        /* From here on the components in play are the change. */
        double *t = comp;
        comp = delta;
        delta = t; /* the new model, kept as mprev once subtracted */
        const long nmodel = ncomp;
        ncomp = ndelta;
        ndelta = nmodel;
    }
    for (int x = 0; x < im->nx; x++)
        xpos[x] = -1;
    for (int i = 0; i < im->nxo; i++)
        xpos[im->xs[i]] = i;
    /* This rank's components by image column, each column's in their order
     * (column i's are cidx[cfrom[i] .. cfrom[i + 1])), and the columns that
     * hold one, in column order. */
    im->nmcol = 0;
    long *cfrom = calloc((size_t)im->nxo + 2, sizeof *cfrom);
    long *cidx = malloc(((size_t)ncomp + 1) * sizeof *cidx);
    if (!im->mcol && !(im->mcol = malloc(((size_t)im->nxo + 1) * sizeof *im->mcol)))
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the model's columns");
    if (!cfrom || !cidx)
        rc = ct_fail(err, CT_ENOMEM, "out of memory for the model's columns");
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK) {
        free(comp);
        free(xpos);
        free(want);
        free(cfrom);
        free(cidx);
        free(delta);
        return rc;
    }
    for (long c = 0; c < ncomp; c++)
        if (xpos[(int)comp[3 * c]] >= 0)
            cfrom[xpos[(int)comp[3 * c]] + 2]++;
    for (int i = 0; i < im->nxo; i++) {
        if (cfrom[i + 2] > 0)
            im->mcol[im->nmcol++] = i;
        cfrom[i + 2] += cfrom[i + 1];
    }
    for (long c = 0; c < ncomp; c++)
        if (xpos[(int)comp[3 * c]] >= 0)
            cidx[cfrom[xpos[(int)comp[3 * c]] + 1]++] = c;
    for (long t = 0; t < im->ext_n; t++)
        want[t] = mod_long(im->row0 + im->ext_lo + t, im->gy);
    for (long j0 = im->plane_lo; rc == CT_OK && ncomp > 0 && j0 <= im->plane_hi; j0 += im->group) {
        long j1 = j0 + im->group - 1 < im->plane_hi ? j0 + im->group - 1 : im->plane_hi;
        /* The group's planes of the model, transformed to the uv grid. */
        for (long j = j0; rc == CT_OK && j <= j1; j++) {
            if (!im->plane_any[j - im->plane_lo])
                continue;
            double wj = im->wmin + (double)j * im->dw;
            if (im->size == 1) {
                if (model_to_rows(im, im->gslab[j - j0], comp, cfrom, cidx, wj))
                    rc = ct_fail(err, CT_ENOMEM, "out of memory for the threads' column buffers");
                continue;
            }
            zero_parallel(im, im->tslab, (size_t)im->ncol * im->gy * sizeof(gcell));
            for (long c = 0; c < ncomp; c++) {
                const int x = (int)comp[3 * c], y = (int)comp[3 * c + 1], i = xpos[x];
                if (i < 0)
                    continue;
                const long col = mod_long(x - im->nx / 2, im->gx) - im->col0;
                im->tslab[col * im->gy + mod_long(y - im->ny / 2, im->gy)] +=
                    model_value(im, comp, c, i, wj);
            }
            backward_fft(im, im->gslab[j - j0]);
            im->gclean[j - j0] = 0;
            {
                double tc = MPI_Wtime();
                rc = ct_mpi_agree(im->comm,
                                  fetch_rows(im, im->gslab[j - j0], 2 * (size_t)im->gs,
                                             2 * (size_t)im->gs, sizeof(greal), GREAL_MPI,
                                             im->row_owner, (long)im->row0, want, (size_t)im->ext_n,
                                             im->gext[j - j0], err),
                                  err);
                im->st.t_comm += MPI_Wtime() - tc;
            }
        }
        if (rc != CT_OK)
            break;
        double td = MPI_Wtime();
        size_t from, to;
        group_rows(im, j0, j1, &from, &to);
        degrid_rows(im, im->vis, from, to, j0, j1);
        im->st.t_degrid += MPI_Wtime() - td;
    }
    if ((rc = ct_mpi_agree(im->comm, rc, err)) != CT_OK) {
        /* Half a change subtracted: the residual is neither model's. */
        im->loaded = 0;
        free(delta);
        char why[CT_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        ct_fail(err, rc, "%s (the residual is lost: load the rows again)", why);
    } else {
        free(im->mprev);
        im->mprev = delta;
        im->mprev_n = ndelta;
    }
    free(comp);
    free(xpos);
    free(want);
    free(cfrom);
    free(cidx);
    return rc;
}
