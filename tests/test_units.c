/*
 * test_units.c -- pieces that need no database: names and ids, error
 * codes, configuration parsing, URL redaction, paths, embedded migrations,
 * imaging options (one set of bounds for the command line and the tasks).
 */
#define _GNU_SOURCE
#include "calibration.h"
#include "config.h"
#include "cron.h"
#include "database.h"
#include "fsutil.h"
#include "h5lzf.h"
#include "imaging.h"
#include "migrate.h"
#include "queue.h"
#include "testutil.h"

#include <jansson.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void test_uuid_and_names(void)
{
    CHECK(cq_uuid_valid("123e4567-e89b-12d3-a456-426614174000"), "canonical uuid");
    CHECK(cq_uuid_valid("123E4567-E89B-12D3-A456-426614174000"), "upper-case uuid");
    CHECK(!cq_uuid_valid("123e4567e89b12d3a456426614174000"), "no dashes");
    CHECK(!cq_uuid_valid("123e4567-e89b-12d3-a456-42661417400g"), "non-hex");
    CHECK(!cq_uuid_valid("not-a-uuid"), "garbage");
    CHECK(!cq_uuid_valid(NULL), "NULL");
    CHECK(cq_name_valid("dsa110-pipeline"), "seed queue");
    CHECK(cq_name_valid("convert-uvh5-to-ms"), "task name");
    CHECK(!cq_name_valid(""), "empty");
    CHECK(!cq_name_valid("-leading-dash"), "leading dash");
    CHECK(!cq_name_valid("bad queue!"), "space and bang");
    char long_name[200];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK(!cq_name_valid(long_name), "199 characters");
    long_name[127] = '\0';
    CHECK(cq_name_valid(long_name), "127 characters");
}

static void test_status_and_category(void)
{
    static const char *names[] = {"pending",   "claimed", "retrying",
                                  "completed", "failed",  "cancelled"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        cq_status s;
        CHECK(cq_status_parse(names[i], &s) == CT_OK && strcmp(cq_status_name(s), names[i]) == 0,
              "status %s round trip", names[i]);
    }
    cq_status s;
    CHECK(cq_status_parse("bogus", &s) == CT_EINVAL, "bogus status refused");
    ct_category cat;
    CHECK(ct_category_parse("corrupt_input", &cat) == CT_OK && cat == CT_CAT_CORRUPT_INPUT,
          "corrupt_input");
    CHECK(ct_category_parse("weird", &cat) == CT_EINVAL, "unknown category refused");
}

static void test_error_message_one_line(void)
{
    ct_err err;
    ct_fail(&err, CT_EDB, "first\nsecond\n");
    CHECK(strchr(err.msg, '\n') == NULL, "newlines removed: '%s'", err.msg);
    CHECK(strcmp(err.msg, "first second") == 0, "trailing blank trimmed: '%s'", err.msg);
    CHECK(err.code == CT_EDB, "code kept");
}

/* The category is the error's own field: the code's default, or what the
 * failing reader said, whatever the text. */
static void test_error_category(void)
{
    ct_err err;
    ct_fail(&err, CT_EINVAL, "corrupt input: looks damaged, but only in words");
    CHECK(err.category == CT_CAT_PERMANENT, "the text decides nothing: %s",
          ct_category_name(err.category));
    ct_fail(&err, CT_EDB, "x");
    CHECK(err.category == CT_CAT_TRANSIENT, "a database error is transient");
    ct_fail(&err, CT_ENOTFOUND, "x");
    CHECK(err.category == CT_CAT_PERMANENT, "a missing file is permanent");
    ct_fail_as(&err, CT_CAT_CORRUPT_INPUT, CT_EINVAL, "bad header");
    CHECK(err.category == CT_CAT_CORRUPT_INPUT && err.code == CT_EINVAL &&
              strcmp(err.msg, "bad header") == 0,
          "ct_fail_as: %s %s", ct_category_name(err.category), err.msg);
    ct_err_clear(&err);
    CHECK(err.code == CT_OK && err.msg[0] == '\0', "cleared");
}

/* A message cut at CT_ERRMSG_MAX in the middle of a multi-byte character
 * loses that character: the rest stays valid UTF-8 (JSON refuses less). */
