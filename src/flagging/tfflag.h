/*
 * tfflag.h -- interference in one time-frequency plane: the detector that flagger.h runs
 * on every cross-correlation baseline and polarization.
 *
 * Owns: the background, the noise, SumThreshold and the scale-invariant rank (SIR)
 * dilation over one plane of nt integrations by nf channels (row-major: [t][f]), and the
 * scratch they need. Knows nothing of files, antennas or ranks.
 *
 * The method (docs/flagging.md has the reasons and the figures):
 *  - Background: per integration, the visibilities smoothed along frequency by a
 *    normalized convolution over the unflagged samples (three boxes of 2 h + 1 channels, a
 *    near-Gaussian of sigma sqrt(((2h+1)^2 - 1) / 4) channels). Complex, so that
 *    interference of any phase stands out against the sky, whose visibilities vary smoothly
 *    with frequency but not with time (DSA-110's drift scan turns a long baseline's fringe
 *    by tens of radians in one integration).
 *  - Noise: per block of 8 channels, the median of |R|^2 (R the residual) over its
 *    unflagged samples, divided by 2 ln 2 (the median of |n|^2 for complex Gaussian noise
 *    of variance sigma^2 per part is 2 sigma^2 ln 2): sigma_f^2, robust to what is still
 *    unflagged and following the bandpass; made in the first round and the last.
 *  - The statistic: z = |R|^2 / (2 sigma_f^2) - 1, zero mean and unit variance for noise
 *    (an exponential less its mean), of any interference phase.
 *  - SumThreshold (Offringa et al. 2010): for window lengths M = 1, 2, 4, .. along
 *    frequency (to max_window_chan) and along time (to max_window_time), a window of M
 *    samples whose sum exceeds M chi_M, chi_M = chi_1 / rho^log2(M), is flagged; samples
 *    flagged before count at chi_M, so that they neither make nor hide a detection. The
 *    flags of each M are applied before the next.
 *  - Rounds: the background and the noise are made again without what the rounds before
 *    flagged, chi_1 falling from 2 x to 1 x the asked threshold (AOFlagger's default
 *    strategy does the same with its sensitivity).
 *  - SIR (Offringa et al. 2012) with eta: a sample is flagged when some interval along time
 *    or along frequency holding it is flagged for more than 1 - eta of its length.
 */
#ifndef CONTIMG_TFFLAG_H
#define CONTIMG_TFFLAG_H

#include "error.h"

#include <complex.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ct_tfflag_opts {
    double threshold;    /* chi_1 on z for one sample (default 10: |R| > 4.7 sigma) */
    double rho;          /* the threshold falls by rho per doubling of the window (1.5) */
    int max_window_chan; /* longest SumThreshold window along frequency (32) */
    int max_window_time; /* and along time (16) */
    int rounds;          /* background / threshold rounds (2) */
    int background_half; /* h: the background's boxes are 2 h + 1 channels (3: sigma 3.5) */
    double eta;          /* SIR's eta (0.2); 0: no dilation */
} ct_tfflag_opts;

void ct_tfflag_opts_default(ct_tfflag_opts *o);
/* CT_EINVAL for values outside their sense (threshold > 0, rho >= 1, windows >= 1,
 * rounds >= 1, background_half >= 1, 0 <= eta < 1). */
ct_code ct_tfflag_opts_check(const ct_tfflag_opts *o, ct_err *err);

/* Scratch for planes of up to nt x nf; one per thread. */
typedef struct ct_tfflag_work ct_tfflag_work;
ct_code ct_tfflag_work_create(int nt, int nf, ct_tfflag_work **out, ct_err *err);
void ct_tfflag_work_destroy(ct_tfflag_work *w);

/*
 * Flags one plane: vis[t * nf + f], mask[t * nf + f] nonzero where the sample is flagged
 * already (or unusable); on return mask holds those and what was found (1). The samples
 * flagged on entry are never read. Deterministic: the same plane gives the same flags.
 */
void ct_tfflag_plane(ct_tfflag_work *w, const ct_tfflag_opts *o, int nt, int nf,
                     const float complex *vis, uint8_t *mask);

/* The two steps on their own (tests): SumThreshold of z over the plane at chi_1 (mask as
 * above, the new flags OR-ed in), and SIR along both axes. */
void ct_tfflag_sumthreshold(ct_tfflag_work *w, const ct_tfflag_opts *o, int nt, int nf,
                            const float *z, double chi1, uint8_t *mask);
void ct_tfflag_sir(ct_tfflag_work *w, int nt, int nf, double eta, uint8_t *mask);

#endif
