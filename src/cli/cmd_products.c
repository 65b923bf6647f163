/* cmd_products.c -- `contimg products`: what the pipeline has made. */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "products.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: contimg products [--kind images|visibilities|mosaics|caltables] [--group GROUP_ID]\n"
    "                        [--limit N] [--json]\n\n"
    "Lists what the pipeline has made, newest first: the images (the default) with\n"
    "their QA figures and the combined visibility file each was made from, the\n"
    "converted observations, the mosaics (--group: those that cover the group) or\n"
    "the calibration tables. --json prints every column of the table's rows.";

int cmd_products(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {
        {"kind", required_argument, NULL, 'k'},  {"group", required_argument, NULL, 'g'},
        {"limit", required_argument, NULL, 'l'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {0, 0, 0, 0}};
    const char *group = NULL;
    ct_products_kind kind = CT_PRODUCTS_IMAGES;
    long limit = 20;
    bool json = false;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': printf("%s\n", usage); return EXIT_OK;
        case 'g': group = optarg; break;
        case 'k':
            if (ct_products_kind_parse(optarg, &kind) != CT_OK)
                return cli_usage_error(
                    "--kind must be images, visibilities, mosaics or caltables, got '%s'", optarg);
            break;
        case 'j': json = true; break;
        case 'l':
            if (!cli_parse_long(optarg, 1, 1000000, &limit))
                return cli_usage_error("--limit must be 1..1000000, got '%s'", optarg);
            break;
        case ':': return cli_usage_error("products: %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("products: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("products: unexpected argument '%s'", argv[optind]);
    ct_err err;
    cq_client *db = NULL;
    json_t *rows = NULL;
    if (cli_connect(cfg, &db, &err) != CT_OK)
        return cli_report(&err);
    ct_code rc = ct_products_list(db, kind, group, limit, &rows, &err);
    cq_disconnect(db);
    if (rc != CT_OK)
        return cli_report(&err);
    if (json) {
        cli_print_json(rows);
        json_decref(rows);
        return EXIT_OK;
    }
    size_t i;
    json_t *row;
    if (kind == CT_PRODUCTS_IMAGES)
        printf("%-19s  %-9s  %-9s  %-8s  %-4s  %s\n", "GROUP", "PEAK_JY", "RMS_JY", "DR", "QA",
               "IMAGE");
    else if (kind == CT_PRODUCTS_VISIBILITIES)
        printf("%-19s  %-8s  %-6s  %-4s  %s\n", "GROUP", "FLAGGED", "NBLTS", "QA", "PATH");
    else if (kind == CT_PRODUCTS_MOSAICS)
        printf("%-52s  %-6s  %-10s  %s\n", "MOSAIC", "IMAGES", "NOISE_JY", "PATH");
    else
        printf("%-19s  %-10s  %s\n", "GROUP", "KIND", "PATH");
    json_array_foreach(rows, i, row)
    {
        const char *g = json_string_value(json_object_get(row, "group_id"));
        if (kind == CT_PRODUCTS_IMAGES)
            printf("%-19s  %9.4f  %9.6f  %8.1f  %-4s  %s\n", g,
                   json_number_value(json_object_get(row, "peak_jy")),
                   json_number_value(json_object_get(row, "rms_jy")),
                   json_number_value(json_object_get(row, "dynamic_range")),
                   json_is_true(json_object_get(row, "qa_passed")) ? "pass" : "FAIL",
                   json_string_value(json_object_get(row, "image_path")));
        else if (kind == CT_PRODUCTS_VISIBILITIES)
            printf("%-19s  %8.4f  %6lld  %-4s  %s\n", g,
                   json_number_value(json_object_get(row, "fraction_flagged")),
                   (long long)json_integer_value(json_object_get(row, "nblts")),
                   json_is_true(json_object_get(row, "qa_passed")) ? "pass" : "FAIL",
                   json_string_value(json_object_get(row, "path")));
        else if (kind == CT_PRODUCTS_MOSAICS)
            printf("%-52s  %6lld  %10.4g  %s\n",
                   json_string_value(json_object_get(row, "mosaic_id")),
                   (long long)json_integer_value(json_object_get(row, "n_images")),
                   json_number_value(json_object_get(row, "noise_jy")),
                   json_string_value(json_object_get(row, "path")));
        else
            printf("%-19s  %-10s  %s\n", g, json_string_value(json_object_get(row, "kind")),
                   json_string_value(json_object_get(row, "path")));
    }
    if (json_array_size(rows) == 0)
        printf("(no %s%s%s)\n", ct_products_kind_name(kind), group ? " for group " : "",
               group ? group : "");
    json_decref(rows);
    return EXIT_OK;
}
