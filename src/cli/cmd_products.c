/* cmd_products.c -- `contimg products`: what the pipeline has made. */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "products.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: contimg products [--group GROUP_ID] [--limit N] [--json]\n\n"
    "Lists the images in the products table, newest first, with their QA figures\n"
    "and the combined visibility file each was made from.";

int cmd_products(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {{"group", required_argument, NULL, 'g'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *group = NULL;
    long limit = 20;
    bool json = false;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': printf("%s\n", usage); return EXIT_OK;
        case 'g': group = optarg; break;
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
    ct_code rc = ct_products_images(db, group, limit, &rows, &err);
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
    printf("%-19s  %-9s  %-9s  %-8s  %-4s  %s\n", "GROUP", "PEAK_JY", "RMS_JY", "DR", "QA",
           "IMAGE");
    json_array_foreach(rows, i, row)
    {
        printf("%-19s  %9.4f  %9.6f  %8.1f  %-4s  %s\n",
               json_string_value(json_object_get(row, "group_id")),
               json_number_value(json_object_get(row, "peak_jy")),
               json_number_value(json_object_get(row, "rms_jy")),
               json_number_value(json_object_get(row, "dynamic_range")),
               json_is_true(json_object_get(row, "qa_passed")) ? "pass" : "FAIL",
               json_string_value(json_object_get(row, "image_path")));
    }
    if (json_array_size(rows) == 0)
        printf("(no images%s%s)\n", group ? " for group " : "", group ? group : "");
    json_decref(rows);
    return EXIT_OK;
}
