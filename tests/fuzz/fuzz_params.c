/* fuzz_params.c -- the parsers of what operators and database clients write: task params
 * as every stage admits them (ct_stage_admit, the seed's shapes included), a chains file,
 * imaging and mosaic options, cron expressions and UTC times. The first byte picks the
 * parser, the rest is its text. Refusals are expected; crashes, leaks and hangs are not.
 * Seeds: tests/fuzz/corpus/params. */
#include "chain.h"
#include "config.h"
#include "cron.h"
#include "fuzz.h"
#include "imaging.h"
#include "mosaic.h"
#include "stages.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ct_config cfg;
    static bool loaded;
    ct_err err;
    if (!loaded) {
        ct_config_load(&cfg, &err);
        loaded = true;
    }
    if (size < 1)
        return 0;
    const uint8_t which = data[0] % 4;
    char *text = malloc(size);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    if (which == 0 || which == 2) {
        json_t *j = json_loadb(text, size - 1, 0, NULL);
        if (which == 0) {
            for (const char *const *k = ct_stage_names(); j && *k; k++) {
                json_t *copy = json_deep_copy(j);
                char key[256];
                ct_stage_admit(*k, copy, &cfg, key, sizeof key, &err);
                json_decref(copy);
            }
        } else {
            ct_image_opts io;
            ct_mosaic_opts mo;
            ct_image_opts_from_json(j, &io, &err);
            ct_mosaic_opts_from_json(j, &mo, &err);
        }
        json_decref(j);
    } else if (which == 1) {
        const char *path = fuzz_scratch_file(data + 1, size - 1, ".json");
        ct_chains *chains = NULL;
        if (path && ct_chains_load(path, &chains, &err) == CT_OK) {
            const char *first = NULL;
            const json_t *config = NULL;
            ct_chain_first(chains, "quick", &first, &config, &err);
            ct_chains_free(chains);
        }
        if (path)
            unlink(path);
    } else {
        ct_cron c;
        double t;
        if (ct_cron_parse(text, &c, &err) == CT_OK)
            ct_cron_next(&c, 1796000000);
        ct_time_parse_utc(text, &t);
    }
    free(text);
    return 0;
}
