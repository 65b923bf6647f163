/*
 * testutil.h -- a small assertion harness for contimg's C tests.
 *
 * CHECK(cond, fmt, ...) records a failure with its location and goes on;
 * REQUIRE stops the current test function. Each program ends with the line
 * "N passed, M failed" and exits non-zero when anything failed.
 */
#ifndef CONTIMG_TESTUTIL_H
#define CONTIMG_TESTUTIL_H

#include "error.h"
#include "queue.h"

#include <stdbool.h>
#include <stdio.h>

extern int tu_passed, tu_failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            tu_passed++;                                                                           \
        } else {                                                                                   \
            tu_failed++;                                                                           \
            fprintf(stderr, "FAIL %s:%d: %s -- ", __FILE__, __LINE__, #cond);                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        int before_ = tu_failed;                                                                   \
        CHECK(cond, __VA_ARGS__);                                                                  \
        if (tu_failed != before_)                                                                  \
            return;                                                                                \
    } while (0)

/* CHECK that a ct_code is CT_OK, printing the error message otherwise. */
#define CHECK_OK(expr, err)   CHECK((expr) == CT_OK, "%s", (err).msg)
#define REQUIRE_OK(expr, err) REQUIRE((expr) == CT_OK, "%s", (err).msg)

/* Runs one test function, printing its name. */
#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int f0_ = tu_failed;                                                                       \
        fn();                                                                                      \
        printf("%s %s\n", tu_failed == f0_ ? "ok  " : "FAIL", #fn);                                \
        fflush(stdout);                                                                            \
    } while (0)

/* Prints the summary line; returns the process exit status. */
int tu_finish(void);

/* The test database's connection string (from CONTIMG_STATE_DIR etc.). */
const char *tu_conninfo(void);

/* Connects, or aborts the program with a message. */
cq_client *tu_connect(void);

/* Registers a queue named PREFIX-PID-N, unique within this run. */
void tu_unique_queue(cq_client *c, const char *prefix, char *out, size_t size);

/* Wall-clock seconds (CLOCK_REALTIME), comparable with database times. */
double tu_now(void);
void tu_sleep(double seconds);

/* Runs a SQL statement over a separate connection; returns the first
 * column of the first row as a malloc'd string: "" if there is none,
 * "(sql error)" (after printing the error) if the statement failed. */
char *tu_sql(const char *sql);

#endif
