/* config.c -- see config.h. */
#define _POSIX_C_SOURCE 200809L
#include "config.h"

#include "fsutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ct_code get_string(const char *name, const char *def, char *out, size_t size, ct_err *err)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0')
        v = def;
    if (strlen(v) >= size)
        return ct_fail(err, CT_EINVAL, "%s is too long (at most %zu characters)", name, size - 1);
    memcpy(out, v, strlen(v) + 1);
    return CT_OK;
}

static ct_code get_double(const char *name, double def, double lo, double hi, double *out,
                          ct_err *err)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        *out = def;
        return CT_OK;
    }
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !isfinite(d) || d < lo || d > hi)
        return ct_fail(err, CT_EINVAL, "%s must be a number in [%g, %g], got \"%s\"", name, lo, hi,
                       v);
    *out = d;
    return CT_OK;
}

static ct_code get_int(const char *name, int def, int lo, int hi, int *out, ct_err *err)
{
    double d = 0;
    ct_code rc = get_double(name, def, lo, hi, &d, err);
    if (rc != CT_OK)
        return rc;
    if (d != (double)(int)d)
        return ct_fail(err, CT_EINVAL, "%s must be a whole number", name);
    *out = (int)d;
    return CT_OK;
}

ct_code ct_config_load(ct_config *cfg, ct_err *err)
{
    memset(cfg, 0, sizeof *cfg);
    ct_code rc;
    const char *url = getenv("CONTIMG_DATABASE_URL");
    const char *url_name = "CONTIMG_DATABASE_URL";
    if (url == NULL || url[0] == '\0') {
        url_name = "ABSURD_DATABASE_URL";
    }
    if ((rc = get_string("CONTIMG_STATE_DIR", "./var", cfg->state_dir, sizeof cfg->state_dir,
                         err)) ||
        (rc = get_string(url_name, "", cfg->database_url, sizeof cfg->database_url, err)) ||
        (rc = get_string("ABSURD_QUEUE_NAME", "dsa110-pipeline", cfg->queue, sizeof cfg->queue,
                         err)) ||
        (rc = get_double("ABSURD_WORKER_POLL_INTERVAL", 1.0, 0.001, 3600, &cfg->poll_interval_sec,
                         err)) ||
        (rc = get_int("ABSURD_TASK_TIMEOUT", 3600, 1, 604800, &cfg->task_timeout_sec, err)) ||
        (rc = get_int("ABSURD_MAX_RETRIES", 3, 0, 100, &cfg->max_retries, err)) ||
        (rc = get_double("ABSURD_HEARTBEAT_INTERVAL", 30, 0.01, 86400, &cfg->heartbeat_interval_sec,
                         err)) ||
        (rc = get_double("ABSURD_LEASE_SEC", 3 * cfg->heartbeat_interval_sec, 0.01, 86400,
                         &cfg->lease_sec, err)) ||
        (rc = get_double("ABSURD_RETRY_BACKOFF_BASE", 10, 0, 86400, &cfg->backoff_base_sec, err)) ||
        (rc = get_double("ABSURD_RETRY_BACKOFF_MAX", 900, 0, 604800, &cfg->backoff_max_sec, err)) ||
        (rc = get_double("CONTIMG_DB_RETRY_SEC", 30, 0, 86400, &cfg->db_retry_sec, err)) ||
        (rc = get_string("CONTIMG_PG_BINDIR", "", cfg->pg_bindir, sizeof cfg->pg_bindir, err)) ||
        (rc = get_string("CONTIMG_PG_OS_USER", "postgres", cfg->pg_os_user, sizeof cfg->pg_os_user,
                         err)) ||
        (rc = get_string("CONTIMG_DATA_ROOTS", "", cfg->data_roots, sizeof cfg->data_roots, err)) ||
        (rc = get_string("CONTIMG_PRODUCTS_DIR", "", cfg->products_dir, sizeof cfg->products_dir,
                         err)) ||
        (rc = get_string("CONTIMG_CHAINS_FILE", "", cfg->chains_file, sizeof cfg->chains_file,
                         err)) ||
        (rc = get_string("CONTIMG_REFCAT", "", cfg->refcat, sizeof cfg->refcat, err)) ||
        (rc = get_string("CONTIMG_ARCHIVE_DIR", "", cfg->archive_dir, sizeof cfg->archive_dir,
                         err)) ||
        (rc = get_string("CONTIMG_CHAIN", "quick", cfg->chain, sizeof cfg->chain, err)) ||
        (rc = get_double("CONTIMG_DRAIN_GRACE_SEC", 240, 0, 86400, &cfg->drain_grace_sec, err)) ||
        (rc = get_int("CONTIMG_THREADS", 0, 0, 4096, &cfg->threads, err)) ||
        (rc = get_double("CONTIMG_CALIBRATOR_STALENESS_HOURS", 6, 0, 1e6,
                         &cfg->calibrator_staleness_hours, err)) ||
        (rc = get_double("CONTIMG_CALIBRATOR_RADIUS_DEG", 1, 0, 90, &cfg->calibrator_radius_deg,
                         err)) ||
        (rc = get_string("CONTIMG_API_LISTEN", "127.0.0.1:8000", cfg->api_listen,
                         sizeof cfg->api_listen, err)) ||
        (rc = get_string("CONTIMG_API_TOKEN", "", cfg->api_token, sizeof cfg->api_token, err)) ||
        (rc = get_double("CONTIMG_DISK_GUARD", 0.95, 0, 1, &cfg->disk_guard, err)) ||
        (rc = get_double("CONTIMG_RETAIN_VIS_DAYS", 7, 0, 1e5, &cfg->retain_vis_days, err)) ||
        (rc = get_double("CONTIMG_RETAIN_IMAGE_DAYS", 30, 0, 1e5, &cfg->retain_image_days, err)) ||
        (rc = get_double("CONTIMG_RETAIN_LOG_DAYS", 14, 0, 1e5, &cfg->retain_log_days, err)) ||
        (rc = get_string("CONTIMG_LOGS_DIR", "", cfg->logs_dir, sizeof cfg->logs_dir, err)))
        return rc;
    if (cfg->logs_dir[0] == '\0' && snprintf(cfg->logs_dir, sizeof cfg->logs_dir, "%s/logs",
                                             cfg->state_dir) >= (int)sizeof cfg->logs_dir)
        return ct_fail(err, CT_EINVAL, "CONTIMG_STATE_DIR is too long");
    if (cfg->products_dir[0] == '\0' &&
        snprintf(cfg->products_dir, sizeof cfg->products_dir, "%s/products", cfg->state_dir) >=
            (int)sizeof cfg->products_dir)
        return ct_fail(err, CT_EINVAL, "CONTIMG_STATE_DIR is too long");
    if (cfg->lease_sec <= cfg->heartbeat_interval_sec)
        return ct_fail(err, CT_EINVAL,
                       "ABSURD_LEASE_SEC (%g) must exceed ABSURD_HEARTBEAT_INTERVAL (%g), or every "
                       "lease expires between heartbeats",
                       cfg->lease_sec, cfg->heartbeat_interval_sec);
    return CT_OK;
}

ct_code ct_config_check_paths(const ct_config *cfg, const char *const *paths, size_t n, ct_err *err)
{
    if (cfg->data_roots[0] == '\0')
        return CT_OK;
    char copy[CT_PATH_MAX];
    memcpy(copy, cfg->data_roots, sizeof copy);
    /* The products directory is always one: later stages read what earlier ones wrote. */
    const char *roots[65] = {cfg->products_dir};
    size_t nroots = 1;
    char *save = NULL;
    for (char *r = strtok_r(copy, ":", &save); r && nroots < 65; r = strtok_r(NULL, ":", &save))
        roots[nroots++] = r;
    for (size_t i = 0; i < n; i++) {
        ct_code rc = ct_path_check_roots(paths[i], roots, nroots, err);
        if (rc != CT_OK)
            return rc;
    }
    return CT_OK;
}
