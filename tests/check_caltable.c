/*
 * check_caltable.c -- a caltable against the gains the simulator applied
 * (simulate.h: ct_sim_gain per antenna and feed, ct_sim_delay_ns), phases
 * referred to the table's reference antenna as the solver refers them.
 *
 *   check_caltable CALTABLE GAINS_SEED MAX_AMP_ERR MAX_PHASE_DEG MIN_ANTENNAS MAX_DELAY_NS
 *                  [GAINS_DRIFT]
 *
 * The bandpass x gain the application uses (ct_caltable_gain_at) against the
 * simulator's gains at each interval's time; with a GAINS_DRIFT
 * (ct_sim_gain_drift; default 0, constant gains) at every integration of the
 * calibrator observation instead, against the gains at that moment. Prints
 * the largest amplitude (relative), phase (degrees) and delay (ns) errors over
 * the unflagged solutions; exits 0 when all are within the bounds
 * and at least MIN_ANTENNAS antennas have solutions, 1 otherwise, 2 on misuse.
 */
#define _GNU_SOURCE
#include "calibration.h"
#include "simulate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc < 7)
        return 2;
    const unsigned long long seed = strtoull(argv[2], NULL, 10);
    const double max_amp = atof(argv[3]), max_deg = atof(argv[4]);
    const int min_ants = atoi(argv[5]);
    const double max_delay = atof(argv[6]), drift = argc > 7 ? atof(argv[7]) : 0;
    ct_caltable t;
    ct_err err;
    if (ct_caltable_read(argv[1], &t, &err) != CT_OK) {
        fprintf(stderr, "check_caltable: %s\n", err.msg);
        return 2;
    }
    /* The reference: the table's, or the first antenna with a solution. */
    int ref = -1;
    for (int a = 0; a < t.nant && ref < 0; a++)
        if ((t.refant < 0 || a == t.refant) && !t.bp_flag[(size_t)a * CT_CAL_NFEEDS])
            ref = a;
    double worst_amp = 0, worst_deg = 0, worst_delay = 0;
    int ants = 0;
    size_t n = 0;
    for (int a = 0; a < t.nant; a++) {
        int any = 0;
        /* The moments: each interval's centre, or with drift every integration. */
        const double step = CT_INTEGRATION_SEC / 86400.0;
        const int nm = drift != 0 ? (int)((t.t_end_jd - t.t_start_jd) / step + 0.5) : t.ntime;
        for (int m = 0; m < nm; m++)
            for (int c = 0; c < t.nchan; c++)
                for (int p = 0; p < CT_CAL_NFEEDS; p++) {
                    const double jd = drift != 0 ? t.t_start_jd + (m + 0.5) * step : t.time_jd[m];
                    const size_t k = ((size_t)c * t.nant + a) * CT_CAL_NFEEDS + p;
                    const double complex gain = ct_caltable_gain_at(&t, a, p, jd);
                    if (t.bp_flag[k] || gain == 0)
                        continue;
                    const double complex truth = ct_sim_gain(seed, a, p, t.freq_hz[c]) *
                                                 ct_sim_gain_drift(seed, drift, a, p, jd),
                                         rtruth = ct_sim_gain(seed, ref, p, t.freq_hz[c]) *
                                                  ct_sim_gain_drift(seed, drift, ref, p, jd);
                    const double complex want = truth * conj(rtruth) / cabs(rtruth);
                    const double complex got = t.bandpass[k] * gain;
                    worst_amp = fmax(worst_amp, fabs(cabs(got) / cabs(want) - 1));
                    worst_deg = fmax(worst_deg, fabs(carg(got * conj(want))) * 180 / M_PI);
                    any = 1;
                    n++;
                }
        ants += any;
        for (int p = 0; any && p < CT_CAL_NFEEDS; p++) {
            const double want = ct_sim_delay_ns(seed, a, p) - ct_sim_delay_ns(seed, ref, p),
                         got = t.delay_ns[(size_t)a * CT_CAL_NFEEDS + p];
            worst_delay = isfinite(got) ? fmax(worst_delay, fabs(got - want)) : INFINITY;
        }
    }
    printf("%s: %zu solutions of %d antennas (reference %d): amplitude within %.3g %%, phase "
           "within %.3g deg, delay within %.3g ns\n",
           argv[1], n, ants, ref, 100 * worst_amp, worst_deg, worst_delay);
    ct_caltable_free(&t);
    return worst_amp <= max_amp && worst_deg <= max_deg && worst_delay <= max_delay &&
                   ants >= min_ants
               ? 0
               : 1;
}
