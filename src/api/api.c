/* api.c -- see api.h. */
#define _GNU_SOURCE
#include "api.h"

#include "fsutil.h"
#include "metrics.h"
#include "products.h"
#include "queue.h"
#include "schedules.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The status page, embedded from status.html (embed.cmake). */
extern const char ct_status_html[];

/* A request's database call may wait this long for a lost connection to come back; the
 * client asking has its own timeout and the engine its own budget. */
#define API_RECONNECT_SEC 2.0

struct ct_api {
    char *conninfo, *queue, *token, *products_dir, *state_dir, *staging;
    double window_sec, disk_guard;
    ct_code (*admit)(void *, const char *, json_t *, char *, size_t, ct_err *);
    void *admit_ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    cq_client **idle; /* connections free to borrow */
    int nidle, made, max;
};

/* ---- The connection pool -------------------------------------------------------------- */

/* A connection of the pool: an idle one, a new one while fewer than max exist, else the
 * next one given back. */
static ct_code borrow(ct_api *a, cq_client **out, ct_err *err)
{
    pthread_mutex_lock(&a->mu);
    while (a->nidle == 0 && a->made == a->max)
        pthread_cond_wait(&a->cv, &a->mu);
    if (a->nidle > 0) {
        *out = a->idle[--a->nidle];
        pthread_mutex_unlock(&a->mu);
        return CT_OK;
    }
    a->made++;
    pthread_mutex_unlock(&a->mu);
    const ct_code rc = cq_connect(a->conninfo, out, err);
    if (rc == CT_OK) {
        cq_set_reconnect_budget(*out, API_RECONNECT_SEC);
        return CT_OK;
    }
    pthread_mutex_lock(&a->mu);
    a->made--;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static void give_back(ct_api *a, cq_client *c)
{
    pthread_mutex_lock(&a->mu);
    a->idle[a->nidle++] = c;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* ---- Answers ---------------------------------------------------------------------------- */

/* body (a new reference, taken) as the answer with status. */
static void reply(ct_http_response *r, int status, json_t *body)
{
    r->status = status;
    r->body = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (r->body == NULL) { /* the body could not be made: say so in the shape promised */
        r->status = 500;
        r->body = strdup("{\"error\": \"the answer could not be made\", \"code\": \"internal\"}");
    }
}

__attribute__((format(printf, 4, 5))) static void
reply_error(ct_http_response *r, int status, const char *code, const char *fmt, ...)
{
    char msg[CT_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* The message may quote the request (a path, a key) or be cut inside a character:
     * bytes outside printable ASCII become '?', so it is always a valid JSON string. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    reply(r, status, json_pack("{s:s, s:s}", "error", msg, "code", code));
}

/* The queue's refusals as HTTP statuses. */
static int http_status(ct_code c)
{
    switch (c) {
    case CT_OK: return 200;
    case CT_EINVAL: return 400;
    case CT_ENOTFOUND:
    case CT_EUNKNOWN_QUEUE: return 404;
    case CT_ESTATE:
    case CT_ELEASE_EXPIRED:
    case CT_ENOT_HOLDER: return 409;
    case CT_ECONNECT:
    case CT_EFULL: return 503;
    default: return 500;
    }
}

static void reply_err(ct_http_response *r, const ct_err *e)
{
    if (e->code == CT_EFULL) /* backpressure: when to come back */
        r->extra_header = "Retry-After: 5";
    reply_error(r, http_status(e->code), ct_code_name(e->code), "%s", e->msg);
}

/* ---- Requests --------------------------------------------------------------------------- */

/* Whether the request carries the bearer token; answers 401 or 403 when not. The
 * comparison takes the same time wherever the first difference is. */
static bool authorized(const ct_api *a, const ct_http_request *q, ct_http_response *r)
{
    if (a->token == NULL) {
        reply_error(r, 403, "forbidden",
                    "changes are disabled: the server was started without CONTIMG_API_TOKEN");
        return false;
    }
    static const char prefix[] = "Bearer ";
    const char *h = q->authorization;
    bool ok = h != NULL && strncmp(h, prefix, sizeof prefix - 1) == 0;
    if (ok) {
        const char *given = h + sizeof prefix - 1;
        const size_t n = strlen(a->token), m = strlen(given);
        unsigned char diff = n != m;
        for (size_t i = 0; i < n; i++)
            diff |= (unsigned char)(a->token[i] ^ (i < m ? given[i] : 0));
        ok = diff == 0;
    }
    if (!ok) {
        r->extra_header = "WWW-Authenticate: Bearer";
        reply_error(r, 401, "unauthorized",
                    h ? "the bearer token is not the server's"
                      : "changes need an Authorization: Bearer header with CONTIMG_API_TOKEN");
    }
    return ok;
}

/* The request's body as a JSON object; answers 400 when it is not one. */
static json_t *body_object(const ct_http_request *q, ct_http_response *r)
{
    json_error_t je;
    json_t *v = json_loadb(q->body, q->body_len, JSON_REJECT_DUPLICATES, &je);
    if (v == NULL) {
        reply_error(r, 400, "bad_json", "body: not JSON: %s (line %d, column %d)", je.text, je.line,
                    je.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        reply_error(r, 400, "bad_json", "body: want a JSON object");
        return NULL;
    }
    return v;
}

/* A whole number from a query parameter in [lo, hi] (dflt when absent); false and a 400
 * when malformed. */
static bool query_long(const ct_http_request *q, const char *key, long lo, long hi, long dflt,
                       long *out, ct_http_response *r)
{
    const char *s = ct_http_query(q, key);
    *out = dflt;
    if (s == NULL)
        return true;
    char *end;
    const long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        reply_error(r, 400, "invalid", "%s: want a whole number in [%ld, %ld], not '%s'", key, lo,
                    hi, s);
        return false;
    }
    *out = v;
    return true;
}

/* ---- Routes ----------------------------------------------------------------------------- */

/* The spawn's options from its body (the strings borrowed from it); 400 when a key is
 * unknown or of the wrong type. */
static bool spawn_opts(const ct_api *a, const json_t *b, cq_spawn_opts *o, const char **deps,
                       size_t max_deps, ct_http_response *r)
{
    *o = cq_spawn_defaults();
    o->queue = a->queue;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)b, key, v)
    {
        bool ok;
        if (strcmp(key, "task_name") == 0)
            ok = (o->name = json_string_value(v)) != NULL;
        else if (strcmp(key, "queue_name") == 0)
            ok = (o->queue = json_string_value(v)) != NULL;
        else if (strcmp(key, "params") == 0)
            ok = json_is_object(v) && (o->params = v);
        else if (strcmp(key, "idempotency_key") == 0)
            ok = json_is_null(v) || (o->idempotency_key = json_string_value(v)) != NULL;
        else if (strcmp(key, "workflow_id") == 0)
            ok = json_is_null(v) || (o->workflow_id = json_string_value(v)) != NULL;
        else if (strcmp(key, "priority") == 0 || strcmp(key, "max_retries") == 0 ||
                 strcmp(key, "timeout_sec") == 0) {
            const json_int_t n = json_integer_value(v);
            ok = json_is_integer(v) && n >= 0 && n <= 100000000;
            if (ok)
                *(key[0] == 'p'   ? &o->priority
                  : key[0] == 'm' ? &o->max_retries
                                  : &o->timeout_sec) = (int)n;
        } else if (strcmp(key, "delay_sec") == 0) {
            ok = json_is_number(v) && json_number_value(v) >= 0;
            o->delay_sec = ok ? json_number_value(v) : 0;
        } else if (strcmp(key, "depends_on") == 0) {
            ok = json_is_array(v) && json_array_size(v) <= max_deps;
            size_t i;
            const json_t *d;
            json_array_foreach(v, i, d)
            {
                ok = ok && (deps[i] = json_string_value(d)) != NULL;
            }
            o->depends_on = deps;
            o->n_depends_on = ok ? json_array_size(v) : 0;
        } else {
            reply_error(r, 400, "invalid", "body: unknown key '%s'", key);
            return false;
        }
        if (!ok) {
            reply_error(r, 400, "invalid", "body: '%s' has the wrong type or range", key);
            return false;
        }
    }
    if (o->name == NULL) {
        reply_error(r, 400, "invalid", "body: task_name is required");
        return false;
    }
    return true;
}

/* *out: a copy of params ({} when NULL) as the server's admission step leaves it; false
 * (400 answered) when it refuses them. */
static bool admit(const ct_api *a, const char *name, const json_t *params, json_t **out, char *key,
                  size_t key_size, ct_http_response *r)
{
    key[0] = '\0';
    *out = params ? json_deep_copy(params) : json_object();
    ct_err e;
    if (a->admit && a->admit(a->admit_ctx, name, *out, key, key_size, &e) != CT_OK) {
        reply_err(r, &e);
        json_decref(*out);
        *out = NULL;
        return false;
    }
    return true;
}

static void task_reply(ct_http_response *r, int status, const cq_task *t)
{
    reply(r, status, cq_task_json(t, false));
}

static void route_spawn(ct_api *a, cq_client *c, const ct_http_request *q, ct_http_response *r)
{
    enum { MAX_DEPS = 1000 };
    json_t *b = body_object(q, r);
    if (b == NULL)
        return;
    const char *deps[MAX_DEPS];
    cq_spawn_opts o;
    json_t *params = NULL;
    char key[CQ_KEY_MAX];
    ct_err e;
    if (spawn_opts(a, b, &o, deps, MAX_DEPS, r) &&
        admit(a, o.name, o.params, &params, key, sizeof key, r)) {
        o.params = params;
        if (o.idempotency_key == NULL && key[0])
            o.idempotency_key = key;
        cq_uuid id;
        bool created = false;
        cq_task t;
        memset(&t, 0, sizeof t);
        if (cq_spawn(c, &o, id, &created, &e) != CT_OK) {
            reply_err(r, &e);
        } else if (cq_get(c, id, &t, &e) != CT_OK) {
            /* Spawned all the same: say so, or a client's retry would spawn it twice. */
            reply(r, created ? 201 : 200,
                  json_pack("{s:s, s:n, s:s, s:s, s:n, s:b}", "task_id", id, "status", "queue_name",
                            o.queue, "task_name", o.name, "created_at", "created", created));
        } else {
            char when[40];
            cq_format_time(t.created_at, when, sizeof when);
            reply(r, created ? 201 : 200,
                  json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "task_id", t.id, "status",
                            cq_status_name(t.status), "queue_name", t.queue, "task_name", t.name,
                            "created_at", when, "created", created));
            cq_task_free(&t);
        }
    }
    json_decref(params);
    json_decref(b);
}

