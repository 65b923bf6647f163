/*
 * config.h -- contimg's settings, read once from the environment.
 *
 * There is no global configuration: a ct_config is loaded by the front door
 * (the CLI, the engine, a test) and passed to what needs it. Every variable,
 * its default and its meaning are listed in docs/configuration.md.
 */
#ifndef CONTIMG_CONFIG_H
#define CONTIMG_CONFIG_H

#include "error.h"

#include <stddef.h>

#define CT_PATH_MAX 4096
#define CT_NAME_MAX 128

typedef struct ct_config {
    char state_dir[CT_PATH_MAX];    /* CONTIMG_STATE_DIR, default ./var */
    char database_url[CT_PATH_MAX]; /* CONTIMG_DATABASE_URL or ABSURD_DATABASE_URL; "" = private */
    char queue[CT_NAME_MAX];        /* ABSURD_QUEUE_NAME, default dsa110-pipeline */
    double poll_interval_sec;       /* ABSURD_WORKER_POLL_INTERVAL, default 1.0 */
    int task_timeout_sec;           /* ABSURD_TASK_TIMEOUT, default 3600 */
    int max_retries;                /* ABSURD_MAX_RETRIES, default 3 */
    double heartbeat_interval_sec;  /* ABSURD_HEARTBEAT_INTERVAL, default 30 */
    double lease_sec;               /* ABSURD_LEASE_SEC, default 3 x heartbeat */
    double backoff_base_sec;        /* ABSURD_RETRY_BACKOFF_BASE, default 10 */
    double backoff_max_sec;         /* ABSURD_RETRY_BACKOFF_MAX, default 900 */
    double db_retry_sec;            /* CONTIMG_DB_RETRY_SEC: reconnect budget, default 30 */
    char pg_bindir[CT_PATH_MAX];    /* CONTIMG_PG_BINDIR; "" = search */
    char pg_os_user[CT_NAME_MAX];   /* CONTIMG_PG_OS_USER, default postgres (when root) */
    char data_roots[CT_PATH_MAX];   /* CONTIMG_DATA_ROOTS: colon-separated; "" = anywhere */
    char products_dir[CT_PATH_MAX]; /* CONTIMG_PRODUCTS_DIR, default STATE_DIR/products */
    char chains_file[CT_PATH_MAX];  /* CONTIMG_CHAINS_FILE; "" = the built-in chains */
    char refcat[CT_PATH_MAX];       /* CONTIMG_REFCAT: the reference catalogue; "" = none */
    char
        archive_dir[CT_PATH_MAX]; /* CONTIMG_ARCHIVE_DIR: where products are published; "" = none */
    char chain[CT_NAME_MAX];      /* CONTIMG_CHAIN: what ingest starts, default quick */
    double drain_grace_sec;       /* CONTIMG_DRAIN_GRACE_SEC, default 240 */
    int threads;                  /* CONTIMG_THREADS: per rank; 0 = the cores shared out */
    double calibrator_staleness_hours; /* CONTIMG_CALIBRATOR_STALENESS_HOURS, default 6 */
    double calibrator_radius_deg;      /* CONTIMG_CALIBRATOR_RADIUS_DEG, default 1 */
    char api_listen[CT_NAME_MAX];      /* CONTIMG_API_LISTEN, default 127.0.0.1:8000 */
    char api_token[CT_PATH_MAX];       /* CONTIMG_API_TOKEN: the API's changes; "" = none */
    double disk_guard; /* CONTIMG_DISK_GUARD: no claims at this fraction full (0.95) */
    /* Housekeeping's retention in days (0: kept for ever): visibility files (7), images
     * (30) and the log files in logs_dir (14). */
    double retain_vis_days;     /* CONTIMG_RETAIN_VIS_DAYS */
    double retain_image_days;   /* CONTIMG_RETAIN_IMAGE_DAYS */
    double retain_log_days;     /* CONTIMG_RETAIN_LOG_DAYS */
    char logs_dir[CT_PATH_MAX]; /* CONTIMG_LOGS_DIR, default STATE_DIR/logs */
} ct_config;

/* Fills *cfg from the environment; a malformed value is CT_EINVAL naming it. */
ct_code ct_config_load(ct_config *cfg, ct_err *err);

/* Checks that every path lies inside one of CONTIMG_DATA_ROOTS or the products directory
 * (symlinks and ".." resolved). With no roots configured every path is allowed. */
ct_code ct_config_check_paths(const ct_config *cfg, const char *const *paths, size_t n,
                              ct_err *err);

#endif
