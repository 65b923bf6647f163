/* cmd_publish.c -- `contimg publish`: finished products' files copied from the products
 * directory to the archive (CONTIMG_ARCHIVE_DIR), each once, with retries (publisher.h). */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "publisher.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: contimg publish [--stage FILE... [--group G]] [--limit N] [--json]\n\n"
    "Publishes staged products from CONTIMG_PRODUCTS_DIR to CONTIMG_ARCHIVE_DIR (PRODUCTS/REL\n"
    "goes to ARCHIVE/REL): each file copied beside its destination, synced and renamed (the\n"
    "staged file stays for retention), its row in products.publications claimed first (FOR\n"
    "UPDATE SKIP LOCKED: two publishers never publish one file). A failed copy keeps its\n"
    "error and is tried again after 10 s, 20 s, ...; after 3 attempts the file is failed (at\n"
    "once for a path refused). Paths are checked against both roots (no '..', no link out).\n\n"
    "  --stage FILE...   stage these files first (products of --group G, if given)\n"
    "  --limit N         at most N files this run (default 100)\n"
    "  --json            the report as JSON: {claimed, published, retrying, failed}\n\n"
    "Exit 0 when every file claimed was published; 1 when one failed or waits for a retry;\n"
    "2 for a path outside the products directory or bad options; 3 without the database.";

int cmd_publish(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {
        {"stage", no_argument, NULL, 's'},       {"group", required_argument, NULL, 'g'},
        {"limit", required_argument, NULL, 'l'}, {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {0, 0, 0, 0}};
    bool stage = false, json = false;
    const char *group = NULL;
    long limit = 100;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': printf("%s\n", usage); return EXIT_OK;
        case 's': stage = true; break;
        case 'g': group = optarg; break;
        case 'j': json = true; break;
        case 'l':
            if (!cli_parse_long(optarg, 1, 1000000, &limit))
                return cli_usage_error("--limit must be 1..1000000, got '%s'", optarg);
            break;
        case ':': return cli_usage_error("publish: option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage_error("publish: unknown option '%s'; see --help", argv[optind - 1]);
        }
    }
    if (!stage && optind < argc)
        return cli_usage_error("publish: files are given with --stage; see --help");
    if (stage && optind == argc)
        return cli_usage_error("publish: --stage needs at least one FILE");
    if (cfg->archive_dir[0] == '\0')
        return cli_usage_error("publish: no archive configured (set CONTIMG_ARCHIVE_DIR)");
    cq_client *db;
    ct_err err;
    if (cli_connect(cfg, &db, &err) != CT_OK)
        return cli_report(&err);
    int code = EXIT_OK;
    for (int i = optind; stage && i < argc; i++) {
        const char *f = argv[i], *dot = strrchr(f, '.');
        size_t n = strlen(f);
        const char *kind = n > 13 && strcmp(f + n - 13, "-image-pb.fits") == 0 ? "pb"
                           : n > 11 && strcmp(f + n - 11, "-image.fits") == 0  ? "image"
                           : dot && strcmp(dot, ".csv") == 0                   ? "catalog"
                                                                               : "file";
        if (ct_publish_stage(db, cfg, group, kind, f, &err) != CT_OK) {
            code = cli_report(&err);
            break;
        }
    }
    json_t *report = NULL;
    char worker[128];
    cli_worker_id(worker, sizeof worker);
    if (code == EXIT_OK && ct_publish_run(db, cfg, worker, NULL, limit, &report, &err) != CT_OK)
        code = cli_report(&err);
    cq_disconnect(db);
    if (code != EXIT_OK)
        return code;
    size_t np = json_array_size(json_object_get(report, "published"));
    size_t nr = json_array_size(json_object_get(report, "retrying"));
    size_t nf = json_array_size(json_object_get(report, "failed"));
    if (json) {
        cli_print_json(report);
    } else {
        printf("%lld claimed: %zu published, %zu to retry, %zu failed\n",
               (long long)json_integer_value(json_object_get(report, "claimed")), np, nr, nf);
        const char *lists[2] = {"retrying", "failed"};
        for (int l = 0; l < 2; l++) {
            size_t i;
            json_t *e;
            json_array_foreach(json_object_get(report, lists[l]), i, e)
            {
                printf("%s %s: %s\n", l ? "failed" : "retry",
                       json_string_value(json_object_get(e, "src")),
                       json_string_value(json_object_get(e, "error")));
            }
        }
        json_decref(report);
    }
    return nr + nf > 0 ? EXIT_FAILURE_INTERNAL : EXIT_OK;
}
