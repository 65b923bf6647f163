/*
 * calibration.h -- antenna gains solved on a calibrator observation, kept in a
 * self-describing caltable, and applied to another observation.
 *
 * The model. Each antenna a and feed p (X, Y) multiplies what it receives by a
 * complex gain J, so a correlation of feeds p of antenna i and q of antenna j
 * is V_ij = J_i,p V_true J_j,q^*. J is kept as two factors, J = B(channel) G(time):
 * the bandpass B per channel over the whole calibrator observation (it carries
 * the antenna's mean gain, its bandpass ripple and its delay), and the gain G per
 * solution interval, relative to B (near 1: what drifts within the observation).
 * The delay K of each antenna and feed is the slope of B's phase across the band,
 * fitted after the solve: a figure of merit and a check, not a third factor.
 *
 * The solver. For each channel and feed (B), then for each interval and feed (G,
 * on data divided by B), the sums over the observation's samples of w V conj(M),
 * w |M|^2 and w |V|^2 per baseline (M the sky model's visibility, w the sample's
 * weight) are formed once, and StefCal -- alternating least squares over the
 * antennas, each step the exact minimizer of the weighted residual for one
 * antenna with the others fixed, every second step averaged with the last --
 * iterates on those sums: its cost is independent of the number of samples, and
 * it needs neither derivatives nor a linear solve (why not Levenberg-Marquardt:
 * the same answer for diagonal gains at a fraction of the work;
 * docs/calibration.md). Phases are referred to the reference antenna. A
 * solution's SNR is |g| over its standard error, from the fit's residual and the
 * model power the antenna sees; below min_snr, or with no data, it is flagged.
 *
 * The solve runs on an MPI communicator, its channels dealt to the ranks (below).
 */
#ifndef CONTIMG_CALIBRATION_H
#define CONTIMG_CALIBRATION_H

#include "error.h"
#include "sky.h"

#include <complex.h>
#include <jansson.h>
#include <mpi.h>
#include <stddef.h>

/* The feeds a caltable holds: X and Y (AIPS polarizations -5 XX, -6 YY). */
#define CT_CAL_NFEEDS 2

typedef struct ct_cal_opts {
    const ct_source *model; /* the calibrator field: ICRS points, fluxes at 1.4 GHz */
    size_t n_model;
    int refant;          /* antenna number of the phase reference; -1: the first with data */
    double solint_sec;   /* G's interval; 0: no G (the bandpass alone) */
    double min_snr;      /* solutions below it are flagged (3) */
    int max_iter;        /* StefCal iterations at most (300) */
    double tol;          /* convergence: largest relative change of a gain (1e-10) */
    double reject_sigma; /* baselines whose residual is this many robust sigma above the
                          * median are left out (6); 0: none */
} ct_cal_opts;

void ct_cal_opts_default(ct_cal_opts *o);

/* Solutions, as solved or as read back. Arrays are row-major, [.][antenna][feed];
 * antennas are indexed by antenna number (0..nant-1). */
typedef struct ct_caltable {
    int nant, nchan, ntime;
    double *freq_hz;          /* [nchan] */
    double complex *bandpass; /* [nchan][nant][feed] */
    unsigned char *bp_flag;   /* [nchan][nant][feed]: 1 = no usable solution */
    double *bp_snr;           /* [nchan][nant][feed] */
    double *time_jd;          /* [ntime]: the mean time of each G interval's samples */
    double complex *gain;     /* [ntime][nant][feed]; ntime 1 of unit gains without G */
    unsigned char *g_flag;    /* [ntime][nant][feed] */
    double *delay_ns;         /* [nant][feed]: B's phase slope (NaN when too few channels) */
    int refant;
    double solint_sec;
    double t_start_jd, t_end_jd; /* the calibrator observation */
    double rms_jy;               /* the bandpass fit's residual per unit weight */
    int iterations;              /* the most StefCal took for one solution */
    long rejected, g_rejected;   /* baselines left out as outliers: of B's solutions, of G's */
    char source[96];             /* a label: the file's object name, or "model" */
} ct_caltable;

void ct_caltable_free(ct_caltable *t);

/* Allocates the arrays of a table of nchan channels, nant antennas and ntime
 * intervals (t's other fields untouched; contents undefined). CT_ENOMEM with
 * nothing left allocated when one cannot be had. */
ct_code ct_caltable_alloc(ct_caltable *t, int nchan, int nant, int ntime, ct_err *err);

/* Solves B (and G with a solint) on the calibrator observation vispath (UVH5)
 * against o->model, collectively on comm: the channels are dealt to the ranks
 * in contiguous blocks, each rank reads the file and solves B on its own, and
 * rank 0 solves G on every rank's sums; every rank returns the whole table
 * (B the same bits on any number of ranks) or the same error. CT_EINVAL for
 * bad options or a file without XX and YY, "corrupt input" (category) for
 * damaged data, "no data" when nothing usable. */
