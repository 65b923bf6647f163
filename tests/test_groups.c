/*
 * test_groups.c -- subband group discovery and the data-root guard, on real
 * files in a temporary directory.
 */
#define _GNU_SOURCE
#include "fsutil.h"
#include "groups.h"
#include "testutil.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[256];

/* Creates DIR/<timestamp of base+offset>_sbNN[_incomplete].hdf5. */
static void touch(time_t base, int offset, int sb, bool incomplete)
{
    time_t t = base + offset;
    struct tm tm;
    gmtime_r(&t, &tm);
    char ts[32], path[512];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(path, sizeof path, "%s/%s_sb%02d%s.hdf5", dir, ts, sb,
             incomplete ? "_incomplete" : "");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0)
        close(fd);
}

static void fresh_dir(void)
{
    if (dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cleanup of %s failed\n", dir);
    }
    snprintf(dir, sizeof dir, "/tmp/contimg-groups-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
}

static const time_t base = 1795771200; /* 2026-11-27T09:20:00Z */

static void test_name_parsing(void)
{
    char ts[CT_TIMESTAMP_LEN + 1];
    double t;
    int sb;
    bool inc;
    CHECK(ct_subband_name_parse("2026-11-22T10:00:05_sb07.hdf5", ts, &t, &sb, &inc) && sb == 7 &&
              !inc && strcmp(ts, "2026-11-22T10:00:05") == 0,
          "plain name");
    CHECK(t == 1795341605.0, "timestamp read as UTC: %.0f", t);
    CHECK(ct_subband_name_parse("2026-11-22T10:00:05_sb15_incomplete.hdf5", ts, &t, &sb, &inc) &&
              sb == 15 && inc,
          "incomplete name");
    const char *bad[] = {"2026-11-22T10:00:05_sb16.hdf5",     "2026-11-22T10:00:05_sb7.hdf5",
                         "2026-11-22 10:00:05_sb07.hdf5",     "2026-11-22T10:00:05_sb07.h5",
                         "2026-13-22T10:00:05_sb07.hdf5",     "README.txt",
                         "2026-11-22T10:00:05_sb07.hdf5.tmp", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(!ct_subband_name_parse(bad[i], ts, &t, &sb, &inc), "rejects '%s'", bad[i]);
}

static void test_complete_groups_with_staggered_writers(void)
{
    fresh_dir();
    /* Observation 1: writers start within 3 s, sb05 first, sb00 at +2 s. */
    for (int sb = 0; sb < 16; sb++)
        touch(base, sb == 5 ? 0 : (sb == 0 ? 2 : sb % 4), sb, false);
    /* Observation 2, ~309 s later. */
    for (int sb = 0; sb < 16; sb++)
        touch(base + 309, sb % 2, sb, false);
    touch(base, 3, 3, false); /* the same name again: still one file */
    char other[300];
    snprintf(other, sizeof other, "%s/notes.txt", dir);
    close(open(other, O_WRONLY | O_CREAT, 0644));
    ct_group *g = NULL;
    size_t n = 0;
    ct_err err;
    REQUIRE_OK(ct_groups_scan(dir, 60, &g, &n, &err), err);
    REQUIRE(n == 2, "two groups (%zu)", n);
    for (size_t i = 0; i < n; i++) {
        char why[256];
        ct_group_problems(&g[i], why, sizeof why);
        CHECK(ct_group_complete(&g[i]), "group %zu complete (%s)", i, why);
        CHECK(g[i].n_files == 16, "16 files (%zu)", g[i].n_files);
        for (int sb = 0; sb < 16; sb++)
            CHECK(g[i].subband[sb] && g[i].subband[sb]->subband == sb, "sb%02d present", sb);
    }
    char expect[32];
    time_t t0 = base + 2;
    struct tm tm;
    gmtime_r(&t0, &tm);
    strftime(expect, sizeof expect, "%Y-%m-%dT%H:%M:%S", &tm);
    CHECK(strcmp(g[0].id, expect) == 0, "group id is sb00's timestamp %s (got %s)", expect,
          g[0].id);
    CHECK(g[1].unix_time > g[0].unix_time, "oldest first");
    ct_groups_free(g, n);
}

static void test_problems_reported(void)
{
    fresh_dir();
    for (int sb = 0; sb < 16; sb++) {
        if (sb == 7)
            continue;                 /* missing */
        touch(base, 0, sb, sb == 15); /* sb15 still being written */
    }
    touch(base, 2, 1, false); /* a second sb01 */
    ct_group *g = NULL;
    size_t n = 0;
    ct_err err;
    REQUIRE_OK(ct_groups_scan(dir, 60, &g, &n, &err), err);
    REQUIRE(n == 1, "one group (%zu)", n);
    CHECK(!ct_group_complete(&g[0]), "not complete");
    CHECK(g[0].missing == ((1u << 7) | (1u << 15)), "missing mask %#x", g[0].missing);
    CHECK(g[0].duplicated == (1u << 1), "duplicated mask %#x", g[0].duplicated);
    CHECK(g[0].incomplete == (1u << 15), "incomplete mask %#x", g[0].incomplete);
    CHECK(g[0].subband[1] == NULL, "a duplicated subband has no chosen file");
    char why[256];
    ct_group_problems(&g[0], why, sizeof why);
    CHECK(strcmp(why, "missing sb07; duplicated sb01; still being written sb15") == 0,
          "problems line: '%s'", why);
    ct_groups_free(g, n);
}

static void test_tolerance_boundary(void)
{
    fresh_dir();
    touch(base, 0, 0, false);
    touch(base, 60, 1, false); /* exactly at the tolerance: same group */
    touch(base, 61, 2, false); /* past it: next group */
    ct_group *g = NULL;
    size_t n = 0;
    ct_err err;
    REQUIRE_OK(ct_groups_scan(dir, 60, &g, &n, &err), err);
    CHECK(n == 2 && g[0].n_files == 2 && g[1].n_files == 1, "split at 60 s (%zu groups)", n);
    ct_groups_free(g, n);
    REQUIRE_OK(ct_groups_scan(dir, 120, &g, &n, &err), err);
    CHECK(n == 1 && g[0].n_files == 3, "one group at 120 s tolerance (%zu)", n);
    ct_groups_free(g, n);
    CHECK(ct_groups_scan(dir, 0, &g, &n, &err) == CT_EINVAL, "zero tolerance refused");
    CHECK(ct_groups_scan("/nonexistent/contimg", 60, &g, &n, &err) == CT_ENOTFOUND,
          "missing directory: not found");
}

static void test_data_roots(void)
{
    fresh_dir();
    char root[300], inside[400], outside_dir[300], outside[400], link[400], sub[320];
    snprintf(root, sizeof root, "%s/incoming", dir);
    snprintf(sub, sizeof sub, "%s/2026", root);
    snprintf(outside_dir, sizeof outside_dir, "%s/private", dir);
    mkdir(root, 0755);
    mkdir(sub, 0755);
    mkdir(outside_dir, 0755);
    snprintf(inside, sizeof inside, "%s/a.hdf5", sub);
    snprintf(outside, sizeof outside, "%s/secret.hdf5", outside_dir);
    close(open(inside, O_WRONLY | O_CREAT, 0644));
    close(open(outside, O_WRONLY | O_CREAT, 0644));
    snprintf(link, sizeof link, "%s/escape.hdf5", root);
    CHECK(symlink(outside, link) == 0, "symlink made");
    const char *roots[] = {"/nonexistent-root", root};
    ct_err err;
    CHECK_OK(ct_path_check_roots(inside, roots, 2, &err), err);
    char traversal[500];
    snprintf(traversal, sizeof traversal, "%s/2026/../../private/secret.hdf5", root);
    CHECK(ct_path_check_roots(traversal, roots, 2, &err) == CT_EINVAL &&
              strstr(err.msg, "outside the configured data roots"),
          "'..' traversal refused: %s", err.msg);
    CHECK(ct_path_check_roots(link, roots, 2, &err) == CT_EINVAL, "symlink escape refused");
    char sibling[400];
    snprintf(sibling, sizeof sibling, "%s-evil", root); /* prefix but not inside */
    mkdir(sibling, 0755);
    CHECK(ct_path_check_roots(sibling, roots, 2, &err) == CT_EINVAL, "prefix-only sibling refused");
    snprintf(traversal, sizeof traversal, "%s/nope.hdf5", root);
    CHECK(ct_path_check_roots(traversal, roots, 2, &err) == CT_ENOTFOUND, "missing file");
}

int main(void)
{
    RUN(test_name_parsing);
    RUN(test_complete_groups_with_staggered_writers);
    RUN(test_problems_reported);
    RUN(test_tolerance_boundary);
    RUN(test_data_roots);
    fresh_dir(); /* removes the last one... */
    rmdir(dir);  /* ...and the new empty one */
    return tu_finish();
}
