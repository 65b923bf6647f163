/* groups.c -- see groups.h. */
#define _GNU_SOURCE
#include "groups.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

bool ct_subband_name_parse(const char *name, char timestamp[CT_TIMESTAMP_LEN + 1],
                           double *unix_time, int *subband, bool *incomplete)
{
    /* YYYY-MM-DDTHH:MM:SS_sbNN[_incomplete].hdf5 */
    static const char tail_done[] = ".hdf5", tail_busy[] = "_incomplete.hdf5";
    size_t len = strlen(name);
    if (len < CT_TIMESTAMP_LEN + 5 + sizeof tail_done - 1)
        return false;
    const char *t = name;
    if (!(digits(t, 4) && t[4] == '-' && digits(t + 5, 2) && t[7] == '-' && digits(t + 8, 2) &&
          t[10] == 'T' && digits(t + 11, 2) && t[13] == ':' && digits(t + 14, 2) && t[16] == ':' &&
          digits(t + 17, 2)))
        return false;
    const char *sb = name + CT_TIMESTAMP_LEN;
    if (strncmp(sb, "_sb", 3) != 0 || !digits(sb + 3, 2))
        return false;
    const char *rest = sb + 5;
    if (strcmp(rest, tail_done) == 0)
        *incomplete = false;
    else if (strcmp(rest, tail_busy) == 0)
        *incomplete = true;
    else
        return false;
    int s = (sb[3] - '0') * 10 + (sb[4] - '0');
    if (s >= CT_SUBBANDS)
        return false;
    struct tm tm = {0};
    tm.tm_year = atoi(t) - 1900;
    tm.tm_mon = atoi(t + 5) - 1;
    tm.tm_mday = atoi(t + 8);
    tm.tm_hour = atoi(t + 11);
    tm.tm_min = atoi(t + 14);
    tm.tm_sec = atoi(t + 17);
    if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return false;
    memcpy(timestamp, t, CT_TIMESTAMP_LEN);
    timestamp[CT_TIMESTAMP_LEN] = '\0';
    *unix_time = (double)timegm(&tm);
    *subband = s;
    return true;
}

static int by_time_then_subband(const void *a, const void *b)
{
    const ct_subband_file *x = a, *y = b;
    if (x->unix_time != y->unix_time)
        return x->unix_time < y->unix_time ? -1 : 1;
    if (x->subband != y->subband)
        return x->subband - y->subband;
    return strcmp(x->path, y->path);
}

/* Reads the subband files of dir into an array. */
static ct_code list_files(const char *dir, ct_subband_file **out, size_t *n, ct_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return ct_fail(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "cannot read directory %s: %s",
                       dir, strerror(errno));
    size_t cap = 64, count = 0;
    ct_subband_file *files = malloc(cap * sizeof *files);
    ct_code rc = files ? CT_OK : ct_fail(err, CT_ENOMEM, "out of memory");
    struct dirent *e;
    while (rc == CT_OK && (e = readdir(d)) != NULL) {
        ct_subband_file f = {0};
        if (!ct_subband_name_parse(e->d_name, f.timestamp, &f.unix_time, &f.subband, &f.incomplete))
            continue;
        if (count == cap) {
            ct_subband_file *grown = realloc(files, 2 * cap * sizeof *files);
            if (grown == NULL) {
                rc = ct_fail(err, CT_ENOMEM, "out of memory");
                break;
            }
            files = grown;
            cap *= 2;
        }
        if (asprintf(&f.path, "%s/%s", dir, e->d_name) < 0) {
            rc = ct_fail(err, CT_ENOMEM, "out of memory");
            break;
        }
        files[count++] = f;
    }
    closedir(d);
    if (rc != CT_OK) {
        for (size_t i = 0; i < count; i++)
            free(files[i].path);
        free(files);
        return rc;
    }
    qsort(files, count, sizeof *files, by_time_then_subband);
    *out = files;
    *n = count;
    return CT_OK;
}

