/*
 * flagger.h -- interference flags for one UVH5 observation, across the ranks of an MPI
 * communicator, and the QA of them.
 *
 * Owns: the inputs judged from the autocorrelations (dead or hot antennas, whole or per
 * subband), the interference found in each cross-correlation baseline's time-frequency
 * planes (tfflag.h), the copy of the file with those flags added (the data and nsamples
 * untouched, bit for bit; written atomically), and the flagged fractions per antenna,
 * subband and integration with the gate on the whole. Does not own: the detector's
 * arithmetic (tfflag.h), calibration, imaging, the engine's stage.
 *
 * Inputs. Per antenna and parallel-hand polarization, the median autocorrelation power
 * over the unflagged samples. An antenna is dead when that is 0 or when every one of its
 * unflagged cross-correlation samples is exactly zero; hot or cold when its log power is
 * more than antenna_sigma robust deviations (1.4826 MAD over the array) and a factor
 * antenna_factor away from the array's median. The same per subband against the
 * antenna's own median over its subbands. A bad input's baselines (autos included) are
 * flagged, in the subband where only that is bad. Subbands: the file's channels in
 * CT_SUBBANDS equal blocks where they divide so (a combined observation), else one.
 *
 * Planes. Per cross-correlation baseline, each parallel-hand polarization (XX, YY; RR,
 * LL) is a plane of Ntimes x Nfreqs: the file's flags and the samples that are exactly
 * zero or not finite are its flags on entry; tfflag finds the rest. A sample flagged in
 * either plane is flagged in every polarization of the output.
 *
 * Bursts. A broadband signal of one phase across the band is smooth along frequency and
 * each plane's background takes it in; per integration and block of 8 channels, the
 * mean power of the unflagged cross-correlation samples over the whole array is compared
 * with its neighbours in time, and a step of more than burst_sigma times its spread is
 * flagged on every baseline (flagger.c, find_bursts).
 *
 * Ranks: the cross-correlation baselines are dealt round-robin over the communicator;
 * each rank reads the file once and keeps its own baselines' planes (Ntimes x Nfreqs x
 * (8 bytes a polarization + 1) each); the flags are OR-ed over the ranks and rank 0
 * writes the copy (ct_uvh5_copy_reflag: the kernel copies the bytes, then the flags are
 * rewritten). A baseline's flags depend on its data and the antennas' alone, the burst
 * search's sums are exact: the output is the same, byte for byte, on any number of
 * ranks.
 *
 * Errors: the reader's (CT_ENOTFOUND, CT_EIO, corrupt input), CT_EINVAL for a file whose
 * baseline-times are not each baseline once per time or with no parallel hand, and the
 * gate: more than max_fraction of the cross-correlation samples flagged afterwards is
 * CT_EINVAL of category CT_CAT_PERMANENT ("qa gate: ..."), with nothing written and the
 * result's QA filled in.
 */
#ifndef CONTIMG_FLAGGER_H
#define CONTIMG_FLAGGER_H

#include "error.h"
#include "tfflag.h"

#include <mpi.h>
#include <stddef.h>

typedef struct ct_flag_opts {
    ct_tfflag_opts plane;  /* the detector */
    double antenna_sigma;  /* robust deviations of log power for a hot or cold input (5) */
    double antenna_factor; /* and at least this factor from the median (3) */
    double max_fraction;   /* the gate: flagged fraction allowed afterwards (0.5) */
    double burst_sigma;    /* the array-wide burst search's threshold (5; 0: off) */
    int threads;           /* per rank; 0: the node's cores shared among its ranks */
} ct_flag_opts;

void ct_flag_opts_default(ct_flag_opts *o);
ct_code ct_flag_opts_check(const ct_flag_opts *o, ct_err *err);

typedef struct ct_flag_result {
    size_t n_samples;      /* cross-correlation baseline-time-channels */
    size_t n_flagged_in;   /* of them flagged in every polarization in the input */
    size_t n_flagged;      /* flagged afterwards (the input's and what was found) */
    double fraction;       /* n_flagged / n_samples */
    size_t n_burst_cells;  /* (integration, 8-channel block) cells flagged as bursts */
    int gate_passed;       /* fraction <= max_fraction */
    int nant;              /* antennas with data, by number: */
    int *ant_number;       /* [nant] */
    double *ant_fraction;  /* [nant] flagged fraction of its cross-correlations */
    char *ant_state;       /* [nant] 'o' ok, 'd' dead, 'h' hot or cold (whole antenna),
                              's' bad in some subbands */
    int nsub;              /* subbands */
    double *sub_fraction;  /* [nsub] */
    int ntime;             /* integrations, in time order */
    double *time_fraction; /* [ntime] */
    int ranks, threads;
    double t_read, t_detect, t_write, seconds; /* wall seconds (the slowest rank's total) */
} ct_flag_result;

void ct_flag_result_free(ct_flag_result *r);

/* An antenna state's name: "ok", "dead", "hot" or "subbands". */
const char *ct_flag_ant_state_name(char state);

/* Collective over comm: flags vispath into outpath (see above). The result is filled on
 * every rank (also when the gate fails); free it with ct_flag_result_free. */
ct_code ct_flag_observation(MPI_Comm comm, const char *vispath, const char *outpath,
                            const ct_flag_opts *o, ct_flag_result *res, ct_err *err);

#endif
