/* metrics.c -- see metrics.h. */
#define _GNU_SOURCE
#include "metrics.h"

#include "fsutil.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The exposition as it grows; a failed allocation sticks (out is NULL at the end). */
typedef struct text {
    char *s;
    size_t len, cap;
    bool bad;
} text;

__attribute__((format(printf, 2, 3))) static void put(text *t, const char *fmt, ...)
{
    if (t->bad)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->bad = true;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 4096;
        while (cap <= t->len + (size_t)n)
            cap *= 2;
        char *s = realloc(t->s, cap);
        if (s == NULL) {
            t->bad = true;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

/* A family's HELP and TYPE lines, once, before its samples. */
static void family(text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value escaped as the format asks: backslash, double quote, newline. */
static void put_label(text *t, const char *key, const char *value, bool first)
{
    put(t, "%s%s=\"", first ? "" : ",", key);
    char buf[256];
    size_t n = 0;
    for (const char *p = value ? value : "";; p++) {
        if (*p == '\0' || n + 2 >= sizeof buf) { /* flush */
            put(t, "%.*s", (int)n, buf);
            n = 0;
            if (*p == '\0')
                break;
        }
        if (*p == '\\' || *p == '"' || *p == '\n')
            buf[n++] = '\\';
        buf[n++] = *p == '\n' ? 'n' : *p;
    }
    put(t, "\"");
}

/* One sample: name{k1="v1",...} value. labels: key, value pairs, NULL-terminated. */
static void sample(text *t, const char *name, const char *const *labels, double v)
{
    put(t, "%s", name);
    if (labels && labels[0]) {
        put(t, "{");
        for (int i = 0; labels[i]; i += 2)
            put_label(t, labels[i], labels[i + 1], i == 0);
        put(t, "}");
    }
    if (isnan(v))
        put(t, " NaN\n");
    else
        put(t, " %.17g\n", v);
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static double num(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A summary from the snapshot's tasks rows: quantiles (key_q, over the window) where
 * there are any, _sum and _count (key_sum, key_count) always. only: task names kept
 * (NULL-terminated; NULL keeps every row). */
static void summary(text *t, const json_t *tasks, const char *name, const char *help,
                    const char *key_q, const char *key_sum, const char *key_count,
                    const char *const *only)
{
    static const char *const qs[] = {"0.5", "0.95", "0.99"};
    char sum_name[128], count_name[128];
    snprintf(sum_name, sizeof sum_name, "%s_sum", name);
    snprintf(count_name, sizeof count_name, "%s_count", name);
    bool any = false;
    size_t i;
    const json_t *row;
    json_array_foreach(tasks, i, row)
    {
        const char *tn = str(row, "task_name");
        bool keep = only == NULL;
        for (int k = 0; only && only[k] && !keep; k++)
            keep = tn && strcmp(tn, only[k]) == 0;
        if (!keep || (only && num(row, key_count) == 0))
            continue;
        if (!any)
            family(t, name, "summary", help);
        any = true;
        const json_t *q = json_object_get(row, key_q);
        for (size_t k = 0; json_is_array(q) && k < 3; k++) {
            const char *l[] = {"queue", str(row, "queue"), "task_name", tn, "quantile", qs[k],
                               NULL};
            sample(t, name, l, json_number_value(json_array_get(q, k)));
        }
        const char *l[] = {"queue", str(row, "queue"), "task_name", tn, NULL};
        sample(t, sum_name, l, num(row, key_sum));
        sample(t, count_name, l, num(row, key_count));
    }
}

/* A gauge per queue from the snapshot's queues rows (rows without the key left out). */
static void queue_gauge(text *t, const json_t *queues, const char *name, const char *help,
                        double (*value)(const json_t *row))
{
    bool any = false;
    size_t i;
    const json_t *row;
    json_array_foreach(queues, i, row)
    {
        const double v = value(row);
        if (isnan(v))
            continue;
        if (!any)
            family(t, name, "gauge", help);
        any = true;
        const char *l[] = {"queue", str(row, "queue"), NULL};
        sample(t, name, l, v);
    }
}

static double q_depth(const json_t *r)
{
    return num(r, "depth");
}

static double q_throughput(const json_t *r)
{
    return num(r, "completed_5m") / 5.0;
}

static double q_success(const json_t *r)
{
    const double c = num(r, "completed_window"), f = num(r, "failed_window");
    return c + f > 0 ? c / (c + f) : NAN;
}

static double q_error(const json_t *r)
{
    const double c = num(r, "completed_window"), f = num(r, "failed_window");
    return c + f > 0 ? f / (c + f) : NAN;
}

static double q_last_claim(const json_t *r)
{
    return num(r, "last_claim_age_sec");
}

static double q_oldest_pending(const json_t *r)
{
    return num(r, "oldest_pending_age_sec");
}

static double q_oldest_claimed(const json_t *r)
{
    return num(r, "oldest_claimed_age_sec");
}

/* Bytes of the regular files directly in dir; NAN when it cannot be read. */
static double dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return NAN;
    double total = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
            total += (double)st.st_size;
    }
    closedir(d);
    return total;
}

static void render_queue(text *t, const json_t *s)
{
    const json_t *tasks = json_object_get(s, "tasks"), *queues = json_object_get(s, "queues");
    size_t i;
    const json_t *row;

    family(t, "absurd_tasks_total", "counter", "Tasks spawned into a queue, by task name.");
    json_array_foreach(tasks, i, row)
    {
        const char *l[] = {"queue", str(row, "queue"), "task_name", str(row, "task_name"), NULL};
        sample(t, "absurd_tasks_total", l, num(row, "spawned"));
    }
    family(t, "absurd_tasks_current", "gauge", "Tasks in a queue now, by task name and status.");
    json_array_foreach(json_object_get(s, "current"), i, row)
    {
        const char *l[] = {"queue",  str(row, "queue"),  "task_name", str(row, "task_name"),
                           "status", str(row, "status"), NULL};
        sample(t, "absurd_tasks_current", l, num(row, "n"));
    }
    summary(t, tasks, "absurd_wait_time_seconds",
            "Seconds from spawn to claim; quantiles over the window.", "wait_q", "wait_sum",
            "wait_count", NULL);
    summary(t, tasks, "absurd_execution_time_seconds",
            "Seconds from claim to completion; quantiles over the window.", "exec_q", "exec_sum",
            "exec_count", NULL);
    summary(t, tasks, "contimg_conversion_duration_seconds",
            "Seconds a conversion task ran; quantiles over the window.", "exec_q", "exec_sum",
            "exec_count", (const char *const[]){"convert-uvh5-to-ms", NULL});
    summary(t, tasks, "contimg_calibration_duration_seconds",
            "Seconds a calibration task ran; quantiles over the window.", "exec_q", "exec_sum",
            "exec_count", (const char *const[]){"calibration-solve", "calibration-apply", NULL});
    summary(t, tasks, "contimg_imaging_duration_seconds",
            "Seconds an imaging task ran; quantiles over the window.", "exec_q", "exec_sum",
            "exec_count", (const char *const[]){"imaging", NULL});
    queue_gauge(t, queues, "contimg_queue_depth",
                "Tasks waiting to be claimed (pending, retrying).", q_depth);
    queue_gauge(t, queues, "absurd_throughput_per_minute",
                "Tasks completed per minute over the last 5 minutes.", q_throughput);
    queue_gauge(t, queues, "absurd_success_rate",
                "Completed over finished (completed or dead-lettered) tasks in the window.",
                q_success);
    queue_gauge(t, queues, "absurd_error_rate", "Dead-lettered over finished tasks in the window.",
                q_error);
    queue_gauge(t, queues, "absurd_last_claim_age_seconds",
                "Seconds since a task of the queue was last claimed.", q_last_claim);
    queue_gauge(t, queues, "absurd_oldest_pending_age_seconds",
                "Age of the oldest task waiting to be claimed.", q_oldest_pending);
    queue_gauge(t, queues, "absurd_oldest_claimed_age_seconds",
                "Seconds the longest-running claim has held its task.", q_oldest_claimed);
    family(t, "contimg_failures_total", "counter",
           "Tasks dead-lettered, by task name and error category.");
    json_array_foreach(json_object_get(s, "failures"), i, row)
    {
        const char *l[] = {"queue",    str(row, "queue"),    "task_name", str(row, "task_name"),
                           "category", str(row, "category"), NULL};
        sample(t, "contimg_failures_total", l, num(row, "n"));
    }
    const double cal = num(s, "caltable_age_sec");
    if (!isnan(cal)) {
        family(t, "contimg_caltable_age_seconds", "gauge",
               "Seconds since the newest active caltable's observation ended.");
        sample(t, "contimg_caltable_age_seconds", NULL, cal);
    }
}

char *ct_metrics_render(const json_t *snapshot, const ct_metrics_disk *disks, size_t ndisks,
                        const char *staging, double disk_guard)
{
    text t = {0};
    family(&t, "contimg_database_up", "gauge",
           "Whether the queue's database answered this scrape (1) or not (0).");
    sample(&t, "contimg_database_up", NULL, snapshot ? 1 : 0);
    if (snapshot)
        render_queue(&t, snapshot);
    static const char *const names[3] = {"contimg_disk_total_bytes", "contimg_disk_free_bytes",
                                         "contimg_disk_used_ratio"};
    static const char *const helps[3] = {
        "Size of the filesystem holding a directory of the pipeline.",
        "Bytes free to unprivileged users on that filesystem.",
        "Fraction of that filesystem in use (as df counts it)."};
    for (int m = 0; m < 3; m++) {
        family(&t, names[m], "gauge", helps[m]);
        for (size_t i = 0; i < ndisks; i++) {
            double total, avail, ratio;
            if (ct_disk_usage(disks[i].path, &total, &avail, &ratio) != 0)
                continue;
            const double value = m == 0 ? total : m == 1 ? avail : ratio;
            const char *l[] = {"role", disks[i].role, "path", disks[i].path, NULL};
            sample(&t, names[m], l, value);
        }
    }
    family(&t, "contimg_disk_guard_ratio", "gauge",
           "The fraction full at which engines stop claiming (CONTIMG_DISK_GUARD; 1: never).");
    sample(&t, "contimg_disk_guard_ratio", NULL, disk_guard);
    const double staged = staging ? dir_bytes(staging) : NAN;
    if (!isnan(staged)) {
        family(&t, "contimg_staging_bytes", "gauge",
               "Bytes of visibilities staged for the stages after conversion.");
        const char *l[] = {"path", staging, NULL};
        sample(&t, "contimg_staging_bytes", l, staged);
    }
    if (t.bad) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
