/*
 * test_units.c -- pieces that need no database: names and ids, error
 * codes, configuration parsing, URL redaction, paths, embedded migrations.
 */
#define _GNU_SOURCE
#include "config.h"
#include "database.h"
#include "fsutil.h"
#include "h5lzf.h"
#include "migrate.h"
#include "queue.h"
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    RUN(test_uuid_and_names);
    RUN(test_status_and_category);
    RUN(test_error_message_one_line);
    RUN(test_config);
    RUN(test_describe_redacts);
    RUN(test_paths);
    RUN(test_migrations_embedded);
    RUN(test_lzf_decode);
    return tu_finish();
}
