/*
 * schedules.h -- tasks spawned on a cron schedule (sql/0007_schedules.sql), over the queue
 * client's connection.
 *
 * Owns: adding, listing and removing schedules, and the tick that fires every due one.
 * A due schedule spawns one task of its task name into its queue, with its params and
 * {"schedule": {"name", "due"}} added, keyed schedule:NAME:DUE; the database fires each
 * due time once however many tickers race (a compare-and-set on the schedule's row in the
 * spawn's transaction). The next due time comes from the cron expression (cron.h) after
 * the later of the due time and now: a schedule missed while nothing ticked fires once,
 * then resumes from now. Times are the database's clock. Does not own: cron syntax
 * (cron.h), the queue's rules (queue.h).
 */
#ifndef CONTIMG_SCHEDULES_H
#define CONTIMG_SCHEDULES_H

#include "error.h"
#include "queue.h"

#include <jansson.h>
#include <stdbool.h>

/* Adds or replaces schedule name: CT_EINVAL for a bad name, cron expression or params
 * (not an object), CT_EUNKNOWN_QUEUE. *row (may be NULL) gets the schedule as stored. */
ct_code ct_schedule_put(cq_client *c, const char *name, const char *cron, const char *queue,
                        const char *task_name, const json_t *params, bool enabled, json_t **row,
                        ct_err *err);

/* Removes one; CT_ENOTFOUND when there is none of that name. */
ct_code ct_schedule_delete(cq_client *c, const char *name, ct_err *err);

/* Every schedule, by name: [{schedule_name, cron, queue_name, task_name, params, enabled,
 * next_run_at, last_run_at, last_task_id, ...}]. */
ct_code ct_schedule_list(cq_client *c, json_t **rows, ct_err *err);

/* Fires every due schedule once. *fired (may be NULL): [{"name", "due", "task_id"}] of the
 * ones this call fired (a schedule another ticker fired first is not among them), and
 * [{"name", "due", "error"}] for one that could not fire (its queue full, say: it stays
 * due, for a later tick). Fails only when the due schedules cannot be read. */
ct_code ct_schedule_tick(cq_client *c, json_t **fired, ct_err *err);

/* One entry of a tick's *fired as a log line: "fired     schedule NAME due DUE: task ID"
 * or "unfired   schedule NAME due DUE: WHY". Returns whether it fired. */
bool ct_schedule_describe(const json_t *entry, char *out, size_t size);

#endif
