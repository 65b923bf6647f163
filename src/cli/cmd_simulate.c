/* cmd_simulate.c -- `contimg simulate`: a DSA-110 observation on disk. */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "cron.h"
#include "fsutil.h"
#include "simulate.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: contimg simulate --out DIR --start ISO_TIME --dec DEG [options]\n\n"
    "Writes one observation as the DSA-110 correlator does: 16 UVH5 subband files\n"
    "DIR/START_sbNN.hdf5 (each written as _incomplete and renamed when done), a\n"
    "drift scan fringe-stopped at the meridian at declination DEG.\n\n"
    "  --out DIR                 directory for the 16 files (created if missing)\n"
    "  --start ISO_TIME          UTC start, YYYY-MM-DDTHH:MM:SS\n"
    "  --dec DEG                 pointing declination (apparent), -90..90\n"
    "  --sources FILE            point sources, one per line: RA_DEG DEC_DEG FLUX_JY\n"
    "                            [SPECTRAL_INDEX] (ICRS; flux at 1.4 GHz; # comments).\n"
    "                            Default: one 10 Jy source at the phase centre at\n"
    "                            mid-observation.\n"
    "  --relative                the sources' first two columns are offsets EAST_DEG\n"
    "                            NORTH_DEG from the pointing at mid-observation\n"
    "                            (direction cosines l, m in degrees; the image centre)\n"
    "  --noise-jy SIGMA          thermal noise per real and imaginary part (default 0)\n"
    "  --sefd JY                 system noise power added to autocorrelations (5000)\n"
    "  --gains-seed N            per-antenna, per-feed complex gains, bandpass and delay\n"
    "                            (default none)\n"
    "  --gains-drift D           with --gains-seed: the gains drift in time, each feed's\n"
    "                            phase at up to +-D deg an hour, its amplitude by up to\n"
    "                            +-D/100 % (default 0: constant)\n"
    "  --rfi-seed N              inject interference (default none): narrowband\n"
    "                            transmitters in ~2 % of channels, one broadband burst,\n"
    "                            sparse spikes and one dead antenna, fixed by N\n"
    "  --rfi-jy S                the interference's strength scale (default 20 Jy)\n"
    "  --seed N                  noise seed (default 1)\n"
    "  --antennas N              antennas with data, 1..96 (default 96)\n"
    "  --channels-per-subband N  default 48\n"
    "  --times N                 integrations of 12.884902 s per file (default 24)\n"
    "  --flag-fraction F         flag this fraction of samples at random (default 0)\n"
    "  --uvw-float32             store uvw as float32, as the correlator does (default\n"
    "                            float64, which pyuvdata's checks require)";

/* Reads a sources file; *out is malloc'd. */
static int read_sources(const char *path, bool relative, ct_source **out, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return cli_usage_error("--sources: cannot open %s: %s", path, strerror(errno));
    size_t cap = 16, count = 0;
    ct_source *s = malloc(cap * sizeof *s);
    if (s == NULL) {
        fclose(f);
        return cli_usage_error("out of memory");
    }
    char line[1024];
    int lineno = 0, rc = -1;
    bool oom = false;
    while (rc < 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        double ra, dec, flux, alpha = 0;
        char extra[2];
        int got = sscanf(line, "%lf %lf %lf %lf %1s", &ra, &dec, &flux, &alpha, extra);
        if (got <= 0)
            continue; /* blank or comment */
        /* Offsets (--relative) are direction cosines in degrees: within +-57.3. */
        double ra_lo = relative ? -57.3 : 0, ra_hi = relative ? 57.3 : 360;
        if (got < 3 || got > 4 || !(ra >= ra_lo && ra < ra_hi) || !(dec >= -90 && dec <= 90) ||
            !isfinite(flux) || !isfinite(alpha)) {
            rc = cli_usage_error("--sources %s line %d: expected %s FLUX_JY [SPECTRAL_INDEX]", path,
                                 lineno,
                                 relative ? "EAST_DEG NORTH_DEG (-57.3..57.3)"
                                          : "RA_DEG (0..360) DEC_DEG (-90..90)");
            break;
        }
        if (count == cap) {
            ct_source *grown = realloc(s, 2 * cap * sizeof *s);
            if (grown == NULL) {
                oom = true;
                break;
            }
            s = grown;
            cap *= 2;
        }
        s[count++] = (ct_source){ra * M_PI / 180, dec * M_PI / 180, flux, alpha};
    }
    fclose(f);
    if (rc >= 0 || oom) {
        free(s);
        return rc >= 0 ? rc : cli_usage_error("out of memory");
    }
    *out = s;
    *n = count;
    return -1;
}

