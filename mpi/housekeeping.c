/* housekeeping.c -- see housekeeping.h. */
#define _GNU_SOURCE
#include "housekeeping.h"
#include "science.h"

#include "imaging.h"
#include "products.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A file's modification time may lead its row's updated_at (written, renamed, then
 * committed) and the two clocks may differ: this much slack before "modified since". */
enum { MTIME_SLACK_SEC = 3600, KEPT_LISTED = 20 };

typedef struct hk_opts {
    double vis_days, image_days, log_days, max_missing;
    bool dry_run;
} hk_opts;

static ct_code get_opts(const json_t *params, const ct_config *cfg, hk_opts *o, ct_err *err)
{
    *o = (hk_opts){cfg->retain_vis_days, cfg->retain_image_days, cfg->retain_log_days, 0.5, false};
    const char *key;
    const json_t *v;
    json_object_foreach(json_object_get(params, "config"), key, v)
    {
        if (strcmp(key, "dry_run") == 0) {
            if (!json_is_boolean(v))
                return ct_fail(err, CT_EINVAL,
                               "housekeeping: config.dry_run must be true or false");
            o->dry_run = json_is_true(v);
            continue;
        }
        double *d = strcmp(key, "vis_days") == 0               ? &o->vis_days
                    : strcmp(key, "image_days") == 0           ? &o->image_days
                    : strcmp(key, "log_days") == 0             ? &o->log_days
                    : strcmp(key, "max_missing_fraction") == 0 ? &o->max_missing
                                                               : NULL;
        if (d == NULL)
            return ct_fail(err, CT_EINVAL,
                           "housekeeping: config.%s is not a setting (vis_days, image_days, "
                           "log_days, max_missing_fraction, dry_run)",
                           key);
        if (!json_is_number(v) || json_number_value(v) < 0 ||
            (d == &o->max_missing && json_number_value(v) > 1))
            return ct_fail(err, CT_EINVAL, "housekeeping: config.%s must be a number >= 0%s", key,
                           d == &o->max_missing ? " and <= 1" : "");
        *d = json_number_value(v);
    }
    return CT_OK;
}

ct_code ct_housekeeping_admit(json_t *params, const ct_config *cfg, ct_err *err)
{
    hk_opts o;
    return get_opts(params, cfg, &o, err);
}

ct_code ct_housekeeping_resolve(cq_client *db, const ct_config *cfg, json_t *params, ct_err *err)
{
    hk_opts o;
    ct_code rc = get_opts(params, cfg, &o, err);
    if (rc != CT_OK)
        return rc;
    json_t *days = json_pack("{s:f, s:f}", "visibilities", o.vis_days, "images", o.image_days);
    json_t *plan = NULL;
    rc = ct_products_retention_plan(db, days, &plan, err);
    json_decref(days);
    if (rc == CT_OK)
        json_object_set_new(params, "plan", plan);
    return rc;
}

/* Every file of a row past its retention: a visibility file and the copies a chain plans
 * beside it; an image, the files imaging wrote with it and validation's catalogue. */
static json_t *row_files(const json_t *row, const ct_config *cfg)
{
    const char *kind = json_string_value(json_object_get(row, "kind"));
    const char *key = json_string_value(json_object_get(row, "key"));
    const char *path = json_string_value(json_object_get(row, "path"));
    json_t *files = json_pack("[s]", path);
    static const char image_suffix[] = "-image.fits";
    const size_t n = strlen(path), ns = sizeof image_suffix - 1;
    if (strcmp(kind, "visibilities") == 0) {
        ct_stage_planned_vis_paths(key, cfg->products_dir, files);
    } else if (strcmp(kind, "images") == 0 && n > ns && strcmp(path + n - ns, image_suffix) == 0) {
        for (const char *const *s = ct_imaging_outputs; *s; s++) {
            char *f = NULL;
            if (asprintf(&f, "%.*s-%s", (int)(n - ns), path, *s) >= 0 && strcmp(f, path) != 0)
                json_array_append_new(files, json_string(f));
            free(f);
        }
        char *cat = NULL; /* validation's catalogue beside it (science.h), when there */
        if (asprintf(&cat, "%.*s" CT_SCIENCE_CATALOG_SUFFIX, (int)(n - ns), path) >= 0)
            json_array_append_new(files, json_string(cat));
        free(cat);
    }
    return files;
}

