/* publisher.c -- see publisher.h. */
#define _GNU_SOURCE
#include "publisher.h"

#include "fsutil.h"
#include "mpiutil.h"
#include "products.h"
#include "publish.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STALE_SEC   600.0
#define BACKOFF_SEC 10.0

ct_code ct_publish_dest(const ct_config *cfg, const char *src, char *dest, size_t size, ct_err *err)
{
    if (cfg->archive_dir[0] == '\0')
        return ct_fail(err, CT_EINVAL, "no archive configured (CONTIMG_ARCHIVE_DIR)");
    size_t n = strlen(cfg->products_dir);
    while (n > 1 && cfg->products_dir[n - 1] == '/')
        n--;
    if (strncmp(src, cfg->products_dir, n) != 0 || src[n] != '/' || src[n + 1] == '\0')
        return ct_fail(err, CT_EINVAL, "publish: %s is not under the products directory %s", src,
                       cfg->products_dir);
    if (snprintf(dest, size, "%s%s", cfg->archive_dir, src + n) >= (int)size)
        return ct_fail(err, CT_EINVAL, "publish: archive path too long for %s", src);
    return CT_OK;
}

ct_code ct_publish_stage(cq_client *db, const ct_config *cfg, const char *group, const char *kind,
                         const char *src, ct_err *err)
{
    char dest[CT_PATH_MAX + 64];
    ct_code rc = ct_publish_dest(cfg, src, dest, sizeof dest, err);
    json_t *row = NULL;
    if (rc == CT_OK)
        rc = ct_products_stage_publication(db, src, dest, kind, group, 3, &row, err);
    json_decref(row);
    return rc;
}

ct_code ct_publish_run(cq_client *db, const ct_config *cfg, const char *worker, const json_t *srcs,
                       long limit, json_t **report, ct_err *err)
{
    *report = NULL;
    json_t *rows = NULL;
    ct_code rc = ct_products_claim_publications(db, worker, limit, srcs, STALE_SEC, &rows, err);
    if (rc != CT_OK)
        return rc;
    json_t *published = json_array(), *retrying = json_array(), *failed = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *src = json_string_value(json_object_get(row, "src_path"));
        const char *dest = json_string_value(json_object_get(row, "dest_path"));
        long long bytes = -1;
        ct_err why;
        ct_err_clear(&why);
        /* Both roots as configured now: a row written by anyone is checked again. */
        ct_code mv = src && dest ? ct_publish_file(src, dest, cfg->products_dir, cfg->archive_dir,
                                                   &bytes, &why)
                                 : ct_fail(&why, CT_EINVAL, "a publication row without paths");
        char status[32];
        /* A path refused is final; the file system's trouble is worth another try. */
        rc = ct_products_finish_publication(db, src ? src : "", worker,
                                            mv == CT_OK ? NULL : why.msg, bytes, BACKOFF_SEC,
                                            mv == CT_EINVAL, status, sizeof status, err);
        if (rc != CT_OK)
            break;
        json_t *entry =
            json_pack("{s:s, s:s, s:I}", "src", src ? src : "", "error", mv == CT_OK ? "" : why.msg,
                      "attempts", json_integer_value(json_object_get(row, "attempts")));
        if (strcmp(status, "published") == 0)
            json_array_append_new(published, json_string(src));
        else
            json_array_append_new(strcmp(status, "failed") == 0 ? failed : retrying, entry),
                entry = NULL;
        json_decref(entry);
    }
    if (rc == CT_OK)
        *report = json_pack("{s:I, s:o, s:o, s:o}", "claimed", (json_int_t)json_array_size(rows),
                            "published", published, "retrying", retrying, "failed", failed);
    else
        json_decref(published), json_decref(retrying), json_decref(failed);
    json_decref(rows);
    return rc;
}

/* --- The stage ------------------------------------------------------------------------------ */

static const char *const file_keys[] = {"image_path", "pb_path", "catalog_path"};