static void route_list(cq_client *c, const ct_http_request *q, ct_http_response *r)
{
    cq_filter f = {0};
    f.queue = ct_http_query(q, "queue_name");
    f.name = ct_http_query(q, "task_name");
    f.workflow_id = ct_http_query(q, "workflow_id");
    const char *st = ct_http_query(q, "status");
    if (st && cq_status_parse(st, &f.status) != CT_OK) {
        reply_error(r, 400, "invalid", "status: '%s' is not a task status", st);
        return;
    }
    f.has_status = st != NULL;
    if (!query_long(q, "limit", 1, 1000, 100, &f.limit, r) ||
        !query_long(q, "offset", 0, 1000000000, 0, &f.offset, r))
        return;
    cq_task *t = NULL;
    size_t n = 0;
    long total = 0;
    ct_err e;
    if (cq_list(c, &f, &t, &n, &e) != CT_OK || cq_count(c, &f, &total, &e) != CT_OK) {
        cq_tasks_free(t, n);
        {
            reply_err(r, &e);
            return;
        }
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, cq_task_json(&t[i], false));
    cq_tasks_free(t, n);
    reply(r, 200, json_pack("{s:o, s:I}", "tasks", arr, "total", (json_int_t)total));
}

/* GET, DELETE (cancel) or POST .../retry on one task; the answer is the task after. */
static void route_task(cq_client *c, const char *id, const char *action, const ct_http_request *q,
                       ct_http_response *r)
{
    if (!cq_uuid_valid(id)) {
        reply_error(r, 404, "not_found", "no task %s: not a task id", id);
        return;
    }
    ct_err e;
    ct_code rc = CT_OK;
    if (strcmp(action, "cancel") == 0) {
        const char *why = ct_http_query(q, "reason");
        rc = cq_cancel(c, id, why ? why : "cancelled through the API", &e);
    } else if (strcmp(action, "retry") == 0)
        rc = cq_retry(c, id, &e);
    cq_task t;
    memset(&t, 0, sizeof t);
    if (rc != CT_OK || cq_get(c, id, &t, &e) != CT_OK) {
        reply_err(r, &e);
        return;
    }
    task_reply(r, 200, &t);
    cq_task_free(&t);
}