int cmd_simulate(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"start", required_argument, NULL, 's'},
                                         {"dec", required_argument, NULL, 'd'},
                                         {"sources", required_argument, NULL, 'S'},
                                         {"noise-jy", required_argument, NULL, 'n'},
                                         {"sefd", required_argument, NULL, 'E'},
                                         {"gains-seed", required_argument, NULL, 'g'},
                                         {"gains-drift", required_argument, NULL, 'D'},
                                         {"rfi-seed", required_argument, NULL, 'I'},
                                         {"rfi-jy", required_argument, NULL, 'J'},
                                         {"seed", required_argument, NULL, 'r'},
                                         {"antennas", required_argument, NULL, 'a'},
                                         {"channels-per-subband", required_argument, NULL, 'c'},
                                         {"times", required_argument, NULL, 't'},
                                         {"uvw-float32", no_argument, NULL, 'F'},
                                         {"flag-fraction", required_argument, NULL, 'f'},
                                         {"relative", no_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    ct_sim_config sim = ct_sim_defaults();
    const char *sources_path = NULL;
    bool have_start = false, relative = false;
    long v;
    double d;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': printf("%s\n", usage); return EXIT_OK;
        case 'o': sim.out_dir = optarg; break;
        case 's':
            if (!ct_time_parse_utc(optarg, &sim.start_unix))
                return cli_usage_error("--start must be YYYY-MM-DDTHH:MM:SS (UTC), got '%s'",
                                       optarg);
            have_start = true;
            break;
        case 'd':
            if (!cli_parse_double(optarg, -90, 90, &d))
                return cli_usage_error("--dec must be -90..90 degrees, got '%s'", optarg);
            sim.dec_rad = d * M_PI / 180;
            break;
        case 'S': sources_path = optarg; break;
        case 'n':
            if (!cli_parse_double(optarg, 0, 1e9, &sim.noise_jy))
                return cli_usage_error("--noise-jy must be >= 0, got '%s'", optarg);
            break;
        case 'E':
            if (!cli_parse_double(optarg, 0, 1e9, &sim.sefd_jy))
                return cli_usage_error("--sefd must be >= 0, got '%s'", optarg);
            break;
        case 'g':
        case 'r':
            if (!cli_parse_long(optarg, 0, 0x7fffffffffffffffL, &v))
                return cli_usage_error("--%s must be a whole number >= 0, got '%s'",
                                       ch == 'g' ? "gains-seed" : "seed", optarg);
            *(ch == 'g' ? &sim.gains_seed : &sim.seed) = (uint64_t)v;
            break;
        case 'I':
            if (!cli_parse_long(optarg, 0, 0x7fffffffffffffffL, &v))
                return cli_usage_error("--rfi-seed must be a whole number >= 0, got '%s'", optarg);
            sim.rfi_seed = (uint64_t)v;
            break;
        case 'J':
            if (!cli_parse_double(optarg, 0, 1e9, &sim.rfi_jy))
                return cli_usage_error("--rfi-jy must be >= 0, got '%s'", optarg);
            break;
        case 'D':
            if (!cli_parse_double(optarg, 0, 3600, &sim.gains_drift))
                return cli_usage_error("--gains-drift must be 0..3600 degrees an hour, got '%s'",
                                       optarg);
            break;
        case 'a':
        case 'c':
        case 't':
            if (!cli_parse_long(optarg, 1, ch == 'a' ? 96 : ch == 'c' ? 4096 : 10000, &v))
                return cli_usage_error("--%s out of range, got '%s'",
                                       ch == 'a'   ? "antennas (1..96)"
                                       : ch == 'c' ? "channels-per-subband (1..4096)"
                                                   : "times (1..10000)",
                                       optarg);
            *(ch == 'a' ? &sim.n_antennas : ch == 'c' ? &sim.n_channels : &sim.n_times) = (int)v;
            break;
        case 'F': sim.uvw_float32 = true; break;
        case 'R': relative = true; break;
        case 'f':
            if (!cli_parse_double(optarg, 0, 1, &sim.flag_fraction))
                return cli_usage_error("--flag-fraction must be 0..1, got '%s'", optarg);
            break;
        case ':': return cli_usage_error("simulate: option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("simulate: unknown option '%s'; see --help", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("simulate: unexpected argument '%s'", argv[optind]);
    if (sim.gains_drift > 0 && sim.gains_seed == 0)
        return cli_usage_error("simulate: --gains-drift needs --gains-seed");
    if (sim.out_dir == NULL || !have_start || isnan(sim.dec_rad))
        return cli_usage_error("simulate: --out, --start and --dec are required");
    ct_source *sources = NULL, centre = {0, 0, 0, 0};
    size_t n_sources = 0;
    ct_err err;
    /* The pointing at mid-observation: the default source's place, and the
     * origin of --relative offsets. */
    ct_site site;
    ct_dsa110_site(&site);
    double mid = sim.start_unix + 0.5 * sim.n_times * CT_INTEGRATION_SEC;
    centre = (ct_source){0, 0, 10.0, 0.0};
    if (ct_hadec_to_icrs(0, sim.dec_rad, 2440587.5 + mid / 86400.0, 0, &site, &centre.ra_rad,
                         &centre.dec_rad, &err) != CT_OK)
        return cli_report(&err);
    if (sources_path != NULL) {
        int rc = read_sources(sources_path, relative, &sources, &n_sources);
        if (rc >= 0)
            return rc;
        for (size_t i = 0; relative && i < n_sources; i++) {
            /* The SIN projection inverted: (l, m) about the centre to ICRS. */
            double l = sources[i].ra_rad, m = sources[i].dec_rad, r2 = l * l + m * m;
            if (r2 >= 1) {
                free(sources);
                return cli_usage_error("--relative: offset (%g, %g) deg is beyond the horizon",
                                       l * 180 / M_PI, m * 180 / M_PI);
            }
            double n = sqrt(1 - r2), d0 = centre.dec_rad;
            sources[i].dec_rad = asin(m * cos(d0) + n * sin(d0));
            sources[i].ra_rad = centre.ra_rad + atan2(l, n * cos(d0) - m * sin(d0));
        }
    } else if (relative) {
        return cli_usage_error("simulate: --relative needs --sources");
    }
    sim.sources = sources_path ? sources : &centre;
    sim.n_sources = sources_path ? n_sources : 1;
    char *paths[16] = {0};
    ct_code rc = ct_mkdir_p(sim.out_dir, 0755, &err);
    if (rc == CT_OK)
        rc = ct_simulate(&sim, paths, &err);
    free(sources);
    if (rc != CT_OK)
        return cli_report(&err);
    for (int i = 0; i < 16; i++) {
        puts(paths[i]);
        free(paths[i]);
    }
    return EXIT_OK;
}
