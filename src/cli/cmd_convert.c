/* cmd_convert.c -- `contimg convert`: one observation's 16 subband files into one file,
 * on one process or across the ranks of `mpirun`. */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "convert.h"
#include "groups.h"

#include <getopt.h>
#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: contimg convert GROUP_DIR|FILES... --out FILE [options]\n"
    "       contimg convert --qa-only FILE [--json]\n\n"
    "Combines the 16 subband files of one observation into one UVH5 file whose channels\n"
    "ascend in frequency (sb15 first), then runs the quality gate on it. Run it plainly or\n"
    "under `mpirun -np N`: blocks of baseline-times are shared out among the ranks, and the\n"
    "output is the same byte for byte whatever N is.\n\n"
    "  GROUP_DIR               a directory holding exactly one complete group\n"
    "  FILES...                the 16 files YYYY-MM-DDTHH:MM:SS_sbNN.hdf5 of one group\n"
    "  --out FILE              the combined file (written atomically)\n"
    "  --tolerance SEC         grouping tolerance for GROUP_DIR (default 60)\n"
    "  --block-bytes N         per-rank buffer bound for one block (default 64 MiB)\n"
    "  --qa-only               only run the quality gate on FILE (exit 2 when it fails)\n"
    "  --json                  print the result as JSON\n\n"
    "Errors start with a category: incomplete_group, corrupt_input, inconsistent_group,\n"
    "invalid_output (--out is an input), qa_failed (converted, but the quality gate\n"
    "failed: the file stays for inspection),\n"
    "outside_data_roots (inputs outside CONTIMG_DATA_ROOTS)\n"
    "(exit 2); I/O failures exit 1. Nothing is left at --out on any error.";

typedef struct conv_ctx {
    int rank;
    bool json;
    const ct_config *cfg;
} conv_ctx;

/* Only rank 0 speaks; every rank returns the same code. */
#define report_usage(c, ...) cli_rank_usage_error((c)->rank, __VA_ARGS__)

static int report(const conv_ctx *c, const ct_err *err)
{
    return cli_rank_report(c->rank, err);
}

static json_t *qa_json(const ct_qa_result *qa)
{
    return json_pack("{s:b, s:b, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:s}", "passed", qa->passed,
                     "shapes_ok", qa->shapes_ok, "n_samples", (json_int_t)qa->n_samples,
                     "n_flagged", (json_int_t)qa->n_flagged, "fraction_flagged",
                     qa->fraction_flagged, "n_nonfinite", (json_int_t)qa->n_nonfinite, "n_auto",
                     (json_int_t)qa->n_auto, "n_auto_bad", (json_int_t)qa->n_auto_bad,
                     "n_auto_zero", (json_int_t)qa->n_auto_zero, "reason", qa->reason);
}

static void qa_print(const ct_qa_result *qa)
{
    printf("qa: %s  flagged %.4f (%llu of %llu)  nonfinite %llu  autocorr bad %llu, zero %llu "
           "of %llu%s%s\n",
           qa->passed ? "passed" : "FAILED", qa->fraction_flagged, qa->n_flagged, qa->n_samples,
           qa->n_nonfinite, qa->n_auto_bad, qa->n_auto_zero, qa->n_auto,
           qa->passed ? "" : "  reason: ", qa->reason);
}

/* The quality gate alone, on rank 0; every rank returns its verdict. */
static int run_qa_only(const conv_ctx *c, const char *path)
{
    int code = EXIT_OK;
    if (c->rank == 0) {
        ct_qa_result qa;
        ct_err err;
        if (ct_convert_qa(path, &qa, &err) != CT_OK) {
            code = cli_report(&err);
        } else {
            if (c->json)
                cli_print_json(json_pack("{s:s, s:o}", "path", path, "qa", qa_json(&qa)));
            else
                qa_print(&qa);
            if (!qa.passed) {
                fprintf(stderr, "contimg: qa_failed: %s: %s\n", path, qa.reason);
                code = EXIT_USAGE;
            }
        }
    }
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return code;
}

/* On rank 0: the single complete group of dir, packed as 16 NUL-terminated paths.
 * Returns -1 with *packed set, or an exit code (the error already reported). */