/* One queue's counts, the seed's shape and our timings. */
static json_t *stats_json(const cq_stats *s)
{
    json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "queue_name", s->queue,
                          "pending", (json_int_t)s->pending, "claimed", (json_int_t)s->claimed,
                          "completed", (json_int_t)s->completed, "failed", (json_int_t)s->failed,
                          "cancelled", (json_int_t)s->cancelled, "retrying",
                          (json_int_t)s->retrying, "total", (json_int_t)s->total);
    const double extra[3] = {s->oldest_pending_sec, s->avg_wait_sec, s->avg_execution_sec};
    static const char *const names[3] = {"oldest_pending_sec", "avg_wait_sec", "avg_execution_sec"};
    for (int i = 0; o && i < 3; i++)
        json_object_set_new(o, names[i], isnan(extra[i]) ? json_null() : json_real(extra[i]));
    return o;
}

/* One queue's stats (queue non-NULL, 404 when unknown) or every queue's ({queues: [...]}). */
static void route_stats(cq_client *c, const char *queue, ct_http_response *r)
{
    cq_stats *s = NULL;
    size_t n = 0;
    ct_err e;
    if (queue && !cq_name_valid(queue)) {
        reply_error(r, 404, "unknown_queue", "no queue named '%s'", queue);
        return;
    }
    if (cq_stats_get(c, queue, &s, &n, &e) != CT_OK) {
        reply_err(r, &e);
        return;
    }
    if (queue && n == 0) {
        free(s);
        reply_error(r, 404, "unknown_queue", "no queue named '%s'", queue);
        return;
    }
    json_t *all = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(all, stats_json(&s[i]));
    json_t *o = queue ? json_incref(json_array_get(all, 0)) : json_pack("{s:O}", "queues", all);
    json_decref(all);
    free(s);
    reply(r, 200, o);
}

