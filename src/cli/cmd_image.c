/* cmd_image.c -- `contimg image`: one combined observation to FITS images, on one
 * process or across the ranks of `mpirun`. */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "imaging.h"
#include "mpiutil.h"
#include "uvh5.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: contimg image VISFILE --out PREFIX [options]\n\n"
    "Images one UVH5 observation (a combined file from `contimg convert`, or any UVH5\n"
    "file with XX/YY) in Stokes I: re-phased to the pointing at mid-observation,\n"
    "weighted, gridded with w-stacking, CLEANed (Hogbom, major cycles), restored and\n"
    "corrected for the primary beam. Run it plainly or under `mpirun -np N`: the images\n"
    "are the same bit for bit whatever N is.\n\n"
    "Writes PREFIX-dirty.fits, -psf.fits, -model.fits, -residual.fits, -image.fits\n"
    "(restored) and -image-pb.fits (primary-beam corrected, blank below --pblimit).\n\n"
    "  --out PREFIX            output prefix (required)\n"
    "  --size N                pixels per side, even (default: the field out to where\n"
    "                          the primary beam falls to --pblimit)\n"
    "  --cell ARCSEC           pixel size (default: a quarter of the synthesized beam's\n"
    "                          minor axis as the weighted uv coverage predicts it)\n"
    "  --weight KIND           natural, uniform or briggs (default briggs)\n"
    "  --robust R              Briggs robust, -2..2 (default 0)\n"
    "  --min-uv-lambda L       leave out baselines shorter than L wavelengths\n"
    "  --niter N               CLEAN components at most (default 1000; 0: no CLEAN)\n"
    "  --threshold JY          stop CLEAN at this peak residual (default 0)\n"
    "  --gain G                CLEAN loop gain (default 0.1)\n"
    "  --mgain G               major-cycle gain (default 0.5)\n"
    "  --epsilon E             gridding accuracy against a direct Fourier transform\n"
    "                          (default 1e-4)\n"
    "  --pblimit P             primary-beam cutoff (default 0.2)\n"
    "  --no-wterms             2-D gridding (exact only near the centre)\n"
    "  --successor             the continuum successor's settings: --size 4800 --cell 3\n"
    "                          --robust 0.5 --min-uv-lambda 1000 (later options override)\n"
    "  --max-memory-gb G       per-rank memory for the grids (default: 80 % of the node's\n"
    "                          memory shared among its ranks)\n"
    "  --threads N             threads per rank (default CONTIMG_THREADS, else the node's\n"
    "                          cores shared among its ranks; under mpirun, --bind-to none)\n"
    "  --grid-bits 32|64       precision of the uv grids and their FFTs (default: 32\n"
    "                          where --epsilon is at least 1e-5, else 64)\n"
    "  --slant auto|off|on     image on the slant orthographic grid (SIN with PV2_1,\n"
    "                          PV2_2) that fits the rows' w plane: auto when that at\n"
    "                          least halves the w planes (DSA-110's full field: 27 -> 8);\n"
    "                          off: plain SIN; on: whenever a plane fits (default auto)\n"
    "  --psf-double            CLEAN with a PSF of twice the image's size (every\n"
    "                          component's sidelobes subtracted in the minor cycle; about\n"
    "                          two more passes of work; default: the image's size)\n"
    "  --export-vis FILE       also write the rows as imaged (u, v, w [lambda], re, im,\n"
    "                          weight as little-endian doubles), one rank only\n"
    "  --json                  print the result as JSON\n\n"
    "Errors: corrupt_input / no data / bad options exit 2; a missing file exits 4;\n"
    "I/O failures exit 1. Files appear complete or not at all.";