static void test_error_message_utf8(void)
{
    /* "e" with an acute accent (2 bytes) and a CJK character (3 bytes),
     * repeated past the limit, at every offset of the cut. */
    for (int shift = 0; shift < 6; shift++) {
        char text[3 * CT_ERRMSG_MAX];
        size_t n = 0;
        for (int i = 0; i < shift; i++)
            text[n++] = 'a';
        while (n + 6 < sizeof text) {
            memcpy(text + n, "\xc3\xa9\xe6\x97\xa5", 5);
            n += 5;
        }
        text[n] = '\0';
        ct_err err;
        ct_fail(&err, CT_EINVAL, "%s", text);
        const size_t len = strlen(err.msg);
        /* Valid UTF-8: every lead byte followed by its continuation bytes. */
        int ok = len > CT_ERRMSG_MAX - 8 && len < CT_ERRMSG_MAX;
        for (size_t i = 0; ok && i < len;) {
            const unsigned char c = (unsigned char)err.msg[i];
            const size_t w = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
            ok = w > 0 && i + w <= len;
            for (size_t k = 1; ok && k < w; k++)
                ok = ((unsigned char)err.msg[i + k] & 0xC0) == 0x80;
            i += w ? w : 1;
        }
        CHECK(ok, "shift %d: a cut message of %zu bytes is valid UTF-8", shift, len);
    }
    /* Bytes that are not UTF-8 inside the text (a directory's name, another message cut
     * short in a smaller buffer, an overlong form, a surrogate) become '?', so the message
     * always goes into JSON: the engine's messages between ranks, the queue's results. */
    const struct {
        const char *in, *want;
    } cases[] = {
        {"dir \xff\xfe/x.hdf5: missing", "dir ?"
                                         "?/x.hdf5: missing"}, /* no trigraph */
        {"cut \xe6\x97: then more", "cut ??: then more"},
        {"overlong \xc0\xaf, surrogate \xed\xa0\x80", "overlong ??, surrogate ???"},
        {"fine \xc3\xa9\xe6\x97\xa5\xf0\x9f\x94\xad", "fine \xc3\xa9\xe6\x97\xa5\xf0\x9f\x94\xad"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_err err;
        ct_fail(&err, CT_EIO, "%s", cases[i].in);
        json_t *j = json_string(err.msg);
        CHECK(strcmp(err.msg, cases[i].want) == 0 && j != NULL, "case %zu: '%s' as JSON", i,
              err.msg);
        json_decref(j);
    }
}

/* One validator for imaging options: what params.config accepts and refuses
 * is what the command line does (both end in ct_image_opts_check), at the
 * edges where the two used to disagree. */
static void test_image_opts(void)
{
    static const struct {
        const char *json;
        int ok;
    } cases[] = {
        {"{}", 1},
        {"{\"pblimit\": 1}", 1},
        {"{\"pblimit\": 0}", 0},
        {"{\"epsilon\": 0.1}", 1},
        {"{\"epsilon\": 0.10001}", 0},
        {"{\"epsilon\": 1e-15}", 0},
        {"{\"size\": 4800, \"cell_arcsec\": 3, \"weight\": \"briggs\", \"robust\": 0.5}", 1},
        {"{\"size\": 511}", 0},
        {"{\"size\": 512.5}", 0},
        {"{\"cell_arcsec\": -3}", 0},
        {"{\"weight\": \"tapered\"}", 0},
        {"{\"slant\": \"off\", \"no_wterms\": true}", 1},
        {"{\"slant\": \"sideways\"}", 0},
        {"{\"robust\": 2.5}", 0},
        {"{\"niter\": -1}", 0},
        {"{\"gain\": 0}", 0},
        {"{\"mgain\": 1}", 1},
        {"{\"frobnicate\": 1}", 0},
        {"{\"size\": \"512\"}", 0},
        {"{\"successor\": true}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = json_loads(cases[i].json, 0, NULL);
        REQUIRE(j, "bad test JSON %s", cases[i].json);
        ct_image_opts o;
        ct_err err;
        ct_err_clear(&err);
        const int ok = ct_image_opts_from_json(j, &o, &err) == CT_OK;
        CHECK(ok == cases[i].ok, "%s: %s (%s)", cases[i].json, ok ? "accepted" : "refused",
              err.msg);
        /* The same options set by hand (the command line's road) meet the same check. */
        if (ok)
            CHECK(ct_image_opts_check(&o, &err) == CT_OK,
                  "%s: the check refuses what the "
                  "reader accepted: %s",
                  cases[i].json, err.msg);
        json_decref(j);
    }
    ct_image_opts o;
    ct_err err;
    json_t *j = json_loads("{\"successor\": true}", 0, NULL);
    CHECK(ct_image_opts_from_json(j, &o, &err) == CT_OK && o.size == 4800 && o.cell_arcsec == 3.0 &&
              o.min_uv_lambda == 1000.0,
          "successor's settings");
    json_decref(j);
}

/* The calibrator catalogue against the literature's round 1.4 GHz flux densities
 * (independent of the spectra's coefficients: a mistyped coefficient shows), and the
 * power law a model component makes of each spectrum against the spectrum itself
 * across DSA-110's band. */
static void test_calibrators(void)
{
    static const struct {
        const char *name;
        double s14;
    } lit[] = {{"3C48", 16.0},  {"3C138", 8.5},  {"3C147", 22.5},
               {"3C196", 14.0}, {"3C286", 14.9}, {"3C295", 22.1}};
    CHECK(ct_calibrator_count() == sizeof lit / sizeof lit[0], "six standards");
    for (size_t i = 0; i < sizeof lit / sizeof lit[0]; i++) {
        const ct_calibrator *c = ct_calibrator_find(lit[i].name);
        REQUIRE(c != NULL, "%s in the catalogue", lit[i].name);
        const double s = ct_calibrator_flux(c, 1.4e9);
        CHECK(fabs(s / lit[i].s14 - 1) < 0.04, "%s: %.3f Jy at 1.4 GHz (literature %.1f)", c->name,
              s, lit[i].s14);
        ct_source src;
        ct_calibrator_source(c, &src);
        for (double f = 1.28e9; f <= 1.48e9; f += 0.02e9) {
            const double law = src.flux_jy * pow(f / 1.4e9, src.spectral_index);
            CHECK(fabs(law / ct_calibrator_flux(c, f) - 1) < 2e-3,
                  "%s: the power law within 0.2 %% of the spectrum at %.2f GHz", c->name, f / 1e9);
        }
    }
    CHECK(ct_calibrator_find("3c147") == ct_calibrator_find("3C147") &&
              ct_calibrator_find("Cas A") == NULL,
          "names ignore case; an unknown one is NULL");
}

static void test_config(void)
{
    ct_config cfg;
    ct_err err;
    unsetenv("ABSURD_QUEUE_NAME");
    unsetenv("ABSURD_LEASE_SEC");
    setenv("ABSURD_HEARTBEAT_INTERVAL", "10", 1);
    CHECK_OK(ct_config_load(&cfg, &err), err);
    CHECK(strcmp(cfg.queue, "dsa110-pipeline") == 0, "default queue %s", cfg.queue);
    CHECK(cfg.lease_sec == 30, "lease defaults to 3 heartbeats: %g", cfg.lease_sec);
    CHECK(cfg.max_retries == 3 && cfg.task_timeout_sec == 3600, "seed defaults");
    setenv("ABSURD_MAX_RETRIES", "lots", 1);
    CHECK(ct_config_load(&cfg, &err) == CT_EINVAL && strstr(err.msg, "ABSURD_MAX_RETRIES"),
          "bad number names the variable: %s", err.msg);
    unsetenv("ABSURD_MAX_RETRIES");
    setenv("ABSURD_LEASE_SEC", "5", 1);
    CHECK(ct_config_load(&cfg, &err) == CT_EINVAL, "lease shorter than heartbeat refused");
    unsetenv("ABSURD_LEASE_SEC");
    unsetenv("ABSURD_HEARTBEAT_INTERVAL");
    setenv("ABSURD_DATABASE_URL", "postgresql://seed@host/db", 1);
    unsetenv("CONTIMG_DATABASE_URL");
    CHECK_OK(ct_config_load(&cfg, &err), err);
    CHECK(strcmp(cfg.database_url, "postgresql://seed@host/db") == 0, "seed's variable accepted");
    setenv("CONTIMG_DATABASE_URL", "postgresql://new@host/db", 1);
    CHECK_OK(ct_config_load(&cfg, &err), err);
    CHECK(strcmp(cfg.database_url, "postgresql://new@host/db") == 0, "CONTIMG_ wins");
    unsetenv("CONTIMG_DATABASE_URL");
    unsetenv("ABSURD_DATABASE_URL");

    /* Data roots: a colon-separated list; none set means anywhere. */
    const char *tmp[] = {"/tmp"}, *etc[] = {"/etc/hostname"};
    CHECK_OK(ct_config_load(&cfg, &err), err);
    CHECK_OK(ct_config_check_paths(&cfg, etc, 1, &err), err);
    setenv("CONTIMG_DATA_ROOTS", "/nonexistent-root:/tmp", 1);
    CHECK_OK(ct_config_load(&cfg, &err), err);
    CHECK_OK(ct_config_check_paths(&cfg, tmp, 1, &err), err);
    CHECK(ct_config_check_paths(&cfg, etc, 1, &err) == CT_EINVAL &&
              strstr(err.msg, "outside the configured data roots"),
          "outside the roots: %s", err.msg);
    unsetenv("CONTIMG_DATA_ROOTS");
}

static void test_describe_redacts(void)
{
    char out[1024];
    ct_db_describe("postgresql://alice:s3cret@db.example:5433/pipeline", out, sizeof out);
    CHECK(strstr(out, "s3cret") == NULL, "password removed: %s", out);
    CHECK(strcmp(out, "postgresql://alice@db.example:5433/pipeline") == 0, "url kept: %s", out);
    ct_db_describe("host='/tmp/x y' dbname=contimg user=contimg password=pw", out, sizeof out);
    CHECK(strstr(out, "pw") == NULL || strstr(out, "password") == NULL, "keyword form: %s", out);
    CHECK(strcmp(out, "postgresql:///contimg?host=%2Ftmp%2Fx%20y&user=contimg") == 0,
          "socket form: %s", out);
}

static void test_paths(void)
{
    char out[4096];
    ct_err err;
    CHECK_OK(ct_absolute_path("/a/./b/../c//d/", out, sizeof out, &err), err);
    CHECK(strcmp(out, "/a/c/d") == 0, "normalized: %s", out);
    CHECK_OK(ct_absolute_path("/..", out, sizeof out, &err), err);
    CHECK(strcmp(out, "/") == 0, "root: %s", out);

    /* A killed writer's temporaries: those of the output named, and only those, go -- also
     * when the prefix ends with the marker's own dot, as convert's "GROUP.hdf5." does. */
    char dir[] = "/tmp/ct-temps-XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    const char *names[] = {"X.hdf5", "X.hdf5.tmp-12-3", "X.hdf5.tmp-4", "Y.hdf5.tmp-12-3",
                           "X.hdf5.bak"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(out, sizeof out, "%s/%s", dir, names[i]);
        FILE *f = fopen(out, "w");
        CHECK(f != NULL, "create %s", out);
        if (f)
            fclose(f);
    }
    size_t removed = 0;
    CHECK_OK(ct_remove_stale_temps(dir, "X.hdf5.", &removed, &err), err);
    CHECK(removed == 2, "two temporaries of X.hdf5 removed, not %zu", removed);
    for (size_t i = 0; i < 5; i++) {
        snprintf(out, sizeof out, "%s/%s", dir, names[i]);
        const bool gone = access(out, F_OK) != 0;
        CHECK(gone == (i == 1 || i == 2), "%s %s", names[i], gone ? "removed" : "kept");
        unlink(out);
    }

    /* Outputs: inside the products directory, however the path or the disk tries to lead
     * out of it. */
    char root[200], buf[3][300];
    snprintf(root, sizeof root, "%s/products", dir);
    snprintf(buf[0], sizeof buf[0], "%s/products/vis/dir", dir);
    CHECK_OK(ct_mkdir_p(buf[0], 0755, &err), err);
    snprintf(buf[1], sizeof buf[1], "%s/products/vis/ours.hdf5", dir);
    FILE *f = fopen(buf[1], "w");
    if (f)
        fclose(f);
    snprintf(buf[2], sizeof buf[2], "%s/products/out", dir);
    CHECK(symlink("/tmp", buf[2]) == 0, "symlink");
    snprintf(buf[2], sizeof buf[2], "%s/products/vis/link.hdf5", dir);
    CHECK(symlink(buf[1], buf[2]) == 0, "symlink");
    const struct {
        const char *rel; /* under dir; NULL: the path as given */
        const char *abs;
        bool ok;
    } outs[] = {
        {"products/vis/new/x.hdf5", NULL, true},
        {"products/vis/ours.hdf5", NULL, true},    /* a rerun replaces its own file */
        {"products/images/G", NULL, true},         /* a prefix */
        {"products/vis/../../etc/x", NULL, false}, /* traversal */
        {"products/./vis/x", NULL, false},
        {"products/out/x.hdf5", NULL, false},    /* a link leads out */
        {"products/vis/link.hdf5", NULL, false}, /* a link stands where the file goes */
        {"products/vis/dir", NULL, false},       /* so does a directory */
        {"products", NULL, false},               /* the directory itself */
        {"elsewhere/x.hdf5", NULL, false},
        {NULL, "relative/x.hdf5", false},
        {NULL, "/etc/passwd", false},
    };
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        if (outs[i].rel)
            snprintf(out, sizeof out, "%s/%s", dir, outs[i].rel);
        else
            snprintf(out, sizeof out, "%s", outs[i].abs);
        const ct_code rc = ct_path_check_output(out, root, &err);
        CHECK((rc == CT_OK) == outs[i].ok, "output %s: %s", out, rc ? err.msg : "allowed");
    }
    /* Before the products directory is made, its own ancestors lead into it. */
    snprintf(root, sizeof root, "%s/new-products", dir);
    snprintf(out, sizeof out, "%s/new-products/vis/x.hdf5", dir);
    CHECK_OK(ct_path_check_output(out, root, &err), err);
    snprintf(out, sizeof out, "%s/products/x.hdf5", dir);
    CHECK(ct_path_check_output(out, root, &err) == CT_EINVAL, "a sibling is outside");
    snprintf(out, sizeof out, "rm -rf '%s'", dir);
    CHECK(system(out) == 0, "clean up");
}