static int scan_dir(const conv_ctx *c, const char *dir, double tol, char **packed, int *len)
{
    ct_group *groups = NULL;
    size_t n = 0;
    ct_err err;
    if (ct_groups_scan(dir, tol, &groups, &n, &err) != CT_OK)
        return report(c, &err);
    size_t n_complete = 0, which = 0;
    for (size_t i = 0; i < n; i++)
        if (ct_group_complete(&groups[i])) {
            n_complete++;
            which = i;
        }
    int code = -1;
    if (n_complete == 0) {
        char all[900] = "", line[512];
        for (size_t i = 0; i < n; i++) {
            ct_group_problems(&groups[i], line, sizeof line);
            size_t l = strlen(all);
            snprintf(all + l, sizeof all - l, "%s%s: %s", i ? "; " : "", groups[i].id, line);
        }
        ct_fail(&err, CT_EINVAL, "incomplete_group: no complete group in %s%s%s", dir,
                n ? ": " : " (no subband files)", all);
        code = report(c, &err);
    } else if (n_complete > 1) {
        code = report_usage(c,
                            "convert: %s holds %zu complete groups; name the 16 files of one "
                            "group instead of the directory",
                            dir, n_complete);
    } else {
        size_t total = 0;
        for (int s = 0; s < CT_SUBBANDS; s++)
            total += strlen(groups[which].subband[s]->path) + 1;
        *packed = malloc(total);
        if (*packed == NULL || total > INT_MAX) {
            ct_fail(&err, CT_ENOMEM, "out of memory");
            code = report(c, &err);
        } else {
            char *p = *packed;
            for (int s = 0; s < CT_SUBBANDS; s++) {
                size_t l = strlen(groups[which].subband[s]->path) + 1;
                memcpy(p, groups[which].subband[s]->path, l);
                p += l;
            }
            *len = (int)total;
        }
    }
    ct_groups_free(groups, n);
    return code;
}

/* A directory: the paths of its single complete group (*paths malloc'd, entries too).
 * Rank 0 alone looks: a landing directory changes while it is read, and ranks that saw
 * different groups would part ways and wait on each other forever. */
static int group_from_dir(const conv_ctx *c, const char *dir, double tol, char ***paths)
{
    char *packed = NULL;
    int len = 0, code = -1;
    if (c->rank == 0)
        code = scan_dir(c, dir, tol, &packed, &len);
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (code >= 0) {
        free(packed);
        return code;
    }
    MPI_Bcast(&len, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (c->rank != 0)
        packed = malloc((size_t)len);
    int ok = packed != NULL, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        free(packed);
        ct_err err;
        ct_fail(&err, CT_ENOMEM, "out of memory");
        return report(c, &err);
    }
    MPI_Bcast(packed, len, MPI_CHAR, 0, MPI_COMM_WORLD);
    *paths = calloc(CT_SUBBANDS, sizeof **paths);
    const char *p = packed;
    for (int s = 0; *paths != NULL && s < CT_SUBBANDS; s++) {
        (*paths)[s] = strdup(p);
        p += strlen(p) + 1;
    }
    free(packed);
    /* Out of memory here is local: ct_convert's first agreement will see the NULL paths
     * fail group_open on this rank only, and every rank reports it. */
    return -1;
}

