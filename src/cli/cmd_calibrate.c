/* cmd_calibrate.c -- `contimg calibrate solve|apply`: antenna gains from a
 * calibrator observation, and their application to another (calibration.h). */
#define _GNU_SOURCE
#include "calibration.h"
#include "cli_util.h"
#include "commands.h"
#include "fsutil.h"
#include "products.h"

#include <getopt.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char solve_usage[] =
    "usage: contimg calibrate solve VISFILE --out PREFIX\n"
    "                               (--model RA,DEC,FLUX_JY[,SPECTRAL_INDEX] [--model ...]\n"
    "                                | --calibrator NAME|auto)\n"
    "                               [--refant N] [--solint SECONDS] [--min-snr X]\n"
    "                               [--reject-sigma X]\n"
    "                               [--register [--valid-hours H]] [--json]\n\n"
    "Solves each antenna's complex gain per feed (X, Y) on the calibrator observation VISFILE\n"
    "(UVH5) against the model -- point sources at RA, DEC (ICRS degrees) with their flux at\n"
    "1.4 GHz and spectral index (default 0) -- by StefCal: the bandpass per channel over the\n"
    "whole observation, then, with --solint, the gain per interval relative to it; the delay\n"
    "per antenna is fitted to the bandpass phase. Writes PREFIX.cal.h5 (HDF5, atomically;\n"
    "docs/calibration.md). Solutions below --min-snr (default 3) are flagged. Under mpirun the\n"
    "channels are dealt over the ranks (the bandpass is the same on any number of them).\n\n"
    "  --calibrator   a catalogue calibrator by name (3C48, 3C138, 3C147, 3C196, 3C286,\n"
    "                 3C295: Perley & Butler 2017 spectra), or auto: the one whose transit\n"
    "                 VISFILE is (within CONTIMG_CALIBRATOR_RADIUS_DEG of the pointing)\n"
    "  --refant N     the phase reference antenna (default: the first with data)\n"
    "  --solint S     the gain interval in seconds (default 0: the bandpass alone)\n"
    "  --reject-sigma X  leave out of a solution the baselines whose residual lies more\n"
    "                 than X robust sigma above the median (default 6; 0: keep all)\n"
    "  --register     add the caltable to the registry (products.caltables), valid from the\n"
    "                 calibrator observation to --valid-hours after it (default 24)\n\n"
    "Exit 2 for bad options, corrupt input or no usable data; 4 for a missing file.";

static const char apply_usage[] =
    "usage: contimg calibrate apply VISFILE --cal PREFIX|auto --out CALIBRATED [--json]\n\n"
    "Writes CALIBRATED (UVH5, the same header and layout as VISFILE, atomically): every\n"
    "correlation divided by its antennas' gains, its weight (nsamples) scaled to match, and\n"
    "flagged where a solution it needs is flagged (under mpirun, its baseline-times dealt\n"
    "over the ranks). PREFIX names the caltable PREFIX.cal.h5\n"
    "(or give the .h5 path itself); `auto` asks the registry's fallback chain for the\n"
    "observation's mid-time (as `contimg calibrate find`) and says which rung chose it. The\n"
    "channels must be the caltable's.\n\n"
    "Exit 2 for bad options, corrupt input or channels that differ; 4 for a missing file or,\n"
    "with auto, no caltable at all; 3 when the database is unavailable.";

static const char find_usage[] =
    "usage: contimg calibrate find --time ISO_TIME [--stale-hours H] [--json]\n\n"
    "The caltable the registry's fallback chain gives an observation at ISO_TIME (UTC): one\n"
    "whose validity window holds it (rung active); else the calibrator observation nearest in\n"
    "time within --stale-hours (default CONTIMG_CALIBRATOR_STALENESS_HOURS, 6; rung nearest);\n"
    "else the newest before it, however old, with a warning on stderr (rung stale).\n\n"
    "Exit 4 when no caltable qualifies; 3 when the database is unavailable.";

/* PREFIX.cal.h5, or the path itself when it already names an .h5 file. */
static void table_path(const char *prefix, char *out, size_t size)
{
    const size_t n = strlen(prefix);
    if (n > 3 && strcmp(prefix + n - 3, ".h5") == 0)
        snprintf(out, size, "%s", prefix);
    else
        snprintf(out, size, "%s.cal.h5", prefix);
}