static void route_products(cq_client *c, const ct_http_request *q, ct_http_response *r)
{
    const char *kind_s = ct_http_query(q, "kind");
    ct_products_kind kind = CT_PRODUCTS_IMAGES;
    long limit;
    if (kind_s && ct_products_kind_parse(kind_s, &kind) != CT_OK) {
        reply_error(r, 400, "invalid",
                    "kind: '%s' is not images, visibilities, mosaics or caltables", kind_s);
        return;
    }
    if (!query_long(q, "limit", 1, 1000, 20, &limit, r))
        return;
    json_t *rows = NULL;
    ct_err e;
    if (ct_products_list(c, kind, ct_http_query(q, "group"), limit, &rows, &e) != CT_OK) {
        reply_err(r, &e);
        return;
    }
    reply(r, 200, json_pack("{s:s, s:o}", "kind", ct_products_kind_name(kind), "rows", rows));
}

/* POST: spawn a workflow (a DAG, one transaction); GET: the workflows, or (id) one's tasks. */
static void route_workflows(ct_api *a, cq_client *c, const char *id, const ct_http_request *q,
                            ct_http_response *r)
{
    ct_err e;
    json_t *out = NULL;
    if (strcmp(q->method, "POST") == 0) {
        json_t *b = body_object(q, r);
        if (b == NULL)
            return;
        const char *key;
        const json_t *v;
        json_object_foreach(b, key, v)
        {
            if (strcmp(key, "tasks") != 0 && strcmp(key, "queue_name") != 0) {
                reply_error(r, 400, "invalid", "body: unknown key '%s'", key);
                json_decref(b);
                return;
            }
        }
        const json_t *qn = json_object_get(b, "queue_name");
        json_t *tasks = json_object_get(b, "tasks");
        size_t i;
        json_t *t;
        bool admitted = true;
        json_array_foreach(tasks, i, t)
        {
            const char *name = json_string_value(json_object_get(t, "task_name"));
            json_t *params = NULL;
            char ignored[CQ_KEY_MAX]; /* a workflow's tasks are keyed by the workflow */
            if (!name || !json_is_object(t))
                continue; /* the workflow's own check says what is wrong */
            if (!(admitted = admit(a, name, json_object_get(t, "params"), &params, ignored,
                                   sizeof ignored, r)))
                break;
            json_object_set_new(t, "params", params);
        }
        if (!admitted) {
            /* answered: 400 with the reason */
        } else if (qn && !json_is_string(qn)) {
            reply_error(r, 400, "invalid", "body: 'queue_name' has the wrong type");
        } else if (cq_spawn_workflow(c, qn ? json_string_value(qn) : a->queue, tasks, &out, &e) !=
                   CT_OK) {
            reply_err(r, &e);
        } else {
            reply(r, 201, out);
        }
        json_decref(b);
        return;
    }
    if (id == NULL) {
        long limit;
        if (!query_long(q, "limit", 1, 1000, 100, &limit, r))
            return;
        if (cq_workflows(c, limit, &out, &e) != CT_OK)
            reply_err(r, &e);
        else
            reply(r, 200, json_pack("{s:o}", "workflows", out));
        return;
    }
    if (!cq_uuid_valid(id)) {
        reply_error(r, 404, "not_found", "no workflow %s: not a workflow id", id);
        return;
    }
    cq_filter f = {.workflow_id = id, .limit = 1000, .spawn_order = true};
    if (!query_long(q, "offset", 0, 1000000000, 0, &f.offset, r))
        return;
    cq_task *t = NULL;
    size_t n = 0;
    long total = 0;
    if (cq_list(c, &f, &t, &n, &e) != CT_OK || cq_count(c, &f, &total, &e) != CT_OK) {
        cq_tasks_free(t, n);
        reply_err(r, &e);
        return;
    }
    if (n == 0) {
        reply_error(r, 404, "not_found", "no workflow %s", id);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, cq_task_json(&t[i], false));
    cq_tasks_free(t, n);
    reply(
        r, 200,
        json_pack("{s:s, s:o, s:I}", "workflow_id", id, "tasks", arr, "total", (json_int_t)total));
}