static void test_migrations_embedded(void)
{
    CHECK(ct_migration_count >= 1, "at least one migration");
    for (size_t i = 0; i < ct_migration_count; i++) {
        CHECK(ct_migrations[i].version == (int)i + 1, "versions consecutive from 1: %s",
              ct_migrations[i].name);
        CHECK(strstr(ct_migrations[i].sql, ";") != NULL, "migration %s has SQL",
              ct_migrations[i].name);
    }
    CHECK(strstr(ct_migrations[0].sql, "CREATE TABLE absurd.tasks") != NULL,
          "0001 creates absurd.tasks");
}

static void test_lzf_decode(void)
{
    /* "abc" as a literal run, then 6 bytes from 3 back: the copy overlaps. */
    const unsigned char stream[] = {0x02, 'a', 'b', 'c', 0x80, 0x02};
    unsigned char out[32];
    size_t n = ct_lzf_decode(stream, sizeof stream, out, sizeof out);
    CHECK(n == 9 && memcmp(out, "abcabcabc", 9) == 0, "decoded %zu bytes", n);
    /* Long back-reference: length 7 + extra byte. 'x' then 7+3+2 = 12 more. */
    const unsigned char longref[] = {0x00, 'x', 0xE0, 0x03, 0x00};
    n = ct_lzf_decode(longref, sizeof longref, out, sizeof out);
    CHECK(n == 13 && memcmp(out, "xxxxxxxxxxxxx", 13) == 0, "long run %zu", n);
    const unsigned char before_start[] = {0x00, 'a', 0x20, 0x05};
    CHECK(ct_lzf_decode(before_start, sizeof before_start, out, sizeof out) == 0,
          "reference before the start refused");
    const unsigned char short_literal[] = {0x05, 'a', 'b'};
    CHECK(ct_lzf_decode(short_literal, sizeof short_literal, out, sizeof out) == 0,
          "truncated literal refused");
    CHECK(ct_lzf_decode(stream, sizeof stream, out, 5) == (size_t)-1, "full output reported");
}

