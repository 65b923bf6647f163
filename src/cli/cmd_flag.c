/* cmd_flag.c -- `contimg flag`: interference flags for one observation (flagger.h). */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "flagger.h"

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: contimg flag VISFILE --out FLAGGED [--threshold X] [--rounds N] [--eta E]\n"
    "                    [--max-fraction F] [--antenna-sigma S] [--burst-sigma S]\n"
    "                    [--threads N] [--json]\n\n"
    "Finds radio-frequency interference in the UVH5 observation VISFILE and writes FLAGGED\n"
    "(UVH5, atomically): the same data and weights, bit for bit, with the interference\n"
    "flagged in every polarization. Dead or hot antennas (zero or outlying autocorrelation\n"
    "power, or cross-correlations all zero) are flagged whole, or in the subbands where\n"
    "they are bad; then each cross-correlation's time-frequency plane is searched by\n"
    "SumThreshold on its excess power over a smooth background, in rounds, and the flags\n"
    "dilated by the scale-invariant rank operator; last, integrations whose power over\n"
    "the whole array steps up (a broadband burst) are flagged (docs/flagging.md). Under\n"
    "mpirun the baselines are dealt over the ranks; the output is the same on any number\n"
    "of them.\n\n"
    "  --threshold X      one sample's threshold on the excess power |R|^2 / (2 sigma^2) - 1\n"
    "                     (default 10: |R| above 4.7 sigma); longer windows lower it\n"
    "  --rounds N         background and threshold rounds (default 2)\n"
    "  --eta E            the dilation's eta (default 0.2; 0: none)\n"
    "  --max-fraction F   the QA gate: fail when more than F of the cross-correlation\n"
    "                     samples are flagged afterwards (default 0.5)\n"
    "  --antenna-sigma S  robust deviations of log autocorrelation power that make an\n"
    "                     antenna hot or cold (default 5; and a factor 3 from the median)\n"
    "  --burst-sigma S    an integration's array-wide power step, in its spread over time,\n"
    "                     that makes a broadband burst (default 5; 0: no burst search)\n"
    "  --threads N        threads per rank (default: the node's cores shared)\n"
    "  --json             print the QA as JSON: fractions per antenna, subband, time\n\n"
    "Exit 2 for bad options, corrupt input or a failed gate (nothing written; the QA is\n"
    "still printed); 4 for a missing file; 1 for I/O failures.";

/* An option's number (the ranges are ct_flag_opts_check's to judge). */
static double number(const char *s, int *ok)
{
    double v = 0;
    *ok = cli_parse_double(s, -HUGE_VAL, HUGE_VAL, &v);
    return v;
}

static int whole(const char *s, int *ok)
{
    long v = 0;
    *ok = cli_parse_long(s, INT_MIN, INT_MAX, &v);
    return (int)v;
}

static json_t *qa_json(const char *out, const ct_flag_result *r)
{
    json_t *ants = json_array(), *subs = json_array(), *times = json_array();
    for (int a = 0; a < r->nant; a++) {
        json_array_append_new(ants, json_pack("{s:i, s:f, s:s}", "antenna", r->ant_number[a],
                                              "fraction", r->ant_fraction[a], "state",
                                              ct_flag_ant_state_name(r->ant_state[a])));
    }
    for (int s = 0; s < r->nsub; s++)
        json_array_append_new(subs, json_real(r->sub_fraction[s]));
    for (int t = 0; t < r->ntime; t++)
        json_array_append_new(times, json_real(r->time_fraction[t]));
    return json_pack("{s:s?, s:I, s:I, s:I, s:f, s:I, s:b, s:o, s:o, s:o, s:i, s:i, s:{s:f, s:f, "
                     "s:f, s:f}}",
                     "path", out, "n_samples", (json_int_t)r->n_samples, "n_flagged_input",
                     (json_int_t)r->n_flagged_in, "n_flagged", (json_int_t)r->n_flagged, "fraction",
                     r->fraction, "burst_cells", (json_int_t)r->n_burst_cells, "gate_passed",
                     r->gate_passed, "antennas", ants, "subband_fraction", subs, "time_fraction",
                     times, "ranks", r->ranks, "threads", r->threads, "timings", "read", r->t_read,
                     "detect", r->t_detect, "write", r->t_write, "total", r->seconds);
}

static int flag(int argc, char **argv, const ct_config *cfg)
{
    (void)cfg;
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"threshold", required_argument, NULL, 'x'},
                                         {"rounds", required_argument, NULL, 'r'},
                                         {"eta", required_argument, NULL, 'e'},
                                         {"max-fraction", required_argument, NULL, 'm'},
                                         {"antenna-sigma", required_argument, NULL, 'a'},
                                         {"burst-sigma", required_argument, NULL, 'b'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    ct_flag_opts o;
    ct_flag_opts_default(&o);
    const char *out = NULL;
    int json = 0, ch, ok = 1;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            if (rank == 0)
                printf("%s\n", usage);
            return EXIT_OK;
        case 'o': out = optarg; break;
        case 'x': o.plane.threshold = number(optarg, &ok); break;
        case 'r': o.plane.rounds = whole(optarg, &ok); break;
        case 'e': o.plane.eta = number(optarg, &ok); break;
        case 'm': o.max_fraction = number(optarg, &ok); break;
        case 'a': o.antenna_sigma = number(optarg, &ok); break;
        case 'b': o.burst_sigma = number(optarg, &ok); break;
        case 't': o.threads = whole(optarg, &ok); break;
        case 'j': json = 1; break;
        case ':': return cli_rank_usage_error(rank, "flag: %s needs a value", argv[optind - 1]);
        default:
            return cli_rank_usage_error(rank, "flag: unknown option '%s'; see --help",
                                        argv[optind - 1]);
        }
        if (!ok)
            return cli_rank_usage_error(rank, "flag: %s wants a number, not '%s'", argv[optind - 2],
                                        optarg);
    }
    if (argc - optind != 1)
        return cli_rank_usage_error(rank, "flag: give exactly one VISFILE; see --help");
    if (!out)
        return cli_rank_usage_error(rank, "flag: --out FLAGGED is required");
    if (strcmp(out, argv[optind]) == 0)
        return cli_rank_usage_error(rank, "flag: --out must not be the input");
    ct_err err;
    if (ct_flag_opts_check(&o, &err) != CT_OK)
        return cli_rank_usage_error(rank, "flag: %s", err.msg);
    ct_flag_result r;
    const ct_code rc = ct_flag_observation(MPI_COMM_WORLD, argv[optind], out, &o, &r, &err);
    if (rank == 0 && (rc == CT_OK || r.n_samples > 0)) {
        if (json) {
            json_t *q = qa_json(rc == CT_OK ? out : NULL, &r);
            cli_print_json(q);
        } else
            printf("%s%s%zu cross-correlation samples, %.2f %% flagged (%.2f %% in the input); "
                   "%.2f s\n",
                   rc == CT_OK ? out : "", rc == CT_OK ? "\n" : "", r.n_samples, 100.0 * r.fraction,
                   r.n_samples ? 100.0 * (double)r.n_flagged_in / (double)r.n_samples : 0.0,
                   r.seconds);
    }
    ct_flag_result_free(&r);
    if (rc != CT_OK)
        return cli_rank_report(rank, &err);
    return EXIT_OK;
}

int cmd_flag(int argc, char **argv, const ct_config *cfg)
{
    return cli_mpi_main("flag", flag, argc, argv, cfg);
}
