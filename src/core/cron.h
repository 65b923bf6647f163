/*
 * cron.h -- cron expressions: when a schedule is next due; UTC times as people write them.
 *
 * Owns: parsing the five fields "minute hour day-of-month month day-of-week" (UTC) and
 * the macros @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually); the
 * next time a parsed expression matches; reading an ISO 8601 UTC time. Does not own: what
 * a schedule does (queue.h).
 *
 * Each field takes "*", a number, a range a-b, a step (star, slash, n) or a-b/n, and lists of those
 * separated by commas; months and days of the week also by their three-letter English
 * names (jan..dec, sun..sat); day of the week 0-7, 0 and 7 both Sunday. As in Vixie cron,
 * when both day fields are restricted a day matches either.
 */
#ifndef CONTIMG_CRON_H
#define CONTIMG_CRON_H

#include "error.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ct_cron {
    uint64_t minute;        /* bit m: minute m matches (0-59) */
    uint32_t hour;          /* 0-23 */
    uint32_t mday;          /* 1-31 */
    uint16_t month;         /* 1-12 */
    uint8_t wday;           /* 0-6, Sunday 0 */
    int mday_any, wday_any; /* the field was "*" (for the either-day rule) */
} ct_cron;

/* CT_EINVAL naming the field for anything that is not an expression as above. */
ct_code ct_cron_parse(const char *expr, ct_cron *out, ct_err *err);

/* The first whole minute strictly after `after` (Unix seconds, UTC) that the expression
 * matches; -1 when none within the next 5 years (e.g. "0 0 30 2 *", February 30th). */
int64_t ct_cron_next(const ct_cron *c, int64_t after);

/* "YYYY-MM-DDTHH:MM:SS" (or a space for the T), optionally with fractional seconds and
 * "Z" or "+00:00", as Unix seconds; false for anything else (other offsets included:
 * the pipeline's times are UTC). */
bool ct_time_parse_utc(const char *s, double *unix_sec);

#endif