/* Fills the per-subband view and problem masks of a group from its files. */
static void summarize(ct_group *g)
{
    int finished[CT_SUBBANDS] = {0};
    for (size_t i = 0; i < g->n_files; i++) {
        const ct_subband_file *f = &g->files[i];
        if (f->incomplete) {
            g->incomplete |= 1u << f->subband;
            continue;
        }
        if (finished[f->subband]++ == 0)
            g->subband[f->subband] = f;
    }
    for (int s = 0; s < CT_SUBBANDS; s++) {
        if (finished[s] == 0)
            g->missing |= 1u << s;
        if (finished[s] > 1) {
            g->duplicated |= 1u << s;
            g->subband[s] = NULL;
        }
    }
    const ct_subband_file *first = &g->files[0];
    for (size_t i = 0; i < g->n_files; i++)
        if (g->files[i].subband == 0 && !g->files[i].incomplete) {
            first = &g->files[i];
            break;
        }
    memcpy(g->id, first->timestamp, sizeof g->id);
    g->unix_time = first->unix_time;
}

ct_code ct_groups_scan(const char *dir, double tolerance_sec, ct_group **groups, size_t *n,
                       ct_err *err)
{
    *groups = NULL;
    *n = 0;
    if (!(tolerance_sec > 0))
        return ct_fail(err, CT_EINVAL, "grouping tolerance must be positive");
    ct_subband_file *files = NULL;
    size_t nf = 0;
    ct_code rc = list_files(dir, &files, &nf, err);
    if (rc != CT_OK)
        return rc;
    /* Files are in time order: a group takes every file that starts within
     * the tolerance of its first one. */
    ct_group *g = calloc(nf ? nf : 1, sizeof *g);
    if (g == NULL) {
        for (size_t i = 0; i < nf; i++)
            free(files[i].path);
        free(files);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    size_t ng = 0;
    for (size_t i = 0; i < nf;) {
        size_t j = i + 1;
        while (j < nf && files[j].unix_time - files[i].unix_time <= tolerance_sec)
            j++;
        g[ng].n_files = j - i;
        g[ng].files = malloc((j - i) * sizeof *g[ng].files);
        if (g[ng].files == NULL) {
            rc = ct_fail(err, CT_ENOMEM, "out of memory");
            break;
        }
        memcpy(g[ng].files, files + i, (j - i) * sizeof *files);
        for (size_t k = i; k < j; k++)
            files[k].path = NULL; /* moved into the group */
        summarize(&g[ng]);
        ng++;
        i = j;
    }
    for (size_t i = 0; i < nf; i++)
        free(files[i].path);
    free(files);
    if (rc != CT_OK) {
        ct_groups_free(g, ng);
        return rc;
    }
    *groups = g;
    *n = ng;
    return CT_OK;
}

void ct_groups_free(ct_group *groups, size_t n)
{
    for (size_t i = 0; groups != NULL && i < n; i++) {
        for (size_t k = 0; k < groups[i].n_files; k++)
            free(groups[i].files[k].path);
        free(groups[i].files);
    }
    free(groups);
}

bool ct_group_complete(const ct_group *g)
{
    return g->missing == 0 && g->duplicated == 0 && g->incomplete == 0;
}

/* Appends " sbNN" for each bit of mask after a label. */
static void append_mask(char *out, size_t size, const char *label, unsigned mask)
{
    if (mask == 0)
        return;
    size_t len = strlen(out);
    snprintf(out + len, size - len, "%s%s", len ? "; " : "", label);
    for (int s = 0; s < CT_SUBBANDS; s++) {
        if (mask & (1u << s)) {
            len = strlen(out);
            snprintf(out + len, size - len, " sb%02d", s);
        }
    }
}

void ct_group_problems(const ct_group *g, char *out, size_t size)
{
    out[0] = '\0';
    /* A subband still being written is not "missing": say it once. */
    append_mask(out, size, "missing", g->missing & ~g->incomplete);
    append_mask(out, size, "duplicated", g->duplicated);
    append_mask(out, size, "still being written", g->incomplete);
}