/* GET: every schedule; POST: add or replace one; DELETE (name): remove it. */
static void route_schedules(ct_api *a, cq_client *c, const char *name, const ct_http_request *q,
                            ct_http_response *r)
{
    ct_err e;
    json_t *out = NULL;
    if (strcmp(q->method, "DELETE") == 0) {
        if (ct_schedule_delete(c, name, &e) != CT_OK)
            reply_err(r, &e);
        else
            reply(r, 200, json_pack("{s:s, s:b}", "schedule_name", name, "deleted", 1));
        return;
    }
    if (strcmp(q->method, "POST") != 0) {
        if (ct_schedule_list(c, &out, &e) != CT_OK)
            reply_err(r, &e);
        else
            reply(r, 200, json_pack("{s:o}", "schedules", out));
        return;
    }
    json_t *b = body_object(q, r);
    if (b == NULL)
        return;
    const char *key, *sname = NULL, *cron = NULL, *task = NULL, *queue = a->queue;
    const json_t *v, *params = NULL;
    int enabled = 1;
    json_object_foreach(b, key, v)
    {
        bool ok = true;
        if (strcmp(key, "name") == 0 || strcmp(key, "schedule_name") == 0)
            ok = (sname = json_string_value(v)) != NULL;
        else if (strcmp(key, "cron") == 0)
            ok = (cron = json_string_value(v)) != NULL;
        else if (strcmp(key, "task_name") == 0)
            ok = (task = json_string_value(v)) != NULL;
        else if (strcmp(key, "queue_name") == 0)
            ok = (queue = json_string_value(v)) != NULL;
        else if (strcmp(key, "params") == 0)
            ok = json_is_object(params = v);
        else if (strcmp(key, "enabled") == 0) {
            ok = json_is_boolean(v);
            enabled = json_is_true(v);
        } else {
            reply_error(r, 400, "invalid", "body: unknown key '%s'", key);
            json_decref(b);
            return;
        }
        if (!ok) {
            reply_error(r, 400, "invalid", "body: '%s' has the wrong type", key);
            json_decref(b);
            return;
        }
    }
    json_t *checked = NULL; /* what each firing will spawn, checked now; stored as given */
    char ignored[CQ_KEY_MAX];
    if (!sname || !cron || !task) {
        reply_error(r, 400, "invalid", "body: name, cron and task_name are required");
    } else if (!admit(a, task, params, &checked, ignored, sizeof ignored, r)) {
        /* answered: 400 with the reason */
    } else if (ct_schedule_put(c, sname, cron, queue, task, params, enabled, &out, &e) != CT_OK) {
        reply_err(r, &e);
    } else {
        reply(r, 201, out);
    }
    json_decref(checked);
    json_decref(b);
}

