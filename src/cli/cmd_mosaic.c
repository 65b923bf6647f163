/* cmd_mosaic.c -- `contimg mosaic`: a primary-beam-weighted mosaic of FITS images
 * (plainly or under mpirun), and the mosaic planner over the products table. */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "fsutil.h"
#include "mosaic.h"
#include "products.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: contimg mosaic IMAGE.fits... --out PREFIX [options]\n"
    "       contimg mosaic --plan [--tier T] [--per-mosaic N] [--overlap K] [--spawn] [--json]\n\n"
    "Combines restored images (not primary-beam corrected) into one TAN mosaic:\n"
    "M = sum(A I w) / sum(A^2 w), w = 1/sigma^2 with sigma from each image's MAD and A\n"
    "the Airy beam at its frequency about its centre; blank where the weight is below\n"
    "cutoff^2 x its maximum. The mosaic is cut into tiles that the ranks of `mpirun -np N`\n"
    "share; it is the same bit for bit on any number of ranks.\n\n"
    "Writes PREFIX-tileNNN.fits (with -noise and -weight maps) for every tile, and\n"
    "PREFIX.fits, PREFIX-noise.fits, PREFIX-weight.fits assembled from them.\n\n"
    "  --out PREFIX        output prefix (required)\n"
    "  --tile N            tile side in pixels, 16..8192 (default 2048)\n"
    "  --cutoff C          beam cutoff in (0, 1) (default 0.1: weight below 0.01 of max)\n"
    "  --interp KIND       bicubic (default), bilinear, or area (flux-conserving)\n"
    "  --no-assemble       write the tiles only\n"
    "  --json              print the result as JSON\n\n"
    "--plan lists the mosaics the planner makes of the registered images that passed\n"
    "QA, in time order: windows of --per-mosaic images (default: the tier's most,\n"
    "quicklook 10, science 100, deep 1000) overlapping by --overlap (default 2).\n"
    "--spawn also queues a create-mosaic task for every complete window, keyed by its\n"
    "mosaic id (again: nothing new), written under CONTIMG_PRODUCTS_DIR/mosaics.\n\n"
    "Errors: inputs that disagree in frequency or cell, a damaged image or bad options\n"
    "exit 2; a missing file exits 4; I/O failures exit 1. Files appear complete or not\n"
    "at all.";

static int make_body(int argc, char **argv, const ct_config *cfg)
{
    (void)cfg;
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},    {"tile", required_argument, NULL, 't'},
        {"cutoff", required_argument, NULL, 'c'}, {"interp", required_argument, NULL, 'i'},
        {"no-assemble", no_argument, NULL, 'A'},  {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {0, 0, 0, 0}};
    ct_mosaic_opts o;
    ct_mosaic_opts_default(&o);
    bool json = false;
    long v;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            if (rank == 0)
                printf("%s\n", usage);
            return EXIT_OK;
        case 'o': o.out_prefix = optarg; break;
        /* Numbers are read here; their bounds are ct_mosaic_opts_check's, the
         * same for a task's params.config. */
        case 't':
            if (!cli_parse_long(optarg, INT_MIN, INT_MAX, &v))
                return cli_rank_usage_error(rank, "--tile must be a whole number, got '%s'",
                                            optarg);
            o.tile = (int)v;
            break;
        case 'c':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.cutoff))
                return cli_rank_usage_error(rank, "--cutoff must be a number, got '%s'", optarg);
            break;
        case 'i':
            if (ct_mosaic_interp_parse(optarg, &o.interp) != CT_OK)
                return cli_rank_usage_error(
                    rank, "--interp must be bicubic, bilinear or area, got '%s'", optarg);
            break;
        case 'A': o.assemble_max_bytes = 0; break;
        case 'j': json = true; break;
        case ':':
            return cli_rank_usage_error(rank, "mosaic: option '%s' needs a value",
                                        argv[optind - 1]);
        default:
            return cli_rank_usage_error(rank, "mosaic: unknown option '%s'; see --help",
                                        argv[optind - 1]);
        }
    }
    {
        ct_err bad;
        if (ct_mosaic_opts_check(&o, &bad) != CT_OK)
            return cli_rank_usage_error(rank, "%s", bad.msg);
    }
    if (argc - optind < 1)
        return cli_rank_usage_error(rank, "mosaic: give at least one IMAGE.fits; see --help");
    if (!o.out_prefix)
        return cli_rank_usage_error(rank, "mosaic: --out PREFIX is required");

    ct_mosaic_result r;
    ct_err err;
    ct_err_clear(&err);
    ct_code rc = ct_mosaic_make(MPI_COMM_WORLD, (const char *const *)argv + optind, argc - optind,
                                &o, &r, &err);
    if (rc != CT_OK)
        return cli_rank_report(rank, &err);
    if (rank == 0) {
        if (json) {
            cli_print_json(ct_mosaic_result_json(&r));
        } else {
            printf("%s\n", r.assembled ? r.path : r.tiles[0].path);
            printf("mosaic: %d x %d px of %.4g arcsec (TAN about RA %.6f Dec %.6f deg), %d "
                   "image(s), %d tile(s) on %d rank(s)\n",
                   r.nx, r.ny, r.cell_arcsec, r.ra_deg, r.dec_deg, r.n_images, r.n_tiles, r.ranks);
            printf("noise: %.4g Jy/beam at the deepest, median %.4g; %lld of %lld px blank "
                   "(cutoff %.3g)\n",
                   r.noise_min_jy, r.noise_med_jy, r.n_blank, (long long)r.nx * r.ny, r.cutoff);
            printf("time: %.2f s (noise %.2f, read %.2f, resample %.2f, write %.2f, assemble "
                   "%.2f)\n",
                   r.seconds, r.t_stats, r.t_read, r.t_resample, r.t_write, r.t_assemble);
        }
    }
    ct_mosaic_result_free(&r);
    return EXIT_OK;
}