/* Unix seconds of a UTC calendar time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

/* cron.h: the fields, names, steps, the either-day rule, leap days, what never comes. */
static void test_cron(void)
{
    const struct {
        const char *expr;
        int64_t after, want;
    } cases[] = {
        {"*/15 * * * *", 0, 15 * 60},
        {"*/15 * * * *", 15 * 60, 30 * 60}, /* strictly after */
        {"30 14 * * *", utc(2026, 12, 7, 14, 30), utc(2026, 12, 8, 14, 30)},
        {"@daily", utc(2026, 12, 31, 23, 59), utc(2027, 1, 1, 0, 0)},
        {"@hourly", utc(2026, 12, 7, 5, 0) + 59, utc(2026, 12, 7, 6, 0)},
        {"0 0 29 2 *", utc(2026, 3, 1, 0, 0), utc(2028, 2, 29, 0, 0)}, /* the next leap day */
        {"0 9 * jan-mar mon-fri", utc(2026, 12, 7, 0, 0), utc(2027, 1, 1, 9, 0)}, /* a Friday */
        {"0 0 13 * 5", utc(2026, 12, 7, 0, 0), utc(2026, 12, 11, 0, 0)},  /* Friday 11th ... */
        {"0 0 13 * 5", utc(2026, 12, 11, 0, 0), utc(2026, 12, 13, 0, 0)}, /* ... or the 13th */
        {"0 0 * * 7", utc(2026, 12, 7, 0, 0), utc(2026, 12, 13, 0, 0)},   /* 7 is Sunday */
        {"5/20 1-3 * * *", utc(2026, 12, 7, 3, 45), utc(2026, 12, 8, 1, 5)},
        {"0,30 12 1 */6 *", utc(2026, 7, 1, 12, 30), utc(2027, 1, 1, 12, 0)},
        /* "*" with a step leaves its day field unrestricted (Vixie): odd days AND Mondays */
        {"0 0 */2 * 1", utc(2026, 12, 7, 0, 0), utc(2026, 12, 21, 0, 0)},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_cron c;
        ct_err err;
        CHECK_OK(ct_cron_parse(cases[i].expr, &c, &err), err);
        const int64_t got = ct_cron_next(&c, cases[i].after);
        CHECK(got == cases[i].want, "'%s' after %lld: %lld, want %lld", cases[i].expr,
              (long long)cases[i].after, (long long)got, (long long)cases[i].want);
    }
    static const char *const bad[] = {
        "",           "* * * *",   "* * * * * *", "60 * * * *",  "* 24 * * *",  "* * 0 * *",
        "* * * 13 *", "* * * * 8", "*/0 * * * *", "5-1 * * * *", "* * * foo *", "@sometimes"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ct_cron c;
        ct_err err;
        CHECK(ct_cron_parse(bad[i], &c, &err) == CT_EINVAL, "'%s' refused", bad[i]);
    }
    ct_cron never;
    ct_err err;
    CHECK_OK(ct_cron_parse("0 0 30 2 *", &never, &err), err);
    CHECK(ct_cron_next(&never, 0) == -1, "February 30th never comes");
}