ct_code ct_publish_resolve(cq_client *db, const ct_config *cfg, json_t *params, ct_err *err)
{
    if (cfg->archive_dir[0] == '\0')
        return CT_OK; /* the run says so */
    const json_t *in = json_object_get(params, "inputs");
    const char *group = json_string_value(json_object_get(in, "group_id"));
    json_t *srcs = json_array();
    json_t *report = json_pack("{s:I, s:[], s:[], s:[]}", "claimed", (json_int_t)0, "published",
                               "retrying", "failed");
    ct_code rc = CT_OK;
    json_t *already = json_object_get(report, "published");
    for (size_t i = 0; i < sizeof file_keys / sizeof file_keys[0] && rc == CT_OK; i++) {
        const char *src = json_string_value(json_object_get(in, file_keys[i]));
        if (src == NULL || src[0] == '\0')
            continue;
        char dest[CT_PATH_MAX + 64], kind[32];
        snprintf(kind, sizeof kind, "%.*s", (int)(strlen(file_keys[i]) - 5), file_keys[i]);
        json_t *row = NULL;
        if ((rc = ct_publish_dest(cfg, src, dest, sizeof dest, err)) == CT_OK)
            rc = ct_products_stage_publication(db, src, dest, kind, group, 3, &row, err);
        const char *st = json_string_value(json_object_get(row, "status"));
        if (rc == CT_OK && st && strcmp(st, "published") == 0)
            json_array_append_new(already, json_string(src));
        else if (rc == CT_OK)
            json_array_append_new(srcs, json_string(src));
        json_decref(row);
    }
    if (rc == CT_OK && json_array_size(srcs) > 0) {
        char worker[128], host[64] = "?";
        gethostname(host, sizeof host - 1);
        snprintf(worker, sizeof worker, "publish:%s:%ld", host, (long)getpid());
        json_t *now = NULL;
        rc = ct_publish_run(db, cfg, worker, srcs, (long)json_array_size(srcs), &now, err);
        if (rc == CT_OK) {
            json_array_extend(already, json_object_get(now, "published"));
            json_array_extend(json_object_get(report, "retrying"),
                              json_object_get(now, "retrying"));
            json_array_extend(json_object_get(report, "failed"), json_object_get(now, "failed"));
            json_object_set(report, "claimed", json_object_get(now, "claimed"));
            /* Staged but not claimed: another publisher holds them, or they wait for their
             * next attempt. Either way not done yet. */
            size_t k;
            json_t *s;
            json_array_foreach(srcs, k, s)
            {
                bool seen = false;
                const char *lists[] = {"published", "retrying", "failed"};
                for (int l = 0; l < 3 && !seen; l++) {
                    size_t j;
                    json_t *e;
                    json_array_foreach(json_object_get(now, lists[l]), j, e)
                    {
                        const char *p = json_is_string(e)
                                            ? json_string_value(e)
                                            : json_string_value(json_object_get(e, "src"));
                        seen |= p && strcmp(p, json_string_value(s)) == 0;
                    }
                }
                if (!seen)
                    json_array_append_new(json_object_get(report, "retrying"),
                                          json_pack("{s:O, s:s, s:i}", "src", s, "error",
                                                    "waiting: claimed by another publisher or "
                                                    "its next attempt not yet due",
                                                    "attempts", 0));
            }
        }
        json_decref(now);
    }
    json_decref(srcs);
    if (rc == CT_OK)
        json_object_set_new(params, "publish", report);
    else
        json_decref(report);
    return rc;
}

ct_code ct_publish_stage_run(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                             ct_stage_outcome *out, ct_err *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    ct_code rc = CT_OK;
    if (rank == 0) {
        const json_t *report = json_object_get(params, "publish");
        json_t *outputs = json_object();
        json_object_update(outputs, json_object_get(params, "inputs"));
        json_object_del(outputs, "group_id");
        if (cfg->archive_dir[0] == '\0' || report == NULL) {
            out->result = ct_stage_result_new("no archive configured (CONTIMG_ARCHIVE_DIR unset): "
                                              "nothing published",
                                              outputs, json_object());
            out->continue_chain = true;
        } else {
            size_t nr = json_array_size(json_object_get(report, "retrying"));
            size_t nf = json_array_size(json_object_get(report, "failed"));
            size_t np = json_array_size(json_object_get(report, "published"));
            if (nr > 0) {
                json_decref(outputs);
                const char *first = json_string_value(json_object_get(
                    json_array_get(json_object_get(report, "retrying"), 0), "error"));
                rc = ct_fail_as(err, CT_CAT_TRANSIENT, CT_EIO,
                                "publish: %zu file(s) to retry (%zu published): %s", nr, np,
                                first ? first : "");
            } else {
                char msg[160];
                snprintf(msg, sizeof msg, "%zu file(s) published%s", np,
                         nf ? "; some failed after every attempt" : "");
                out->result = ct_stage_result_new(msg, outputs, json_deep_copy(report));
                if (nf > 0)
                    json_object_set_new(out->result, "status", json_string("publish_failed"));
                out->continue_chain = nf == 0;
            }
        }
    }
    return ct_mpi_agree(comm, rc, err);
}
