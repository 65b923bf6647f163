/*
 * simulate.h -- a DSA-110 observation as the correlator would write it.
 *
 * Writes 16 UVH5 subband files, YYYY-MM-DDTHH:MM:SS_sbNN.hdf5, each first as
 * ..._incomplete.hdf5 and renamed when complete, as the correlator does.
 * The data: a drift scan fringe-stopped at the meridian (apparent hour angle
 * 0) at the given declination; visibilities of point sources (sky.h),
 * attenuated by the Airy beam of a 4.65 m dish; optional per-antenna complex
 * gains with a bandpass, and Gaussian thermal noise. Deterministic for a
 * seed: every random number is a function of (seed, subband, time,
 * baseline, channel, pol), not of the order work is done in.
 *
 * Frequencies: 16 subbands of nchan channels of 244.140625 kHz counting
 * down from 1498.75 MHz, sb00 highest; within a file channels ascend.
 */
#ifndef CONTIMG_SIMULATE_H
#define CONTIMG_SIMULATE_H

#include "error.h"
#include "sky.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CT_SB_CHANNEL_WIDTH_HZ 244140.625
#define CT_BAND_TOP_HZ         1498.75e6
#define CT_INTEGRATION_SEC     12.884902

typedef struct ct_sim_config {
    const char *out_dir;
    double start_unix; /* UTC start of the first integration (whole seconds name the files) */
    double dec_rad;    /* pointing declination (apparent, of date) */
    const ct_source *sources;
    size_t n_sources;
    double noise_jy;     /* sigma of the real and of the imaginary part; 0 = none */
    double sefd_jy;      /* added to autocorrelations (system noise power) */
    uint64_t seed;       /* noise */
    uint64_t gains_seed; /* 0 = unit gains; else per-antenna, per-feed gains (ct_sim_gain) */
    double gains_drift;  /* with gains_seed: their drift in time (ct_sim_gain_drift); 0 none */
    uint64_t rfi_seed;   /* 0 = no interference; else injected as ct_sim_rfi says */
    double rfi_jy;       /* the interference's strength scale (default 20 Jy) */
    int n_antennas;      /* with data, 1..96 (default 96) */
    int n_channels;      /* per subband (default 48) */
    int n_times;         /* integrations per file (default 24) */
    double dut1;         /* UT1 - UTC, seconds */
    /* Store uvw as float32, as the DSA-110 correlator does. Off by default:
     * pyuvdata's checks refuse float32 uvw, so files meant for it (and for
     * tools built on it) carry float64. */
    bool uvw_float32;
    /* Fraction of samples flagged at random (deterministic for the seed), as
     * RFI flagging would leave them; their data are kept. */
    double flag_fraction;
} ct_sim_config;

/* The production shape and no sources; the caller sets out_dir, start,
 * dec and sources. */
ct_sim_config ct_sim_defaults(void);

/* Writes the 16 files; paths_out (may be NULL) receives their final paths
 * (16 strings the caller frees). Nothing is left at a final path unless
 * that file is complete. */
ct_code ct_simulate(const ct_sim_config *cfg, char *paths_out[16], ct_err *err);

/* The complex gain the simulator applies to feed `feed` (0 X, 1 Y) of
 * antenna `ant` (station index) at channel frequency freq_hz for gains_seed
 * (1 when gains_seed is 0): amplitude 0.85-1.15, any phase, a 5 % ripple
 * across the band and the delay below, X and Y apart. */
double _Complex ct_sim_gain(uint64_t gains_seed, int ant, int feed, double freq_hz);
/* Its delay in ns (-3..3; 0 when gains_seed is 0): phase 2 pi tau (f - 1.4 GHz). */
double ct_sim_delay_ns(uint64_t gains_seed, int ant, int feed);
/* The factor by which that gain has drifted at Julian date jd (UTC), the same
 * at every frequency (1 when gains_seed or drift is 0): a phase turning at up
 * to +-drift degrees an hour, and an amplitude swinging by up to +-drift/100 %
 * with a period of two hours, each feed its own rate and phase. What a gain
 * solution per interval (G) exists to follow. */
double _Complex ct_sim_gain_drift(uint64_t gains_seed, double drift, int ant, int feed, double jd);

/* The station number of the antenna the interference model kills (-1 without
 * cfg->rfi_seed): one of the n_antennas with data, fixed by the seed. */
int ct_sim_rfi_dead_station(const ct_sim_config *cfg);

/* The interference the simulator injects with cfg->rfi_seed, for the sample of
 * subband sb, integration t, stations a1 <= a2, channel c of the subband and
 * polarization pol (0 XX, 1 YY), given dead (ct_sim_rfi_dead_station): true
 * where the sample carries some (its value in *add) or belongs to the dead
 * antenna (*is_dead set: the sample is zero) -- the truth mask a flagger is
 * measured against. What is injected, all fixed by the seed: persistent
 * narrowband transmitters in about 2 % of the band's channels (0.5-2 x rfi_jy,
 * every baseline and time, a phase per sample); one broadband burst (one
 * integration, every channel, 0.5 x rfi_jy, one phase per baseline and
 * polarization across the band: delay-free); sparse spikes (1e-3 of samples,
 * 0.2-1 x rfi_jy); the dead antenna. Autocorrelations get the power, real. */
bool ct_sim_rfi(const ct_sim_config *cfg, int dead, int sb, int t, int a1, int a2, int c, int pol,
                double _Complex *add, bool *is_dead);

#endif