/* UTC times as the seed's params write them, and what is not one. */
static void test_time_parse(void)
{
    const struct {
        const char *s;
        double want;
    } good[] = {
        {"2026-12-07T14:30:00", (double)utc(2026, 12, 7, 14, 30)},
        {"2026-12-07 14:30:00", (double)utc(2026, 12, 7, 14, 30)},
        {"2026-12-07T14:30:00Z", (double)utc(2026, 12, 7, 14, 30)},
        {"2026-12-07T14:30:00+00:00", (double)utc(2026, 12, 7, 14, 30)},
        {"2026-12-07T14:30:12.25Z", (double)utc(2026, 12, 7, 14, 30) + 12.25},
        {"2028-02-29T00:00:00", (double)utc(2028, 2, 29, 0, 0)},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        double t = -1;
        CHECK(ct_time_parse_utc(good[i].s, &t) && t == good[i].want, "'%s' is %.2f, not %.2f",
              good[i].s, good[i].want, t);
    }
    const char *bad[] = {"",
                         "2026-12-07",
                         "2026-12-07T14:30",
                         "2026-12-07T14:30:00+01:00",
                         "2026-12-07T14:30:00 UTC",
                         "2026-12-07T14:30:00.",
                         "2026-13-07T14:30:00",
                         "yesterday",
                         NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double t;
        CHECK(!ct_time_parse_utc(bad[i], &t), "'%s' refused", bad[i] ? bad[i] : "NULL");
    }
}

int main(void)
{
    RUN(test_uuid_and_names);
    RUN(test_status_and_category);
    RUN(test_error_message_one_line);
    RUN(test_error_category);
    RUN(test_error_message_utf8);
    RUN(test_image_opts);
    RUN(test_calibrators);
    RUN(test_config);
    RUN(test_describe_redacts);
    RUN(test_paths);
    RUN(test_migrations_embedded);
    RUN(test_lzf_decode);
    RUN(test_cron);
    RUN(test_time_parse);
    return tu_finish();
}