/* RA,DEC,FLUX[,SI] in degrees and Jy. */
static bool parse_model(const char *s, ct_source *out)
{
    double v[4] = {0, 0, 0, 0};
    int n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n >= 4 || !cli_parse_double(tok, -1e6, 1e6, &v[n]))
            return false;
        n++;
    }
    if (n < 3 || !(v[0] >= 0 && v[0] < 360) || !(fabs(v[1]) <= 90) || !(v[2] > 0))
        return false;
    out->ra_rad = v[0] * M_PI / 180.0;
    out->dec_rad = v[1] * M_PI / 180.0;
    out->flux_jy = v[2];
    out->spectral_index = v[3];
    return true;
}

/* The registry's row for a caltable just written: keyed by its absolute path,
 * the group its calibrator observation began, valid from that observation to
 * valid_hours after it. *out: the row as stored. */
static ct_code register_table(const ct_config *cfg, const char *path, const ct_caltable *t,
                              double valid_hours, json_t **out, ct_err *err)
{
    char abs[4200];
    cq_client *db = NULL;
    ct_code rc = ct_absolute_path(path, abs, sizeof abs, err);
    if (rc == CT_OK)
        rc = cli_connect(cfg, &db, err);
    json_t *row = ct_caltable_registry_row(t, abs, valid_hours);
    if (rc == CT_OK && !row)
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
    if (rc == CT_OK)
        rc = ct_products_register_caltable(db, row, out, err);
    json_decref(row);
    cq_disconnect(db);
    return rc;
}

/* The fallback chain's answer for iso into *found (JSON null: none; the
 * caller decrefs). A stale rung's warning goes to stderr. */
static ct_code find_for(const ct_config *cfg, const char *iso, double stale_hours, json_t **found,
                        ct_err *err)
{
    cq_client *db = NULL;
    ct_code rc = cli_connect(cfg, &db, err);
    if (rc == CT_OK)
        rc = ct_products_find_caltable(db, iso, stale_hours, found, err);
    cq_disconnect(db);
    const char *warning =
        rc == CT_OK ? json_string_value(json_object_get(*found, "warning")) : NULL;
    if (warning)
        fprintf(stderr, "contimg: warning: %s\n", warning);
    return rc;
}

