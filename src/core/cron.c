/* cron.c -- see cron.h. */
#define _GNU_SOURCE
#include "cron.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* A number or (names non-NULL) a name of field at *p; advances p. -1 when neither. */
static int value(const char **p, const char *const *names, int nnames, int first)
{
    if (isdigit((unsigned char)**p)) {
        long v = 0;
        while (isdigit((unsigned char)**p) && v < 1000)
            v = v * 10 + (*(*p)++ - '0');
        return (int)v;
    }
    for (int i = 0; names && i < nnames; i++)
        if (strncasecmp(*p, names[i], 3) == 0 && !isalpha((unsigned char)(*p)[3])) {
            *p += 3;
            return first + i;
        }
    return -1;
}

/* One field (text up to its end, NUL-terminated) into bits lo..hi of *bits. */
static bool field(const char *s, int lo, int hi, const char *const *names, int nnames,
                  uint64_t *bits, int *any)
{
    *bits = 0;
    *any = s[0] == '*'; /* "*" and "*" with a step, as Vixie cron reads the day fields */
    const char *p = s;
    for (;;) {
        int a, b, step = 1;
        bool single = false;
        if (*p == '*') {
            a = lo;
            b = hi;
            p++;
        } else {
            if ((a = value(&p, names, nnames, lo)) < 0)
                return false;
            b = a;
            single = *p != '-';
            if (*p == '-') {
                p++;
                if ((b = value(&p, names, nnames, lo)) < 0)
                    return false;
            }
        }
        if (*p == '/') {
            p++;
            if ((step = value(&p, NULL, 0, 0)) < 1)
                return false;
            if (single) /* "a/n": from a to the end */
                b = hi;
        }
        if (a < lo || b > hi || a > b)
            return false;
        for (int v = a; v <= b; v += step)
            *bits |= 1ull << v;
        if (*p == '\0')
            return true;
        if (*p++ != ',')
            return false;
    }
}

ct_code ct_cron_parse(const char *expr, ct_cron *out, ct_err *err)
{
    memset(out, 0, sizeof *out);
    static const struct {
        const char *macro, *fields;
    } macros[] = {{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                  {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                  {"@hourly", "0 * * * *"}};
    const char *e = expr ? expr : "";
    while (isspace((unsigned char)*e))
        e++;
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
        if (strcasecmp(e, macros[i].macro) == 0)
            e = macros[i].fields;
    char buf[256];
    if (snprintf(buf, sizeof buf, "%s", e) >= (int)sizeof buf)
        return ct_fail(err, CT_EINVAL, "cron: expression too long");
    char *f[6] = {0}, *save = NULL;
    int n = 0;
    for (char *t = strtok_r(buf, " \t", &save); t && n < 6; t = strtok_r(NULL, " \t", &save))
        f[n++] = t;
    if (n != 5)
        return ct_fail(err, CT_EINVAL,
                       "cron: '%s' has %d fields; want minute hour day-of-month month "
                       "day-of-week (or @hourly, @daily, @weekly, @monthly, @yearly)",
                       expr ? expr : "", n);
    static const char *const what[5] = {"minute (0-59)", "hour (0-23)", "day of month (1-31)",
                                        "month (1-12 or jan-dec)", "day of week (0-7 or sun-sat)"};
    uint64_t bits[5];
    int any[5];
    const bool ok[5] = {
        field(f[0], 0, 59, NULL, 0, &bits[0], &any[0]),
        field(f[1], 0, 23, NULL, 0, &bits[1], &any[1]),
        field(f[2], 1, 31, NULL, 0, &bits[2], &any[2]),
        field(f[3], 1, 12, month_names, 12, &bits[3], &any[3]),
        field(f[4], 0, 7, day_names, 7, &bits[4], &any[4]),
    };
    for (int i = 0; i < 5; i++)
        if (!ok[i])
            return ct_fail(err, CT_EINVAL, "cron: '%s' is not a %s field", f[i], what[i]);
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->mday = (uint32_t)bits[2];
    out->month = (uint16_t)bits[3];
    out->wday = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f); /* 7 is Sunday too */
    out->mday_any = any[2];
    out->wday_any = any[4];
    return CT_OK;
}

static bool day_matches(const ct_cron *c, const struct tm *tm)
{
    const bool md = (c->mday >> tm->tm_mday) & 1, wd = (c->wday >> tm->tm_wday) & 1;
    if (c->mday_any || c->wday_any) /* one of them "*": the other decides */
        return md && wd;
    return md || wd;
}

int64_t ct_cron_next(const ct_cron *c, int64_t after)
{
    const int64_t minute = after >= 0 ? after / 60 : -((-after + 59) / 60); /* floor */
    time_t t = (time_t)((minute + 1) * 60); /* the next whole minute */
    const time_t limit = t + (time_t)5 * 366 * 86400;
    struct tm tm;
    while (t < limit) {
        gmtime_r(&t, &tm);
        if (!((c->month >> (tm.tm_mon + 1)) & 1)) { /* the first of the next month */
            tm.tm_mon++;
            tm.tm_mday = 1;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        } else if (!day_matches(c, &tm)) { /* the next day */
            tm.tm_mday++;
            tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
        } else if (!((c->hour >> tm.tm_hour) & 1)) { /* the next hour */
            tm.tm_hour++;
            tm.tm_min = tm.tm_sec = 0;
        } else if (!((c->minute >> tm.tm_min) & 1)) {
            tm.tm_min++;
            tm.tm_sec = 0;
        } else {
            return (int64_t)t;
        }
        t = timegm(&tm); /* normalizes the carried field */
    }
    return -1;
}

bool ct_time_parse_utc(const char *s, double *unix_sec)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%d", &tm) : NULL;
    if (end == NULL || (*end != 'T' && *end != ' '))
        return false;
    end = strptime(end + 1, "%H:%M:%S", &tm);
    if (end == NULL)
        return false;
    double frac = 0;
    if (*end == '.') {
        char *after;
        frac = strtod(end, &after);
        if (after == end + 1)
            return false;
        end = after;
    }
    if (*end != '\0' && strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0)
        return false;
    *unix_sec = (double)timegm(&tm) + frac;
    return true;
}