static int convert_main(const conv_ctx *c0, int argc, char **argv)
{
    conv_ctx c = *c0;
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"tolerance", required_argument, NULL, 't'},
                                         {"block-bytes", required_argument, NULL, 'b'},
                                         {"qa-only", no_argument, NULL, 'q'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL;
    double tol = 60;
    bool qa_only = false;
    long v;
    ct_convert_opts copts = {0};
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            if (c.rank == 0)
                printf("%s\n", usage);
            return EXIT_OK;
        case 'o': out = optarg; break;
        case 't':
            if (!cli_parse_double(optarg, 1e-3, 86400, &tol))
                return report_usage(&c, "--tolerance must be 0.001..86400 s, got '%s'", optarg);
            break;
        case 'b':
            if (!cli_parse_long(optarg, 1, 0x7fffffffL, &v))
                return report_usage(&c, "--block-bytes must be a positive number, got '%s'",
                                    optarg);
            copts.block_bytes = (size_t)v;
            break;
        case 'q': qa_only = true; break;
        case 'j': c.json = true; break;
        case ':': return report_usage(&c, "convert: option '%s' needs a value", argv[optind - 1]);
        default:
            return report_usage(&c, "convert: unknown option '%s'; see --help", argv[optind - 1]);
        }
    }
    int n_pos = argc - optind;
    if (qa_only) {
        if (n_pos != 1)
            return report_usage(&c, "convert --qa-only takes exactly one FILE");
        return run_qa_only(&c, argv[optind]);
    }
    if (out == NULL)
        return report_usage(&c, "convert: --out FILE is required");
    if (n_pos < 1)
        return report_usage(&c, "convert: give a group directory or the 16 subband files");

    char **owned = NULL;
    const char *const *inputs = (const char *const *)(argv + optind);
    size_t n_inputs = (size_t)n_pos;
    struct stat st;
    if (n_pos == 1 && stat(argv[optind], &st) == 0 && S_ISDIR(st.st_mode)) {
        int code = group_from_dir(&c, argv[optind], tol, &owned);
        if (code >= 0)
            return code;
        inputs = (const char *const *)owned;
        n_inputs = CT_SUBBANDS;
    }

    ct_convert_result res;
    ct_err err;
    /* Inputs must lie inside CONTIMG_DATA_ROOTS when it is set (resolved, so
     * neither ".." nor a symlink leads out). Every rank sees the same paths
     * and configuration, so every rank decides alike. */
    ct_code rc = ct_config_check_paths(c.cfg, inputs, n_inputs, &err);
    if (rc != CT_OK) {
        char why[CT_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", err.msg); /* ct_fail must not read what it writes */
        ct_fail(&err, CT_EINVAL, "outside_data_roots: %s", why);
        if (owned != NULL) {
            for (int s = 0; s < CT_SUBBANDS; s++)
                free(owned[s]);
            free(owned);
        }
        return report(&c, &err);
    }
    rc = ct_convert(MPI_COMM_WORLD, inputs, n_inputs, out, &copts, &res, &err);
    if (owned != NULL) {
        for (int s = 0; s < CT_SUBBANDS; s++)
            free(owned[s]);
        free(owned);
    }
    if (rc != CT_OK)
        return report(&c, &err);

    /* The quality gate, on rank 0: it reads the file once, serially. */
    int code = EXIT_OK;
    if (c.rank == 0) {
        ct_qa_result qa;
        if (ct_convert_qa(out, &qa, &err) != CT_OK) {
            code = cli_report(&err);
        } else if (c.json) {
            cli_print_json(json_pack("{s:s, s:i, s:f, s:I, s:I, s:i, s:i, s:i, s:o}", "output", out,
                                     "n_ranks", res.n_ranks, "seconds", res.seconds, "bytes_read",
                                     (json_int_t)res.bytes_read, "bytes_written",
                                     (json_int_t)res.bytes_written, "nblts", res.nblts, "nfreqs",
                                     res.nfreqs, "npols", res.npols, "qa", qa_json(&qa)));
        } else {
            printf("%s\n", out);
            printf("converted: %d ranks, %.3f s, %llu bytes read, %llu bytes written, "
                   "shape (%d, %d, %d)\n",
                   res.n_ranks, res.seconds, res.bytes_read, res.bytes_written, res.nblts,
                   res.nfreqs, res.npols);
            qa_print(&qa);
        }
        /* The gate gates: a caller that checks only the exit code must not take a
         * failed file for a good one. The file stays, for inspection. */
        if (code == EXIT_OK && !qa.passed) {
            fprintf(stderr, "contimg: qa_failed: %s: %s\n", out, qa.reason);
            code = EXIT_USAGE;
        }
        fflush(stdout);
    }
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return code;
}

static int convert_body(int argc, char **argv, const ct_config *cfg)
{
    conv_ctx c = {0, false, cfg};
    MPI_Comm_rank(MPI_COMM_WORLD, &c.rank);
    return convert_main(&c, argc, argv);
}

int cmd_convert(int argc, char **argv, const ct_config *cfg)
{
    return cli_mpi_main("convert", convert_body, argc, argv, cfg);
}