static int solve(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"refant", required_argument, NULL, 'r'},
                                         {"solint", required_argument, NULL, 's'},
                                         {"min-snr", required_argument, NULL, 'n'},
                                         {"reject-sigma", required_argument, NULL, 'X'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"register", no_argument, NULL, 'R'},
                                         {"valid-hours", required_argument, NULL, 'V'},
                                         {"calibrator", required_argument, NULL, 'C'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    ct_cal_opts o;
    ct_cal_opts_default(&o);
    ct_source model[64];
    size_t n_model = 0;
    const char *prefix = NULL, *calibrator = NULL;
    bool json = false, reg = false;
    double valid_hours = 24;
    long v;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            if (rank == 0)
                printf("%s\n", solve_usage);
            return EXIT_OK;
        case 'o': prefix = optarg; break;
        case 'm':
            if (n_model >= sizeof model / sizeof model[0] || !parse_model(optarg, &model[n_model]))
                return cli_rank_usage_error(
                    rank,
                    "--model must be RA,DEC,FLUX_JY[,SPECTRAL_INDEX] (degrees, "
                    "RA 0..360, flux > 0; at most 64), got '%s'",
                    optarg);
            n_model++;
            break;
        case 'r':
            if (!cli_parse_long(optarg, 0, 100000, &v))
                return cli_rank_usage_error(rank, "--refant must be an antenna number, got '%s'",
                                            optarg);
            o.refant = (int)v;
            break;
        case 's':
            if (!cli_parse_double(optarg, 0, 1e6, &o.solint_sec))
                return cli_rank_usage_error(rank, "--solint must be 0..1e6 seconds, got '%s'",
                                            optarg);
            break;
        case 'n':
            if (!cli_parse_double(optarg, 0, 1e9, &o.min_snr))
                return cli_rank_usage_error(rank, "--min-snr must be >= 0, got '%s'", optarg);
            break;
        case 'X':
            if (!cli_parse_double(optarg, 0, 1e6, &o.reject_sigma))
                return cli_rank_usage_error(rank, "--reject-sigma must be >= 0, got '%s'", optarg);
            break;
        case 'j': json = true; break;
        case 'R': reg = true; break;
        case 'C': calibrator = optarg; break;
        case 'V':
            if (!cli_parse_double(optarg, 0, 1e6, &valid_hours))
                return cli_rank_usage_error(rank, "--valid-hours must be 0..1e6, got '%s'", optarg);
            break;
        case ':':
            return cli_rank_usage_error(rank, "calibrate solve: %s needs a value",
                                        argv[optind - 1]);
        default:
            return cli_rank_usage_error(rank, "calibrate solve: unknown option '%s'; see --help",
                                        argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_rank_usage_error(rank, "calibrate solve: give exactly one VISFILE; see --help");
    if (!prefix)
        return cli_rank_usage_error(rank, "calibrate solve: --out PREFIX is required");
    if ((n_model == 0) == (calibrator == NULL))
        return cli_rank_usage_error(
            rank, "calibrate solve: give the calibrator's --model RA,DEC,FLUX, or "
                  "--calibrator NAME|auto (one of them)");
    if (calibrator) {
        const ct_calibrator *cal = ct_calibrator_find(calibrator);
        double sep = 0;
        ct_err e;
        if (strcmp(calibrator, "auto") == 0) {
            if (ct_calibrator_in_field(argv[optind], cfg->calibrator_radius_deg, &cal, &sep, &e) !=
                CT_OK)
                return cli_rank_report(rank, &e);
            if (!cal)
                return cli_rank_usage_error(
                    rank,
                    "calibrate solve: no catalogue calibrator within %g deg "
                    "of the pointing of %s",
                    cfg->calibrator_radius_deg, argv[optind]);
        } else if (!cal)
            return cli_rank_usage_error(rank, "calibrate solve: %s is not in the catalogue",
                                        calibrator);
        ct_calibrator_source(cal, &model[0]);
        n_model = 1;
    }
    o.model = model;
    o.n_model = n_model;
    char path[4200];
    table_path(prefix, path, sizeof path);
    ct_caltable t;
    ct_err err;
    /* Every rank solves its channels; the table, the registry and the report
     * are rank 0's. */
    if (ct_cal_solve(MPI_COMM_WORLD, argv[optind], &o, &t, &err) != CT_OK)
        return cli_rank_report(rank, &err);
    if (rank != 0) {
        ct_caltable_free(&t);
        return EXIT_OK;
    }
    if (ct_caltable_write(path, &t, &err) != CT_OK) {
        ct_caltable_free(&t);
        return cli_report(&err);
    }
    json_t *registered = NULL;
    if (reg && register_table(cfg, path, &t, valid_hours, &registered, &err) != CT_OK) {
        ct_caltable_free(&t);
        return cli_report(&err);
    }
    size_t nbp = (size_t)t.nchan * (size_t)t.nant * CT_CAL_NFEEDS, flagged = 0, ants = 0;
    for (size_t k = 0; k < nbp; k++)
        flagged += t.bp_flag[k];
    for (int a = 0; a < t.nant; a++) {
        bool any = false;
        for (int c = 0; c < t.nchan && !any; c++)
            any = !t.bp_flag[((size_t)c * t.nant + a) * CT_CAL_NFEEDS];
        ants += any;
    }
    if (json) {
        json_t *delays = json_array();
        for (int a = 0; a < t.nant; a++)
            for (int p = 0; p < CT_CAL_NFEEDS; p++) {
                const double d = t.delay_ns[(size_t)a * CT_CAL_NFEEDS + p];
                json_array_append_new(delays, isfinite(d) ? json_real(d) : json_null());
            }
        json_t *res = json_pack(
            "{s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:I, s:I, s:f, s:i, s:I, s:I, s:o}", "caltable",
            path, "source", t.source, "antennas", (int)ants, "channels", t.nchan, "intervals",
            t.ntime, "refant", t.refant, "solint_sec", t.solint_sec, "solutions", (json_int_t)nbp,
            "flagged", (json_int_t)flagged, "rms_jy", t.rms_jy, "iterations", t.iterations,
            "rejected_baselines", (json_int_t)t.rejected, "gain_rejected_baselines",
            (json_int_t)t.g_rejected, "delay_ns", delays);
        if (registered)
            json_object_set(res, "registered", registered);
        cli_print_json(res);
    } else {
        printf("%s\n", path);
        printf("solved: %zu antennas x %d channels x 2 feeds (%zu of %zu flagged), %d interval(s); "
               "fit rms %.4g Jy, at most %d iterations; %ld baseline solutions left out as "
               "outliers\n",
               ants, t.nchan, flagged, nbp, t.ntime, t.rms_jy, t.iterations,
               t.rejected + t.g_rejected);
        if (registered)
            printf("registered: valid until %s\n",
                   json_string_value(json_object_get(registered, "valid_until")));
    }
    json_decref(registered);
    ct_caltable_free(&t);
    return EXIT_OK;
}

static int apply(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {{"cal", required_argument, NULL, 'c'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *cal = NULL, *out = NULL;
    bool json = false;
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            if (rank == 0)
                printf("%s\n", apply_usage);
            return EXIT_OK;
        case 'c': cal = optarg; break;
        case 'o': out = optarg; break;
        case 'j': json = true; break;
        case ':':
            return cli_rank_usage_error(rank, "calibrate apply: %s needs a value",
                                        argv[optind - 1]);
        default:
            return cli_rank_usage_error(rank, "calibrate apply: unknown option '%s'; see --help",
                                        argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_rank_usage_error(rank, "calibrate apply: give exactly one VISFILE; see --help");
    if (!cal || !out)
        return cli_rank_usage_error(
            rank, "calibrate apply: --cal PREFIX and --out CALIBRATED are required");
    if (strcmp(out, argv[optind]) == 0)
        return cli_rank_usage_error(rank, "calibrate apply: --out must not be the input");
    char path[4200];
    memset(path, 0, sizeof path);
    ct_err err;
    json_t *found = NULL;
    int code = EXIT_OK;
    /* Rank 0 asks the registry (one connection, not one a rank) and tells the rest. */
    if (rank == 0 && strcmp(cal, "auto") == 0) {
        /* The observation's middle, asked of the registry's fallback chain. */
        char iso[48];
        if (ct_cal_obs_middle_iso(argv[optind], iso, sizeof iso, &err) != CT_OK ||
            find_for(cfg, iso, cfg->calibrator_staleness_hours, &found, &err) != CT_OK)
            code = cli_report(&err);
        else if (json_is_null(found)) {
            ct_fail(&err, CT_ENOTFOUND, "no caltable for %s at %s: none registered in reach",
                    argv[optind], iso);
            code = cli_report(&err);
        } else
            snprintf(path, sizeof path, "%s", json_string_value(json_object_get(found, "path")));
    } else if (rank == 0)
        table_path(cal, path, sizeof path);
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(path, (int)sizeof path, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (code != EXIT_OK) {
        json_decref(found);
        return code;
    }
    /* Every rank reads the table (the same answer on each) and applies it to its
     * blocks; the report is rank 0's. */
    ct_caltable t;
    if (ct_caltable_read(path, &t, &err) != CT_OK) {
        json_decref(found);
        return cli_rank_report(rank, &err);
    }
    ct_cal_apply_result r;
    ct_code rc = ct_cal_apply(MPI_COMM_WORLD, argv[optind], &t, out, &r, &err);
    ct_caltable_free(&t);
    if (rc != CT_OK) {
        json_decref(found);
        return cli_rank_report(rank, &err);
    }
    if (rank != 0)
        return EXIT_OK;
    const char *rung = found ? json_string_value(json_object_get(found, "rung")) : "given";
    if (json) {
        json_t *o =
            json_pack("{s:s, s:s, s:s, s:I, s:I, s:f}", "path", out, "caltable", path, "rung", rung,
                      "n_samples", (json_int_t)r.n_samples, "n_flagged_by_cal",
                      (json_int_t)r.n_flagged_by_cal, "seconds", r.seconds);
        if (found)
            json_object_set(o, "chosen", found);
        cli_print_json(o);
    } else
        printf("%s\ncalibrated with %s (%s): %zu correlations, %zu newly flagged, %.2f s\n", out,
               path, rung, r.n_samples, r.n_flagged_by_cal, r.seconds);
    json_decref(found);
    return EXIT_OK;
}

static int find(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {{"time", required_argument, NULL, 't'},
                                         {"stale-hours", required_argument, NULL, 's'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *when = NULL;
    double stale = cfg->calibrator_staleness_hours;
    bool json = false;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': printf("%s\n", find_usage); return EXIT_OK;
        case 't': when = optarg; break;
        case 's':
            if (!cli_parse_double(optarg, 0, 1e6, &stale))
                return cli_usage_error("--stale-hours must be 0..1e6, got '%s'", optarg);
            break;
        case 'j': json = true; break;
        case ':': return cli_usage_error("calibrate find: %s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("calibrate find: unknown option '%s'; see --help",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("calibrate find: unexpected argument '%s'", argv[optind]);
    if (!when)
        return cli_usage_error("calibrate find: --time ISO_TIME is required");
    json_t *found = NULL;
    ct_err err;
    if (find_for(cfg, when, stale, &found, &err) != CT_OK)
        return cli_report(&err);
    if (json_is_null(found)) {
        json_decref(found);
        ct_fail(&err, CT_ENOTFOUND, "no caltable for %s: none registered in reach", when);
        return cli_report(&err);
    }
    if (json)
        cli_print_json(found);
    else {
        printf("%s\n%s, %.2f h from the calibrator observation's middle (group %s)\n",
               json_string_value(json_object_get(found, "path")),
               json_string_value(json_object_get(found, "rung")),
               json_number_value(json_object_get(found, "age_hours")),
               json_string_value(json_object_get(found, "group_id")));
        json_decref(found);
    }
    return EXIT_OK;
}

static const char catalogue_usage[] =
    "usage: contimg calibrate catalogue [--json]\n\n"
    "The calibrator catalogue: each flux-density standard's name, ICRS position, flux\n"
    "density at 1.4 GHz and the slope of its spectrum there (Perley & Butler 2017), as\n"
    "`--calibrator NAME` and calibration-solve model it.";

static int catalogue(int argc, char **argv, const ct_config *cfg)
{
    (void)cfg;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("%s\n", catalogue_usage);
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--json") != 0)
            return cli_usage_error("calibrate catalogue: unexpected argument '%s'", argv[i]);
        json = true;
    }
    json_t *rows = json_array();
    if (!json)
        printf("%-8s %11s %10s %10s %8s\n", "NAME", "RA_DEG", "DEC_DEG", "S1.4_JY", "INDEX");
    for (size_t i = 0; i < ct_calibrator_count(); i++) {
        const ct_calibrator *c = ct_calibrator_at(i);
        ct_source src;
        ct_calibrator_source(c, &src);
        if (json)
            json_array_append_new(rows,
                                  json_pack("{s:s, s:f, s:f, s:f, s:f}", "name", c->name, "ra_deg",
                                            c->ra_deg, "dec_deg", c->dec_deg, "flux_jy_1p4",
                                            src.flux_jy, "spectral_index", src.spectral_index));
        else
            printf("%-8s %11.5f %10.5f %10.3f %8.4f\n", c->name, c->ra_deg, c->dec_deg, src.flux_jy,
                   src.spectral_index);
    }
    if (json)
        cli_print_json(rows);
    else
        json_decref(rows);
    return EXIT_OK;
}

/* solve runs on every rank of an mpirun (its channels dealt over them). */
static int solve_mpi(int argc, char **argv, const ct_config *cfg)
{
    return cli_mpi_main("calibrate solve", solve, argc, argv, cfg);
}

/* apply too: its baseline-times dealt over the ranks. */
static int apply_mpi(int argc, char **argv, const ct_config *cfg)
{
    return cli_mpi_main("calibrate apply", apply, argc, argv, cfg);
}

int cmd_calibrate(int argc, char **argv, const ct_config *cfg)
{
    static const cli_command subs[] = {
        {"solve", "solve the bandpass (and gains) on a calibrator observation", solve_mpi},
        {"apply", "apply a caltable to an observation", apply_mpi},
        {"find", "the caltable the registry's fallback chain gives a time", find},
        {"catalogue", "the calibrator catalogue: positions and fluxes", catalogue},
        {NULL, NULL, NULL},
    };
    return cli_dispatch("contimg calibrate", "usage: contimg calibrate COMMAND", subs, argc, argv,
                        cfg);
}
