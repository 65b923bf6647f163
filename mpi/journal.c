/* journal.c -- see journal.h. */
#define _GNU_SOURCE
#include "journal.h"

#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct ct_journal {
    char dir[4096];
};

ct_code ct_journal_open(const char *dir, ct_journal **out, ct_err *err)
{
    *out = NULL;
    ct_journal *j = calloc(1, sizeof *j);
    if (j == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    if (snprintf(j->dir, sizeof j->dir, "%s", dir) >= (int)sizeof j->dir) {
        free(j);
        return ct_fail(err, CT_EINVAL, "journal path too long: %s", dir);
    }
    ct_code rc = ct_mkdir_p(dir, 0700, err);
    if (rc != CT_OK) {
        free(j);
        return rc;
    }
    *out = j;
    return CT_OK;
}

void ct_journal_close(ct_journal *j)
{
    free(j);
}

static void entry_path(const ct_journal *j, const char *task_id, const char *suffix, char *out,
                       size_t size)
{
    snprintf(out, size, "%s/%s.json%s", j->dir, task_id, suffix);
}

ct_code ct_journal_write(ct_journal *j, const char *task_id, const json_t *entry, ct_err *err)
{
    char path[4200], tmp[4300];
    entry_path(j, task_id, "", path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    char *text = json_dumps(entry, JSON_COMPACT);
    if (text == NULL)
        return ct_fail(err, CT_ENOMEM, "could not encode the journal entry");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text), done = 0;
    while (fd >= 0 && done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    free(text);
    bool ok = fd >= 0 && done == len && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        ct_code rc =
            ct_fail(err, CT_EIO, "cannot write journal entry %s: %s", path, strerror(errno));
        unlink(tmp);
        return rc;
    }
    ct_fsync_parent(path);
    return CT_OK;
}

ct_code ct_journal_remove(ct_journal *j, const char *task_id, ct_err *err)
{
    char path[4200];
    entry_path(j, task_id, "", path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT)
        return ct_fail(err, CT_EIO, "cannot remove journal entry %s: %s", path, strerror(errno));
    ct_fsync_parent(path);
    return CT_OK;
}

typedef struct named_mtime {
    char name[256];
    struct timespec mtime;
} named_mtime;

static int by_mtime(const void *a, const void *b)
{
    const named_mtime *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

ct_code ct_journal_entries(ct_journal *j, json_t **entries, ct_err *err)
{
    *entries = NULL;
    DIR *d = opendir(j->dir);
    if (d == NULL)
        return ct_fail(err, CT_EIO, "cannot list journal %s: %s", j->dir, strerror(errno));
    named_mtime *list = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t len = strlen(e->d_name);
        if (len < 6 || len >= sizeof list->name || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        char path[4400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", j->dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            named_mtime *grown = realloc(list, cap * sizeof *list);
            if (grown == NULL) {
                free(list);
                closedir(d);
                return ct_fail(err, CT_ENOMEM, "out of memory");
            }
            list = grown;
        }
        memcpy(list[n].name, e->d_name, len + 1);
        list[n++].mtime = st.st_mtim;
    }
    closedir(d);
    if (n > 1)
        qsort(list, n, sizeof *list, by_mtime);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", j->dir, list[i].name);
        json_error_t jerr;
        json_t *entry = json_load_file(path, 0, &jerr);
        if (entry == NULL || !json_is_string(json_object_get(entry, "task_id"))) {
            char bad[4500];
            snprintf(bad, sizeof bad, "%s.bad", path);
            fprintf(stderr, "contimg: journal entry %s is unreadable (%s); moved to %s\n", path,
                    entry ? "no task_id" : jerr.text, bad);
            rename(path, bad);
            json_decref(entry);
            continue;
        }
        json_array_append_new(arr, entry);
    }
    free(list);
    *entries = arr;
    return CT_OK;
}