typedef enum { FILE_GONE, FILE_REMOVED, FILE_KEPT } file_fate;

/* Removes path when it is a regular file inside root (a real path; "" for none) modified
 * before cutoff (Unix seconds); *why says what kept it. */
static file_fate remove_old(const char *root, const char *path, double cutoff, bool dry,
                            long long *bytes, const char **why)
{
    struct stat st;
    *why = NULL;
    if (lstat(path, &st) != 0) {
        *why = errno == ENOENT ? NULL : strerror(errno);
        return errno == ENOENT ? FILE_GONE : FILE_KEPT;
    }
    char real[PATH_MAX];
    const size_t nroot = strlen(root);
    if (!S_ISREG(st.st_mode))
        *why = "not a regular file";
    else if ((double)st.st_mtime >= cutoff)
        *why = "modified since its row was written";
    else if (nroot == 0 || realpath(path, real) == NULL || strncmp(real, root, nroot) != 0 ||
             real[nroot] != '/')
        *why = "outside the products directory";
    else if (!dry && unlink(path) != 0 && errno != ENOENT)
        *why = strerror(errno);
    if (*why)
        return FILE_KEPT;
    *bytes += (long long)st.st_size;
    return FILE_REMOVED;
}

/* The regular files of dir older than days (not recursing); a missing dir has none. */
static void remove_old_logs(const char *dir, double days, bool dry, long *n, long long *bytes)
{
    DIR *d = days > 0 ? opendir(dir) : NULL;
    if (d == NULL)
        return;
    const double cutoff = (double)time(NULL) - days * 86400;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            (double)st.st_mtime >= cutoff)
            continue;
        if (dry || unlinkat(dirfd(d), e->d_name, 0) == 0) {
            (*n)++;
            *bytes += (long long)st.st_size;
        }
    }
    closedir(d);
}

static void bump(json_t *counts, const char *kind)
{
    json_object_set_new(counts, kind,
                        json_integer(json_integer_value(json_object_get(counts, kind)) + 1));
}