static int image_body(int argc, char **argv, const ct_config *cfg)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"size", required_argument, NULL, 's'},
                                         {"cell", required_argument, NULL, 'c'},
                                         {"weight", required_argument, NULL, 'w'},
                                         {"robust", required_argument, NULL, 'r'},
                                         {"min-uv-lambda", required_argument, NULL, 'u'},
                                         {"niter", required_argument, NULL, 'n'},
                                         {"threshold", required_argument, NULL, 't'},
                                         {"gain", required_argument, NULL, 'g'},
                                         {"mgain", required_argument, NULL, 'G'},
                                         {"epsilon", required_argument, NULL, 'e'},
                                         {"pblimit", required_argument, NULL, 'p'},
                                         {"no-wterms", no_argument, NULL, 'W'},
                                         {"successor", no_argument, NULL, 'S'},
                                         {"max-memory-gb", required_argument, NULL, 'm'},
                                         {"export-vis", required_argument, NULL, 'x'},
                                         {"threads", required_argument, NULL, 'T'},
                                         {"psf-double", no_argument, NULL, 'P'},
                                         {"grid-bits", required_argument, NULL, 'B'},
                                         {"slant", required_argument, NULL, 'L'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    ct_image_opts o;
    ct_image_opts_default(&o);
    o.threads = cfg->threads;
    bool json = false;
    long v;
    double d;
    /* --successor first, so that the options after it (in any order) override it. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--successor") == 0)
            ct_image_opts_successor(&o);
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
        /* Numbers are read here; their bounds are ct_image_opts_check's, the
         * same for a task's params.config. */
        case 's':
            if (!cli_parse_long(optarg, INT_MIN, INT_MAX, &v))
                return cli_rank_usage_error(rank, "--size must be a whole number, got '%s'",
                                            optarg);
            o.size = (int)v;
            break;
        case 'c':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.cell_arcsec))
                return cli_rank_usage_error(rank, "--cell must be a number, got '%s'", optarg);
            break;
        case 'w':
            if (ct_image_weight_from_name(optarg) < 0)
                return cli_rank_usage_error(
                    rank, "--weight must be natural, uniform or briggs, got '%s'", optarg);
            o.weight = (ct_weight_kind)ct_image_weight_from_name(optarg);
            break;
        case 'r':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.robust))
                return cli_rank_usage_error(rank, "--robust must be a number, got '%s'", optarg);
            break;
        case 'u':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.min_uv_lambda))
                return cli_rank_usage_error(rank, "--min-uv-lambda must be a number, got '%s'",
                                            optarg);
            break;
        case 'n':
            if (!cli_parse_long(optarg, INT_MIN, INT_MAX, &v))
                return cli_rank_usage_error(rank, "--niter must be a whole number, got '%s'",
                                            optarg);
            o.niter = (int)v;
            break;
        case 't':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.threshold_jy))
                return cli_rank_usage_error(rank, "--threshold must be a number, got '%s'", optarg);
            break;
        case 'g':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.gain))
                return cli_rank_usage_error(rank, "--gain must be a number, got '%s'", optarg);
            break;
        case 'G':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.mgain))
                return cli_rank_usage_error(rank, "--mgain must be a number, got '%s'", optarg);
            break;
        case 'e':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.epsilon))
                return cli_rank_usage_error(rank, "--epsilon must be a number, got '%s'", optarg);
            break;
        case 'p':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.pblimit))
                return cli_rank_usage_error(rank, "--pblimit must be a number, got '%s'", optarg);
            break;
        case 'W': o.no_wterms = 1; break;
        case 'S': break; /* applied above */
        case 'm':
            if (!cli_parse_double(optarg, 1e-3, 1e6, &d))
                return cli_rank_usage_error(rank, "--max-memory-gb must be positive, got '%s'",
                                            optarg);
            o.max_bytes = d * 1073741824.0;
            break;
        case 'x': o.export_vis = optarg; break;
        case 'T':
            if (!cli_parse_long(optarg, 1, 4096, &v))
                return cli_rank_usage_error(rank, "--threads must be 1..4096, got '%s'", optarg);
            o.threads = (int)v;
            break;
        case 'P': o.psf_double = 1; break;
        case 'B':
            if (!cli_parse_long(optarg, 32, 64, &v) || (v != 32 && v != 64))
                return cli_rank_usage_error(rank, "--grid-bits must be 32 or 64, got '%s'", optarg);
            o.grid_bits = (int)v;
            break;
        case 'L':
            if ((o.slant = ct_image_slant_from_name(optarg)) < 0)
                return cli_rank_usage_error(rank, "--slant must be auto, off or on, got '%s'",
                                            optarg);
            break;
        case 'j': json = true; break;
        case ':':
            return cli_rank_usage_error(rank, "image: option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_rank_usage_error(rank, "image: unknown option '%s'; see --help",
                                        argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return cli_rank_usage_error(rank, "image: give exactly one VISFILE; see --help");
    if (!o.out_prefix)
        return cli_rank_usage_error(rank, "image: --out PREFIX is required");
    {
        ct_err bad;
        if (ct_image_opts_check(&o, &bad) != CT_OK)
            return cli_rank_usage_error(rank, "%s", bad.msg);
    }

    ct_image_result r;
    ct_err err;
    ct_err_clear(&err);
    /* Opened in a child first (ct_uvh5_probe): a file HDF5 cannot decode safely is corrupt
     * input, exit 2, not a crash of every rank. */
    const char *vis = argv[optind];
    ct_code rc = rank == 0 ? ct_uvh5_probe(&vis, 1, &err) : CT_OK;
    if ((rc = ct_mpi_agree(MPI_COMM_WORLD, rc, &err)) != CT_OK)
        return cli_rank_report(rank, &err);
    rc = ct_image_observation(MPI_COMM_WORLD, vis, &o, &r, &err);
    if (rc != CT_OK)
        return cli_rank_report(rank, &err);
    if (rank == 0) {
        if (json) {
            cli_print_json(ct_image_result_json(&r));
        } else {
            printf("%s-image.fits\n", o.out_prefix);
            printf("image: %d x %d at %.4g arcsec, centre RA %.6f Dec %.6f deg, %zu visibilities, "
                   "%d rank(s) x %d thread(s)\n",
                   r.nx, r.ny, r.cell_arcsec, r.ra_deg, r.dec_deg, r.n_vis, r.ranks, r.threads);
            printf("clean: %d iterations in %d major cycles (stopped: %s); beam %.2f x %.2f "
                   "arcsec, PA %.1f deg\n",
                   r.iterations, r.major_cycles, r.stop_reason, r.qa.bmaj_arcsec, r.qa.bmin_arcsec,
                   r.qa.bpa_deg);
            printf("qa: peak %.6g Jy/beam, rms %.6g Jy/beam, dynamic range %.1f\n", r.qa.peak_jy,
                   r.qa.rms_jy, r.qa.dynamic_range);
            printf("time: %.2f s (read %.2f, weights %.2f, grid %.2f, fft %.2f, degrid %.2f, clean "
                   "%.2f, write %.2f)\n",
                   r.t_total, r.t_read, r.t_weights, r.t_grid, r.t_fft, r.t_degrid, r.t_clean,
                   r.t_write);
        }
    }
    return EXIT_OK;
}

int cmd_image(int argc, char **argv, const ct_config *cfg)
{
    return cli_mpi_main("image", image_body, argc, argv, cfg);
}