/* A quick look PNG the imaging stage wrote (png.h), only from under the products
 * directory: the path resolved (symlinks, "..") must lie there and end in .png. */
static void route_quicklook(const ct_api *a, const ct_http_request *q, ct_http_response *r)
{
    const char *path = ct_http_query(q, "path");
    const char *roots[1] = {a->products_dir};
    ct_err e;
    const size_t n = path ? strlen(path) : 0;
    if (n < 5 || strcmp(path + n - 4, ".png") != 0 || a->products_dir == NULL ||
        ct_path_check_roots(path, roots, 1, &e) != CT_OK) {
        reply_error(r, 404, "not_found", "no quick look at '%s' under the products directory",
                    path ? path : "");
        return;
    }
    /* The file opened is the one checked: the resolved path, no link followed at its end,
     * and never blocking (a FIFO named *.png); a regular file only. */
    char *real = realpath(path, NULL);
    const int fd = real ? open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) : -1;
    struct stat st;
    char *buf = NULL;
    ssize_t got = -1;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        st.st_size <= (16 << 20) && ct_path_check_roots(real, roots, 1, &e) == CT_OK &&
        (buf = malloc((size_t)st.st_size)) != NULL)
        got = read(fd, buf, (size_t)st.st_size);
    if (got == st.st_size && got > 0) {
        r->status = 200;
        r->content_type = "image/png";
        r->body = buf;
        r->body_len = (size_t)got;
    } else {
        free(buf);
        reply_error(r, 404, "not_found", "cannot read the quick look '%s'", path);
    }
    if (fd >= 0)
        close(fd);
    free(real);
}

static void route_health(const ct_api *a, cq_client *c, ct_http_response *r)
{
    ct_err e;
    const ct_code rc = cq_ping(c, a->queue, &e);
    if (rc == CT_OK) {
        reply(r, 200,
              json_pack("{s:s, s:b, s:s, s:s}", "status", "healthy", "enabled", 1, "queue",
                        a->queue, "database", "up"));
        return;
    }
    reply(r, 503,
          json_pack("{s:s, s:b, s:s, s:s, s:s}", "status", "unhealthy", "enabled", 1, "queue",
                    a->queue, "database", rc == CT_ECONNECT ? "down" : "error", "error", e.msg));
}