static int plan(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {{"plan", no_argument, NULL, 'p'},
                                         {"tier", required_argument, NULL, 't'},
                                         {"per-mosaic", required_argument, NULL, 'n'},
                                         {"overlap", required_argument, NULL, 'o'},
                                         {"spawn", no_argument, NULL, 's'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *tier = "quicklook";
    long per = 0, overlap = 2;
    bool json = false, spawn = false;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': printf("%s\n", usage); return EXIT_OK;
        case 'p': break;
        case 't': tier = optarg; break;
        case 'n':
            if (!cli_parse_long(optarg, 2, 1000, &per))
                return cli_usage_error("--per-mosaic must be 2..1000, got '%s'", optarg);
            break;
        case 'o':
            if (!cli_parse_long(optarg, 0, 999, &overlap))
                return cli_usage_error("--overlap must be 0..999, got '%s'", optarg);
            break;
        case 's': spawn = true; break;
        case 'j': json = true; break;
        case ':': return cli_usage_error("mosaic: %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("mosaic --plan: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("mosaic --plan: unexpected argument '%s'", argv[optind]);
    ct_err err;
    cq_client *db = NULL;
    if (cli_connect(cfg, &db, &err) != CT_OK)
        return cli_report(&err);
    json_t *rows = NULL, *spawned = NULL;
    ct_code rc = ct_products_plan_mosaics(db, tier, per, overlap, cfg->queue, &rows, &err);
    if (rc == CT_OK && spawn) {
        char abs[CT_PATH_MAX], dir[CT_PATH_MAX + 16];
        rc = ct_absolute_path(cfg->products_dir, abs, sizeof abs, &err);
        snprintf(dir, sizeof dir, "%s/mosaics", abs);
        if (rc == CT_OK)
            rc = ct_products_spawn_mosaics(db, tier, per, overlap, cfg->queue, dir, &spawned, &err);
    }
    cq_disconnect(db);
    if (rc != CT_OK) {
        json_decref(rows);
        return cli_report(&err);
    }
    if (json) {
        cli_print_json(spawn ? json_pack("{s:o, s:o}", "plan", rows, "spawned", spawned) : rows);
        return EXIT_OK;
    }
    size_t i;
    json_t *row;
    printf("%-52s  %-6s  %-8s  %s\n", "MOSAIC", "IMAGES", "COMPLETE", "GROUPS");
    json_array_foreach(rows, i, row)
    {
        printf("%-52s  %6d  %-8s  %s .. %s\n", json_string_value(json_object_get(row, "mosaic_id")),
               (int)json_integer_value(json_object_get(row, "n_images")),
               json_is_true(json_object_get(row, "complete")) ? "yes" : "no",
               json_string_value(json_object_get(row, "first_group")),
               json_string_value(json_object_get(row, "last_group")));
    }
    if (json_array_size(rows) == 0)
        printf("(no registered images that passed QA)\n");
    json_array_foreach(spawned, i, row)
    {
        printf("%s %s (task %s)\n",
               json_is_true(json_object_get(row, "created")) ? "spawned" : "exists ",
               json_string_value(json_object_get(row, "mosaic_id")),
               json_string_value(json_object_get(row, "task_id")));
    }
    if (spawn && json_array_size(spawned) == 0)
        printf("(no new create-mosaic task: every complete window has one)\n");
    json_decref(rows);
    json_decref(spawned);
    return EXIT_OK;
}

int cmd_mosaic(int argc, char **argv, const ct_config *cfg)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--plan") == 0)
            return plan(argc, argv, cfg);
    return cli_mpi_main("mosaic", make_body, argc, argv, cfg);
}