ct_code ct_housekeeping_run(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                            ct_stage_outcome *out, ct_err *err)
{
    (void)comm; /* one rank: the work is a walk over files, not worth sharing */
    hk_opts o;
    ct_code rc = get_opts(params, cfg, &o, err);
    if (rc != CT_OK)
        return rc;
    const json_t *plan = json_object_get(params, "plan");
    const json_t *rows = json_object_get(plan, "rows");
    if (!json_is_array(rows) || !json_is_number(json_object_get(plan, "as_of")))
        return ct_fail(err, CT_EINVAL,
                       "housekeeping: no params.plan (rank 0 resolves it from the products "
                       "tables before the task runs)");
    const double as_of = json_number_value(json_object_get(plan, "as_of"));
    const size_t n = json_array_size(rows);

    /* First every file the rows name that is not expiring: how many are gone. */
    size_t checked = 0, missing = 0;
    char *gone = calloc(n ? n : 1, 1);
    if (gone == NULL)
        return ct_fail(err, CT_ENOMEM, "housekeeping: out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(rows, i);
        struct stat st;
        if (json_is_true(json_object_get(row, "expired")))
            continue;
        checked++;
        if (lstat(json_string_value(json_object_get(row, "path")), &st) != 0 && errno == ENOENT)
            missing += (size_t)(gone[i] = 1);
    }
    if (missing > 3 && (double)missing > o.max_missing * (double)checked) {
        free(gone);
        return ct_fail_as(err, CT_CAT_PERMANENT, CT_ESTATE,
                          "housekeeping: the files of %zu of %zu products rows are missing, "
                          "more than max_missing_fraction %g: is the products disk mounted? "
                          "Nothing removed",
                          missing, checked, o.max_missing);
    }

    char root[PATH_MAX] = "";
    if (realpath(cfg->products_dir, root) == NULL)
        root[0] = '\0'; /* nothing is inside a products directory that is not there */
    json_t *done = json_array(), *expired = json_object(), *forgotten = json_object();
    json_t *kept = json_array();
    long files_removed = 0, logs_removed = 0;
    long long bytes = 0, log_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *row = json_array_get(rows, i);
        const char *kind = json_string_value(json_object_get(row, "kind"));
        json_t *entry = json_pack("{s:O, s:O, s:O}", "kind", json_object_get(row, "kind"), "key",
                                  json_object_get(row, "key"), "updated_at",
                                  json_object_get(row, "updated_at"));
        if (json_is_true(json_object_get(row, "expired"))) {
            const double days = strcmp(kind, "images") == 0 ? o.image_days : o.vis_days;
            json_t *files = row_files(row, cfg);
            bool all_gone = true;
            size_t j;
            json_t *f;
            json_array_foreach(files, j, f)
            {
                const char *because;
                file_fate fate =
                    remove_old(root, json_string_value(f), as_of - days * 86400 + MTIME_SLACK_SEC,
                               o.dry_run, &bytes, &because);
                files_removed += fate == FILE_REMOVED;
                if (fate == FILE_KEPT) {
                    all_gone = false;
                    if (json_array_size(kept) < KEPT_LISTED)
                        json_array_append_new(kept, json_pack("{s:s, s:O, s:s}", "kind", kind,
                                                              "path", f, "why", because));
                }
            }
            json_decref(files);
            if (all_gone) { /* every file gone: the row says so */
                char reason[96];
                snprintf(reason, sizeof reason, "retention: older than %g d", days);
                json_object_set_new(entry, "action", json_string("expire"));
                json_object_set_new(entry, "reason", json_string(reason));
                json_array_append(done, entry);
                bump(expired, kind);
            }
        } else if (gone[i]) {
            json_object_set_new(entry, "action", json_string("forget"));
            json_array_append(done, entry);
            bump(forgotten, kind);
        }
        json_decref(entry);
    }
    free(gone);
    remove_old_logs(cfg->logs_dir, o.log_days, o.dry_run, &logs_removed, &log_bytes);

    char message[200];
    size_t n_expired = 0, n_forgotten = 0;
    const char *k;
    json_t *v;
    json_object_foreach(expired, k, v) n_expired += (size_t)json_integer_value(v);
    json_object_foreach(forgotten, k, v) n_forgotten += (size_t)json_integer_value(v);
    snprintf(message, sizeof message,
             "%s%zu products rows expired, %zu stale rows removed, %ld files and %ld logs "
             "removed",
             o.dry_run ? "dry run: " : "", n_expired, n_forgotten, files_removed, logs_removed);
    json_t *metrics = json_pack(
        "{s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:b, s:{s:f, s:f, s:f}}", "expired", expired,
        "forgotten", forgotten, "files_removed", (json_int_t)files_removed, "bytes_removed",
        (json_int_t)bytes, "logs_removed", (json_int_t)logs_removed, "log_bytes_removed",
        (json_int_t)log_bytes, "rows_checked", (json_int_t)checked, "rows_missing",
        (json_int_t)missing, "kept", kept, "dry_run", o.dry_run, "retention_days", "visibilities",
        o.vis_days, "images", o.image_days, "logs", o.log_days);
    out->result = json_pack("{s:s, s:{}, s:s, s:[], s:o}", "status", "success", "outputs",
                            "message", message, "errors", "metrics", metrics);
    if (o.dry_run || json_array_size(done) == 0)
        json_decref(done);
    else
        out->products = json_pack("{s:o}", "retention", done);
    out->continue_chain = true;
    return CT_OK;
}