static void route_metrics(const ct_api *a, cq_client *c, ct_http_response *r)
{
    json_t *snap = NULL;
    if (c) {
        char window[32];
        snprintf(window, sizeof window, "%.17g", a->window_sec);
        const char *v[1] = {window};
        ct_err e;
        if (cq_query_json(c, "metrics", "SELECT absurd.metrics_snapshot($1::float8)", 1, v, true,
                          &snap, &e) != CT_OK)
            snap = NULL;
    }
    ct_metrics_disk disks[2];
    size_t nd = 0;
    if (a->products_dir)
        disks[nd++] = (ct_metrics_disk){"products", a->products_dir};
    if (a->state_dir)
        disks[nd++] = (ct_metrics_disk){"state", a->state_dir};
    r->body = ct_metrics_render(snap, disks, nd, a->staging, a->disk_guard);
    json_decref(snap);
    r->status = r->body ? 200 : 500;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* Splits path into at most 5 segments (a trailing slash ignored); the count, or -1 when
 * there are more or the path is too long. */
static int split(const char *path, char buf[512], const char *seg[5])
{
    if (snprintf(buf, 512, "%s", path) >= 512)
        return -1;
    int n = 0;
    for (char *save = NULL, *p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (n == 5)
            return -1;
        seg[n++] = p;
    }
    return n;
}

void ct_api_handle(void *api, const ct_http_request *q, ct_http_response *r)
{
    ct_api *a = api;
    char buf[512];
    const char *s[5] = {0};
    const int n = split(q->path, buf, s);
    const bool get = strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0;
    const bool post = strcmp(q->method, "POST") == 0, del = strcmp(q->method, "DELETE") == 0;
    const bool absurd = n >= 1 && strcmp(s[0], "absurd") == 0;
    /* Which route, and whether the method is its. */
    enum {
        NONE,
        PAGE,
        QUICKLOOK,
        SPAWN,
        LIST,
        TASK,
        CANCEL,
        RETRY,
        STATS,
        QUEUES,
        SCHEDULES,
        WORKFLOWS,
        PRODUCTS,
        HEALTH,
        METRICS
    } route = NONE;
    bool method_ok = true;
    const bool ours = n == 2 && strcmp(s[0], "api") == 0;
    if (n == 0)
        route = PAGE, method_ok = get;
    else if ((n == 1 && strcmp(s[0], "metrics") == 0) ||
             (absurd && n == 2 && strcmp(s[1], "metrics") == 0))
        route = METRICS, method_ok = get;
    else if (absurd && n == 2 && strcmp(s[1], "health") == 0)
        route = HEALTH, method_ok = get;
    else if (absurd && n == 2 && strcmp(s[1], "tasks") == 0)
        route = post ? SPAWN : LIST, method_ok = post || get;
    else if (absurd && n == 3 && strcmp(s[1], "tasks") == 0)
        route = del ? CANCEL : TASK, method_ok = del || get;
    else if (absurd && n == 4 && strcmp(s[1], "tasks") == 0 && strcmp(s[3], "retry") == 0)
        route = RETRY, method_ok = post;
    else if (absurd && n == 4 && strcmp(s[1], "queues") == 0 && strcmp(s[3], "stats") == 0)
        route = STATS, method_ok = get;
    else if (absurd && n == 2 && strcmp(s[1], "queues") == 0)
        route = QUEUES, method_ok = get;
    else if (absurd && n == 2 && strcmp(s[1], "schedules") == 0)
        route = SCHEDULES, method_ok = get || post;
    else if (absurd && n == 3 && strcmp(s[1], "schedules") == 0)
        route = SCHEDULES, method_ok = del;
    else if (absurd && n == 2 && strcmp(s[1], "workflows") == 0)
        route = WORKFLOWS, method_ok = get || post;
    else if (absurd && n == 3 && strcmp(s[1], "workflows") == 0)
        route = WORKFLOWS, method_ok = get;
    else if (ours && strcmp(s[1], "products") == 0)
        route = PRODUCTS, method_ok = get;
    else if (ours && strcmp(s[1], "quicklook") == 0)
        route = QUICKLOOK, method_ok = get;
    if (route == NONE) {
        reply_error(r, 404, "not_found", "no such endpoint: %s %s", q->method, q->path);
        return;
    }
    if (!method_ok) {
        reply_error(r, 405, "method_not_allowed", "%s is not allowed on %s", q->method, q->path);
        return;
    }
    if ((post || del) && !authorized(a, q, r))
        return;
    if (route == PAGE) { /* no database needed: the page asks for what it shows */
        r->content_type = "text/html; charset=utf-8";
        r->body = strdup(ct_status_html);
        r->status = r->body ? 200 : 500;
        return;
    }
    if (route == QUICKLOOK) {
        route_quicklook(a, q, r);
        return;
    }
    cq_client *c = NULL;
    ct_err e;
    if (borrow(a, &c, &e) != CT_OK) {
        if (route == METRICS) /* the disks still, and database_up 0 */
            route_metrics(a, NULL, r);
        else if (route == HEALTH)
            reply(r, 503,
                  json_pack("{s:s, s:b, s:s, s:s, s:s}", "status", "unhealthy", "enabled", 1,
                            "queue", a->queue, "database", "down", "error", e.msg));
        else
            reply_err(r, &e);
        return;
    }
    switch (route) {
    case SPAWN: route_spawn(a, c, q, r); break;
    case LIST: route_list(c, q, r); break;
    case TASK: route_task(c, s[2], "get", q, r); break;
    case CANCEL: route_task(c, s[2], "cancel", q, r); break;
    case RETRY: route_task(c, s[2], "retry", q, r); break;
    case STATS: route_stats(c, s[2], r); break;
    case QUEUES: route_stats(c, NULL, r); break;
    case SCHEDULES: route_schedules(a, c, n == 3 ? s[2] : NULL, q, r); break;
    case WORKFLOWS: route_workflows(a, c, n == 3 ? s[2] : NULL, q, r); break;
    case PRODUCTS: route_products(c, q, r); break;
    case HEALTH: route_health(a, c, r); break;
    case METRICS: route_metrics(a, c, r); break;
    case NONE:
    case PAGE:
    case QUICKLOOK: break;
    }
    give_back(a, c);
}

/* ---- Life ------------------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s && s[0] ? strdup(s) : NULL;
}

void ct_api_destroy(ct_api *a)
{
    if (a == NULL)
        return;
    for (int i = 0; i < a->nidle; i++)
        cq_disconnect(a->idle[i]);
    free(a->idle);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a->conninfo);
    free(a->queue);
    free(a->token);
    free(a->products_dir);
    free(a->state_dir);
    free(a->staging);
    free(a);
}

ct_code ct_api_create(const ct_api_opts *o, ct_api **out, ct_err *err)
{
    *out = NULL;
    if (o->conninfo == NULL || o->queue == NULL || !cq_name_valid(o->queue) || o->connections < 1 ||
        !(o->metrics_window_sec > 0))
        return ct_fail(err, CT_EINVAL,
                       "api: a database, a valid default queue, at least one "
                       "connection and a positive metrics window are needed");
    ct_api *a = calloc(1, sizeof *a);
    if (a == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->max = o->connections;
    a->window_sec = o->metrics_window_sec;
    a->disk_guard = o->disk_guard;
    a->admit = o->admit;
    a->admit_ctx = o->admit_ctx;
    a->idle = calloc((size_t)a->max, sizeof *a->idle);
    a->conninfo = strdup(o->conninfo);
    a->queue = strdup(o->queue);
    a->token = dup_or_null(o->token);
    a->products_dir = dup_or_null(o->products_dir);
    a->state_dir = dup_or_null(o->state_dir);
    if (a->products_dir && asprintf(&a->staging, "%s/vis", a->products_dir) < 0)
        a->staging = NULL;
    if (a->idle == NULL || a->conninfo == NULL || a->queue == NULL ||
        (o->token && o->token[0] && a->token == NULL) || (a->products_dir && a->staging == NULL)) {
        ct_api_destroy(a);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    /* One connection now: a server whose database is not there says so at start. */
    cq_client *c = NULL;
    const ct_code rc = borrow(a, &c, err);
    if (rc != CT_OK) {
        ct_api_destroy(a);
        return rc;
    }
    give_back(a, c);
    *out = a;
    return CT_OK;
}
