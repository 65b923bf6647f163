/* schedules.c -- see schedules.h. */
#define _GNU_SOURCE
#include "schedules.h"

#include "cron.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ct_code ct_schedule_put(cq_client *c, const char *name, const char *cron, const char *queue,
                        const char *task_name, const json_t *params, bool enabled, json_t **row,
                        ct_err *err)
{
    if (row)
        *row = NULL;
    if (!cq_name_valid(name) || !cq_name_valid(task_name) || !cq_name_valid(queue))
        return ct_fail(err, CT_EINVAL,
                       "schedule: the name, task name and queue must each be "
                       "[A-Za-z0-9][A-Za-z0-9._-]{0,126}");
    if (params && !json_is_object(params))
        return ct_fail(err, CT_EINVAL, "schedule %s: params must be a JSON object", name);
    ct_cron cr;
    ct_code rc = ct_cron_parse(cron, &cr, err);
    if (rc != CT_OK)
        return rc;
    json_t *now = NULL;
    if ((rc = cq_query_json(c, "schedule: now", "SELECT to_json(extract(epoch FROM now()))", 0,
                            NULL, true, &now, err)) != CT_OK)
        return rc;
    const int64_t next = ct_cron_next(&cr, (int64_t)floor(json_number_value(now)));
    json_decref(now);
    if (next < 0)
        return ct_fail(err, CT_EINVAL, "schedule %s: '%s' never comes due", name, cron);
    char *p = params ? json_dumps(params, JSON_COMPACT) : strdup("{}");
    char next_s[32];
    snprintf(next_s, sizeof next_s, "%lld", (long long)next);
    const char *v[7] = {name, cron, queue, task_name, p, next_s, enabled ? "true" : "false"};
    json_t *out = NULL;
    rc = cq_query_json(c, "schedule: put",
                       "SELECT row_to_json(s) FROM absurd.put_schedule($1, $2, $3, $4, $5::jsonb,"
                       " to_timestamp($6::float8), $7::boolean) s",
                       7, v, true, &out, err);
    free(p);
    if (rc == CT_OK && row)
        *row = out;
    else
        json_decref(out);
    return rc;
}

ct_code ct_schedule_delete(cq_client *c, const char *name, ct_err *err)
{
    const char *v[1] = {name};
    json_t *n = NULL;
    ct_code rc = cq_query_json(c, "schedule: delete",
                               "WITH d AS (DELETE FROM absurd.schedules WHERE schedule_name = $1"
                               " RETURNING 1) SELECT to_json(count(*)) FROM d",
                               1, v, false, &n, err);
    if (rc == CT_OK && json_integer_value(n) == 0)
        rc = ct_fail(err, CT_ENOTFOUND, "no schedule named '%s'", name);
    json_decref(n);
    return rc;
}

ct_code ct_schedule_list(cq_client *c, json_t **rows, ct_err *err)
{
    return cq_query_json(c, "schedule: list",
                         "SELECT coalesce(json_agg(row_to_json(s) ORDER BY s.schedule_name), "
                         "'[]') FROM absurd.schedules s",
                         0, NULL, true, rows, err);
}

bool ct_schedule_describe(const json_t *entry, char *out, size_t size)
{
    const char *why = json_string_value(json_object_get(entry, "error"));
    snprintf(out, size, "%s schedule %s due %s: %s%s", why ? "unfired  " : "fired    ",
             json_string_value(json_object_get(entry, "name")),
             json_string_value(json_object_get(entry, "due")), why ? "" : "task ",
             why ? why : json_string_value(json_object_get(entry, "task_id")));
    return why == NULL;
}

ct_code ct_schedule_tick(cq_client *c, json_t **fired, ct_err *err)
{
    if (fired)
        *fired = NULL;
    json_t *due = NULL;
    ct_code rc = cq_query_json(
        c, "schedule: due",
        "SELECT json_build_object('now', extract(epoch FROM now()), 'due', coalesce(json_agg("
        " json_build_object('name', schedule_name, 'cron', cron, 'at', extract(epoch FROM "
        " next_run_at)) ORDER BY next_run_at), '[]')) FROM absurd.schedules"
        " WHERE enabled AND next_run_at <= now()",
        0, NULL, true, &due, err);
    if (rc != CT_OK)
        return rc;
    const double now = json_number_value(json_object_get(due, "now"));
    json_t *out = json_array();
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(due, "due"), i, d)
    {
        const char *name = json_string_value(json_object_get(d, "name"));
        const double at = json_number_value(json_object_get(d, "at"));
        ct_cron cr;
        ct_err e;
        int64_t next = -1;
        if (ct_cron_parse(json_string_value(json_object_get(d, "cron")), &cr, &e) == CT_OK)
            next = ct_cron_next(&cr, (int64_t)floor(fmax(at, now)));
        /* A schedule whose expression no longer parses or never comes due again fires
         * this once and is then disabled (next_run_at far away would hide why). */
        char at_s[40], next_s[40];
        snprintf(at_s, sizeof at_s, "%.6f", at);
        snprintf(next_s, sizeof next_s, "%lld", (long long)(next >= 0 ? next : (int64_t)now));
        const char *v[3] = {name, at_s, next_s};
        json_t *id = NULL;
        char when[40];
        cq_format_time(at, when, sizeof when);
        /* One schedule's failure (its queue full, say) leaves it due for a later tick and
         * does not hold the others back: it is reported with them. */
        if (cq_query_json(c, "schedule: fire",
                          "SELECT coalesce(to_json(absurd.fire_schedule($1, "
                          "to_timestamp($2::float8), to_timestamp($3::float8))), 'null'::json)",
                          3, v, false, &id, &e) != CT_OK) {
            json_array_append_new(
                out, json_pack("{s:s, s:s, s:s}", "name", name, "due", when, "error", e.msg));
            continue;
        }
        if (next < 0) {
            json_t *n = NULL;
            (void)cq_query_json(c, "schedule: disable",
                                "WITH u AS (UPDATE absurd.schedules SET enabled = false"
                                " WHERE schedule_name = $1 RETURNING 1) SELECT to_json(count(*))"
                                " FROM u",
                                1, v, true, &n, &e);
            json_decref(n);
        }
        if (json_is_string(id)) {
            json_array_append_new(
                out, json_pack("{s:s, s:s, s:O}", "name", name, "due", when, "task_id", id));
        }
        json_decref(id);
    }
    json_decref(due);
    if (rc == CT_OK && fired)
        *fired = out;
    else
        json_decref(out);
    return rc;
}
