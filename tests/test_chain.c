/*
 * test_chain.c -- the chains as configuration (chain.h), the engine's journal
 * (journal.h) on real files, the stages' failure categories and the params a
 * chain step hands to the next (stages.h).
 */
#define _GNU_SOURCE
#include "chain.h"
#include "fsutil.h"
#include "journal.h"
#include "stages.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

static void write_file(const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_builtin_chains(void)
{
    ct_chains *c = NULL;
    ct_err err;
    REQUIRE_OK(ct_chains_load(NULL, &c, &err), err);
    const char *next = NULL, *first = NULL;
    const json_t *cfg = NULL;
    CHECK_OK(ct_chain_first(c, "standard", &first, &cfg, &err), err);
    CHECK(first && strcmp(first, "convert-uvh5-to-ms") == 0, "standard starts with %s", first);
    CHECK_OK(ct_chain_next(c, "standard", "calibration-apply", &next, &cfg, &err), err);
    CHECK(next && strcmp(next, "imaging") == 0, "after calibration-apply: %s", next);
    CHECK(json_is_object(cfg) && json_object_size(cfg) == 0, "a plain step has config {}");
    CHECK_OK(ct_chain_next(c, "quick", "imaging", &next, NULL, &err), err);
    CHECK(next && strcmp(next, "create-mosaic") == 0, "create-mosaic follows imaging in quick");
    CHECK_OK(ct_chain_next(c, "quick", "create-mosaic", &next, NULL, &err), err);
    CHECK(next == NULL, "create-mosaic ends quick, got %s", next);
    /* Every built-in chain flags interference before anything uses the data. */
    const char *const names[] = {"standard", "quick", "calibrator", "target"};
    for (int i = 0; i < 4; i++) {
        CHECK_OK(ct_chain_next(c, names[i], "convert-uvh5-to-ms", &next, NULL, &err), err);
        CHECK(next && strcmp(next, "flag-rfi") == 0, "%s: convert -> %s", names[i], next);
    }
    CHECK_OK(ct_chain_next(c, "target", "flag-rfi", &next, NULL, &err), err);
    CHECK(next && strcmp(next, "calibration-apply") == 0, "target: flag-rfi -> %s", next);
    CHECK_OK(ct_chain_next(c, "quick", "flag-rfi", &next, NULL, &err), err);
    CHECK(next && strcmp(next, "imaging") == 0, "quick: flag-rfi -> %s", next);
    CHECK_OK(ct_chain_next(c, "target", "imaging", &next, NULL, &err), err);
    CHECK(next == NULL, "imaging ends target, got %s", next);
    CHECK(ct_chain_next(c, "quick", "photometry", &next, NULL, &err) == CT_ENOTFOUND,
          "a task not in the chain is not found");
    CHECK(ct_chain_first(c, "nosuch", &first, NULL, &err) == CT_ENOTFOUND &&
              strstr(err.msg, "nosuch"),
          "an unknown chain is named: %s", err.msg);
    ct_chains_free(c);
}

static void test_chains_file(void)
{
    char path[512];
    ct_chains *c = NULL;
    ct_err err;
    write_file("good.json",
               "{\"quick\": [\"convert-uvh5-to-ms\", {\"task\": \"imaging\", \"config\": "
               "{\"size\": 256}}]}",
               path, sizeof path);
    REQUIRE_OK(ct_chains_load(path, &c, &err), err);
    const char *next = NULL;
    const json_t *cfg = NULL;
    CHECK_OK(ct_chain_next(c, "quick", "convert-uvh5-to-ms", &next, &cfg, &err), err);
    CHECK(next && strcmp(next, "imaging") == 0 &&
              json_integer_value(json_object_get(cfg, "size")) == 256,
          "the step's config comes with it");
    CHECK(ct_chain_first(c, "standard", &next, NULL, &err) == CT_ENOTFOUND,
          "a file replaces the built-in chains");
    ct_chains_free(c);

    static const struct {
        const char *text, *expect;
    } bad[] = {
        {"[]", "non-empty JSON object"},
        {"{\"a\": []}", "non-empty array"},
        {"{\"a\": [\"x\", \"x\"]}", "twice"},
        {"{\"a\": [{\"config\": {}}]}", "task name"},
        {"{\"a\": [{\"task\": \"x\", \"config\": 3}]}", "config must be an object"},
        {"{\"a\": [\"x\"], \"a\": [\"y\"]}", "duplicate"},
        {"{not json", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_file("bad.json", bad[i].text, path, sizeof path);
        c = NULL;
        CHECK(ct_chains_load(path, &c, &err) == CT_EINVAL && c == NULL &&
                  strstr(err.msg, bad[i].expect) && strstr(err.msg, "bad.json"),
              "%s refused with \"%s\": %s", bad[i].text, bad[i].expect, err.msg);
    }
    snprintf(path, sizeof path, "%s/missing.json", dir);
    CHECK(ct_chains_load(path, &c, &err) == CT_ENOTFOUND, "a missing file: %s", err.msg);
}

static void test_journal(void)
{
    char jdir[300];
    snprintf(jdir, sizeof jdir, "%s/journal", dir);
    ct_journal *j = NULL;
    ct_err err;
    REQUIRE_OK(ct_journal_open(jdir, &j, &err), err);
    const char *ids[3] = {"00000000-0000-4000-8000-000000000003",
                          "00000000-0000-4000-8000-000000000001",
                          "00000000-0000-4000-8000-000000000002"};
    for (int i = 0; i < 3; i++) {
        json_t *e = json_pack("{s:s, s:s, s:i}", "task_id", ids[i], "kind", "commit", "n", i);
        CHECK_OK(ct_journal_write(j, ids[i], e, &err), err);
        json_decref(e);
        usleep(20000); /* distinct modification times: replay is oldest first */
    }
    char junk[512];
    write_file("journal/broken.json", "{\"no\": \"task id\"}", junk, sizeof junk);
    json_t *entries = NULL;
    REQUIRE_OK(ct_journal_entries(j, &entries, &err), err);
    CHECK(json_array_size(entries) == 3, "three entries, got %zu", json_array_size(entries));
    for (size_t i = 0; i < json_array_size(entries) && i < 3; i++)
        CHECK(json_integer_value(json_object_get(json_array_get(entries, i), "n")) == (int)i,
              "entry %zu in the order written", i);
    json_decref(entries);
    strcat(junk, ".bad");
    CHECK(access(junk, F_OK) == 0, "an unreadable entry is moved aside to .bad");
    CHECK_OK(ct_journal_remove(j, ids[1], &err), err);
    CHECK_OK(ct_journal_remove(j, ids[1], &err), err); /* twice is fine */
    REQUIRE_OK(ct_journal_entries(j, &entries, &err), err);
    CHECK(json_array_size(entries) == 2, "removed: two left");
    json_decref(entries);
    ct_journal_close(j);
}

static void test_stage_rules(void)
{
    ct_err e;
    /* The category is the error's field, set where the failure is known. */
    ct_fail_as(&e, CT_CAT_CORRUPT_INPUT, CT_EINVAL, "corrupt_input: sb05 is not HDF5");
    CHECK(ct_stage_category(&e) == CT_CAT_CORRUPT_INPUT, "damaged data: corrupt_input");
    ct_fail(&e, CT_EINVAL, "corrupt_input: only the words say so");
    CHECK(ct_stage_category(&e) == CT_CAT_PERMANENT, "the message text decides nothing");
    ct_fail(&e, CT_EINVAL, "inconsistent_group: times differ");
    CHECK(ct_stage_category(&e) == CT_CAT_PERMANENT, "bad input: permanent");
    ct_fail(&e, CT_ENOTFOUND, "no such file");
    CHECK(ct_stage_category(&e) == CT_CAT_PERMANENT, "missing input: permanent");
    ct_fail(&e, CT_EIO, "write failed: no space left");
    CHECK(ct_stage_category(&e) == CT_CAT_TRANSIENT, "I/O: transient");
    CHECK(ct_stage_known("imaging") && ct_stage_known("calibration-solve") &&
              !ct_stage_known("organize-files") && ct_stage_known("photometry"),
          "the engine claims only what it can run");

    const char *files[16];
    char names[16][64];
    for (int i = 0; i < 16; i++) {
        snprintf(names[i], sizeof names[i], "/in/2026-11-22T10:00:00_sb%02d.hdf5", i);
        files[i] = names[i];
    }
    json_t *p = ct_stage_convert_params("quick", NULL, "2026-11-22T10:00:00", files, "/prod");
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(p, "outputs"), "vis_path")),
                 "/prod/vis/2026-11-22T10:00:00.hdf5") == 0,
          "convert writes under the products directory");
    json_t *result = json_pack("{s:{s:s}}", "outputs", "vis_path", "/prod/vis/x.hdf5");
    json_t *cfg = json_pack("{s:i}", "size", 256);
    json_t *n = ct_stage_next_params("imaging", p, result, cfg, "/prod");
    json_t *in = json_object_get(n, "inputs");
    CHECK(strcmp(json_string_value(json_object_get(in, "vis_path")), "/prod/vis/x.hdf5") == 0 &&
              strcmp(json_string_value(json_object_get(in, "group_id")), "2026-11-22T10:00:00") ==
                  0,
          "imaging's inputs are convert's outputs and the group");
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(n, "outputs"), "image_prefix")),
                 "/prod/images/2026-11-22T10:00:00") == 0,
          "imaging's outputs are planned by group");
    CHECK(json_integer_value(json_object_get(json_object_get(n, "config"), "size")) == 256 &&
              strcmp(json_string_value(json_object_get(n, "chain")), "quick") == 0,
          "the step's config and the chain travel on");
    json_decref(n);

    /* The stage table: every kind the engine claims has a row, and a chain's
     * next step is spawned from it without the engine naming a stage. */
    for (const char *const *k = ct_stage_names(); *k; k++) {
        const ct_stage *st = ct_stage_find(*k);
        CHECK(st && st->run && st->max_ranks >= 1 && strcmp(st->name, *k) == 0, "row for %s", *k);
    }
    CHECK(ct_stage_max_ranks("noop") == 1 && ct_stage_max_ranks("imaging") > 1 &&
              ct_stage_max_ranks("calibration-solve") > 1 &&
              ct_stage_max_ranks("calibration-apply") > 1 &&
              ct_stage_find("organize-files") == NULL &&
              ct_stage_find("calibration-apply")->resolve != NULL,
          "ranks per kind; no row for a kind no stage runs");
    ct_stage_follow f = {"imaging", "quick", "11111111-1111-1111-1111-111111111111", p, result,
                         cfg,       "/prod"};
    json_t *sp = ct_stage_follow_spawns(&f, &e);
    CHECK(
        sp && strcmp(json_string_value(json_object_get(sp, "name")), "imaging") == 0 &&
            strcmp(json_string_value(json_object_get(sp, "idempotency_key")),
                   "quick:2026-11-22T10:00:00:imaging") == 0 &&
            strcmp(json_string_value(json_array_get(json_object_get(sp, "depends_on"), 0)),
                   f.task_id) == 0 &&
            strcmp(json_string_value(json_object_get(
                       json_object_get(json_object_get(sp, "params"), "outputs"), "image_prefix")),
                   "/prod/images/2026-11-22T10:00:00") == 0,
        "imaging follows as one task, keyed by chain, group and kind");
    json_decref(sp);
    json_t *mcfg = json_pack("{s:s, s:i}", "tier", "quicklook", "images_per_mosaic", 4);
    f.next = "create-mosaic";
    f.step_config = mcfg;
    sp = ct_stage_follow_spawns(&f, &e);
    CHECK(sp && json_is_object(json_object_get(sp, "mosaic")) &&
              strcmp(json_string_value(json_object_get(json_object_get(sp, "mosaic"), "out_dir")),
                     "/prod/mosaics") == 0 &&
              json_integer_value(json_object_get(json_object_get(sp, "mosaic"), "per_mosaic")) == 4,
          "a mosaic follows through the planner");
    json_decref(sp);
    json_object_set_new(mcfg, "tier", json_string("bogus"));
    CHECK(ct_stage_follow_spawns(&f, &e) == NULL && e.code == CT_EINVAL,
          "a step config the planner refuses: %s", e.msg);
    f.next = "organize-files";
    CHECK(ct_stage_follow_spawns(&f, &e) == NULL && e.code == CT_EINVAL, "a kind no stage runs: %s",
          e.msg);
    json_decref(mcfg);
    json_decref(cfg);
    json_decref(result);
    json_decref(p);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_chain.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 2;
    RUN(test_builtin_chains);
    RUN(test_chains_file);
    RUN(test_journal);
    RUN(test_stage_rules);
    ct_remove_tree(dir, NULL);
    return tu_finish();
}