ct_code ct_cal_solve(MPI_Comm comm, const char *vispath, const ct_cal_opts *o, ct_caltable *out,
                     ct_err *err);

/* The caltable as HDF5 (docs/calibration.md has the layout; h5py reads it),
 * written under a temporary name and renamed onto path. */
ct_code ct_caltable_write(const char *path, const ct_caltable *t, ct_err *err);
/* Reads one back; CT_ENOTFOUND when nothing is at path, corrupt input when it is
 * not a caltable of this format. */
ct_code ct_caltable_read(const char *path, ct_caltable *t, ct_err *err);

/* A Julian date (UTC) as "YYYY-MM-DDTHH:MM:SS.sssZ". */
void ct_cal_time_iso(double jd, char *iso, size_t size);

/* The middle of the observation vispath (UVH5: halfway between its first and
 * last integration), as ct_cal_time_iso writes it: the time the registry's
 * fallback chain is asked about. */
ct_code ct_cal_obs_middle_iso(const char *vispath, char *iso, size_t size, ct_err *err);

/* The caltable's row in the registry (products.caltables, sql/0004_caltables.sql):
 * path (give it absolute), group_id (the second its calibrator observation began,
 * "YYYY-MM-DDTHH:MM:SS"), kind ("bandpass", or "bandpass+gain" with intervals),
 * source, obs_start and obs_end (ISO), valid_until (obs_end + valid_hours) and QA
 * (antennas solved, flagged fraction, fit rms, iterations). NULL when out of memory. */
json_t *ct_caltable_registry_row(const ct_caltable *t, const char *path, double valid_hours);

/* The calibrator catalogue: bright flux-density standards in DSA-110's sky with
 * their spectra (Perley & Butler 2017; calibrators.c lists them). */
typedef struct ct_calibrator {
    const char *name;
    double ra_deg, dec_deg; /* J2000 / ICRS */
    int ncoef;              /* log10 S[Jy] = sum_k coef[k] (log10 nu[GHz])^k */
    double coef[6];
} ct_calibrator;

size_t ct_calibrator_count(void);
const ct_calibrator *ct_calibrator_at(size_t i); /* NULL past the end */
/* By name, ignoring case ("3C147"); NULL when not in the catalogue. */
const ct_calibrator *ct_calibrator_find(const char *name);
/* Its flux density (Jy) at freq_hz. */
double ct_calibrator_flux(const ct_calibrator *c, double freq_hz);
/* As a model component: its position, its flux at 1.4 GHz, and the slope of
 * its spectrum there as the spectral index. */
void ct_calibrator_source(const ct_calibrator *c, ct_source *out);
/* The catalogue source whose transit the observation vispath (UVH5) is: the
 * nearest to where the dishes point at mid-observation within max_sep_deg, in
 * *out with its separation (*out NULL when none is that close). */
ct_code ct_calibrator_in_field(const char *vispath, double max_sep_deg, const ct_calibrator **out,
                               double *sep_deg, ct_err *err);

typedef struct ct_cal_apply_result {
    size_t n_samples;        /* correlations written */
    size_t n_flagged_by_cal; /* newly flagged: their antenna's solution was flagged */
    double seconds;
} ct_cal_apply_result;

/* G of antenna ant and feed at Julian date jd, as the application uses it: 0
 * when the interval nearest in time is flagged; else interpolated linearly in
 * amplitude and phase between that interval and its neighbour on jd's side,
 * extrapolated from the two end intervals within the calibrator observation's
 * span, the nearest alone where the other is flagged or beyond the span. 1 for
 * a table without G. */
double _Complex ct_caltable_gain_at(const ct_caltable *t, int ant, int feed, double jd);

/* Writes outpath (UVH5, the same header and layout as vispath, atomically):
 * each correlation divided by J_i,p conj(J_j,q), J = B ct_caltable_gain_at,
 * its nsamples multiplied by |J_i,p J_j,q|^2 (its noise weight), and flagged
 * where a solution it needs is flagged. The observation's channels must be the
 * caltable's (to 1 kHz); CT_EINVAL otherwise. Collective on comm: blocks of
 * baseline-times dealt round-robin to the ranks, written through parallel HDF5
 * (the memo 1.x layout, the same bytes on any number of ranks); every rank
 * returns the same code and the totals. */
ct_code ct_cal_apply(MPI_Comm comm, const char *vispath, const ct_caltable *t, const char *outpath,
                     ct_cal_apply_result *res, ct_err *err);

#endif
