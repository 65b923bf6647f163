/*
 * cli_util.h -- what every `contimg` subcommand shares: exit codes, error
 * reporting, option parsing, connecting, and rendering tasks as text or JSON.
 */
#ifndef CONTIMG_CLI_UTIL_H
#define CONTIMG_CLI_UTIL_H

#include "config.h"
#include "error.h"
#include "queue.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

/* Exit codes, documented in docs/cli.md. */
enum {
    EXIT_OK = 0,
    EXIT_FAILURE_INTERNAL = 1, /* an unexpected database or system error */
    EXIT_USAGE = 2,            /* bad command line or invalid input */
    EXIT_DB_UNAVAILABLE = 3,   /* the database cannot be reached */
    EXIT_NOT_FOUND = 4,        /* no such task */
    EXIT_REFUSED = 5,          /* the queue refused: wrong state, lease expired or lost */
    EXIT_QUEUE_FULL = 6,       /* backpressure: the queue holds its most waiting tasks */
};

/* One subcommand: name, one-line summary, and its function. */
typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv, const ct_config *cfg);
} cli_command;

int cli_exit_code(ct_code code);

/* Prints "contimg: MESSAGE" (one line) to stderr; returns the exit code. */
int cli_report(const ct_err *err);
/* Prints "contimg: MESSAGE" for a usage error; returns EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with a va_list, for wrappers. */
int cli_vusage_error(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* For commands run under mpirun: only rank 0 prints; every rank returns EXIT_USAGE. */
int cli_rank_usage_error(int rank, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cli_report on rank 0; every rank returns the same exit code (err agreed across ranks). */
int cli_rank_report(int rank, const ct_err *err);

/* Runs body(argc, argv, cfg) between MPI_Init and MPI_Finalize (when MPI is
 * not already up), for the commands that run plainly or under mpirun; the
 * exit code is body's, which must be the same on every rank. */
int cli_mpi_main(const char *name, int (*body)(int argc, char **argv, const ct_config *cfg),
                 int argc, char **argv, const ct_config *cfg);

/* Dispatches argv[0] among cmds (a NULL-named terminator ends the list);
 * prints `usage` and the list for --help or no subcommand. */
int cli_dispatch(const char *prog, const char *usage, const cli_command *cmds, int argc,
                 char **argv, const ct_config *cfg);

/* Number parsing for options: the whole string, in range, or false. */
bool cli_parse_long(const char *s, long lo, long hi, long *out);
bool cli_parse_double(const char *s, double lo, double hi, double *out);

/* A JSON object for option what from text: the JSON itself, @FILE (read from the file) or
 * - (standard input). -1 with *out set; EXIT_USAGE, said, when it is not one. */
int cli_parse_json_object(const char *what, const char *text, json_t **out);

/* True when argv has -h or --help among its options. */
bool cli_wants_help(int argc, char **argv);

/* Connects to the configured database. */
ct_code cli_connect(const ct_config *cfg, cq_client **out, ct_err *err);

/* A worker id for tasks claimed by hand: host:pid. */
void cli_worker_id(char *out, size_t size);

/* Prints v as indented JSON followed by a newline, and drops the reference. */
void cli_print_json(json_t *v);

#endif
