/* cmd_sources.c -- `contimg sources`: the sources of one restored FITS image, as a table,
 * JSON or a CSV catalogue. */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "fitsimage.h"
#include "sources.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: contimg sources IMAGE.fits [--json] [--catalog FILE.csv] [options]\n\n"
    "Finds the sources of a restored image: background and rms maps in boxes, islands of\n"
    "pixels --island rms above the background holding one --seed rms above, each island's\n"
    "peaks fitted as elliptical Gaussians (Levenberg-Marquardt), with errors after Condon\n"
    "(1997). Prints one line per source, brightest first; integrated flux is peak x fitted\n"
    "area / beam area (an unresolved source: integrated = peak).\n\n"
    "  --json              the catalogue as JSON: {\"sources\": [{\"ra_deg\", \"dec_deg\",\n"
    "                      \"peak_jy\", \"int_jy\", \"snr\", ...}], \"rms_jy\", ...}\n"
    "  --catalog FILE      also write the catalogue as CSV (atomically)\n"
    "  --maps PREFIX       also write PREFIX-background.fits and PREFIX-rms.fits\n"
    "  --seed S            an island needs a pixel S rms above the background (default 5)\n"
    "  --island S          its pixels are S rms above (default 3)\n"
    "  --box N             background box in pixels (default about 10 beams)\n"
    "  --max-components N  Gaussians per island at most (default 8)\n"
    "  --threads N         OpenMP threads (default all)\n\n"
    "Flags: 1 moments (the fit failed), 2 edge (the island touches the border or a blank\n"
    "pixel), 4 blend (one of several Gaussians of an island).\n"
    "Errors: bad options or an image that is not one exit 2; a missing file exits 4.";

static int write_maps(const char *prefix, const ct_fits_image_info *info, const float *bkg,
                      const float *rms)
{
    const char *suffix[2] = {"-background.fits", "-rms.fits"};
    const float *maps[2] = {bkg, rms};
    for (int i = 0; i < 2; i++) {
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s%s", prefix, suffix[i]) >= (int)sizeof path)
            return cli_usage_error("--maps: prefix too long");
        ct_err err;
        if (ct_fits_write_image(path, &info->desc, maps[i], &err) != CT_OK)
            return cli_report(&err);
    }
    return EXIT_OK;
}

int cmd_sources(int argc, char **argv, const ct_config *cfg)
{
    (void)cfg;
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"catalog", required_argument, NULL, 'c'},
                                         {"maps", required_argument, NULL, 'm'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"island", required_argument, NULL, 'i'},
                                         {"box", required_argument, NULL, 'b'},
                                         {"max-components", required_argument, NULL, 'n'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    ct_src_opts o;
    ct_src_opts_default(&o);
    bool json = false;
    const char *catalog = NULL, *maps = NULL;
    long v;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': printf("%s\n", usage); return EXIT_OK;
        case 'j': json = true; break;
        case 'c': catalog = optarg; break;
        case 'm': maps = optarg; break;
        /* Bounds are ct_src_opts_check's, the same for a task's config. */
        case 's':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.seed_sigma))
                return cli_usage_error("--seed must be a number, got '%s'", optarg);
            break;
        case 'i':
            if (!cli_parse_double(optarg, -HUGE_VAL, HUGE_VAL, &o.island_sigma))
                return cli_usage_error("--island must be a number, got '%s'", optarg);
            break;
        case 'b':
        case 'n':
        case 't':
            if (!cli_parse_long(optarg, INT_MIN, INT_MAX, &v))
                return cli_usage_error("--%s must be a whole number, got '%s'",
                                       ch == 'b'   ? "box"
                                       : ch == 'n' ? "max-components"
                                                   : "threads",
                                       optarg);
            *(ch == 'b' ? &o.box : ch == 'n' ? &o.max_components : &o.threads) = (int)v;
            break;
        case ':': return cli_usage_error("sources: option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("sources: unknown option '%s'; see --help", argv[optind - 1]);
        }
    }
    ct_err err;
    if (ct_src_opts_check(&o, &err) != CT_OK)
        return cli_usage_error("%s", err.msg);
    if (argc - optind != 1)
        return cli_usage_error("sources: give one IMAGE.fits; see --help");
    const char *path = argv[optind];

    ct_fits_image_info *info = malloc(sizeof *info);
    if (info == NULL)
        return cli_usage_error("out of memory");
    float *data = NULL, *bkg = NULL, *rms = NULL;
    int code = EXIT_OK;
    ct_src_catalog cat = {0};
    if (ct_fits_read_image(path, info, &data, &err) != CT_OK) {
        code = cli_report(&err);
        goto done;
    }
    size_t npix = (size_t)info->desc.nx * info->desc.ny;
    if (maps && ((bkg = malloc(npix * sizeof *bkg)) == NULL ||
                 (rms = malloc(npix * sizeof *rms)) == NULL)) {
        code = cli_usage_error("out of memory for the maps");
        goto done;
    }
    if (ct_src_find(data, &info->desc, info->projection, &o, &cat, bkg, rms, &err) != CT_OK) {
        code = cli_report(&err);
        goto done;
    }
    if (catalog && ct_src_catalog_write_csv(&cat, catalog, &err) != CT_OK) {
        code = cli_report(&err);
        goto done;
    }
    if (maps && (code = write_maps(maps, info, bkg, rms)) != EXIT_OK)
        goto done;
    if (json) {
        json_t *j = ct_src_catalog_json(&cat);
        if (j == NULL) {
            code = cli_usage_error("out of memory");
            goto done;
        }
        cli_print_json(j);
    } else {
        printf("%zu source(s) in %zu island(s); rms %.4g Jy/beam (median); beam %.3g x %.3g "
               "arcsec, PA %.1f deg; %.2f s\n",
               cat.n, cat.n_islands, cat.rms_jy, cat.beam_maj_arcsec, cat.beam_min_arcsec,
               cat.beam_pa_deg, cat.seconds);
        printf("%-12s %-12s %10s %10s %8s %8s %8s %6s %5s\n", "ra_deg", "dec_deg", "peak_Jy",
               "int_Jy", "snr", "maj_as", "min_as", "pa", "flags");
        for (size_t i = 0; i < cat.n; i++) {
            const ct_src *s = &cat.src[i];
            printf("%-12.6f %-12.6f %10.4g %10.4g %8.1f %8.2f %8.2f %6.1f %5d\n", s->ra_deg,
                   s->dec_deg, s->peak_jy, s->int_jy, s->snr, s->maj_arcsec, s->min_arcsec,
                   s->pa_deg, s->flags);
        }
    }
done:
    ct_src_catalog_free(&cat);
    free(data), free(bkg), free(rms), free(info);
    return code;
}
