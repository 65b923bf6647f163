/* cmd_run.c -- `contimg run`: the engine, under mpirun, srun or alone. */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "engine.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: mpirun -np N contimg run [--drain] [options]\n\n"
    "Runs the pipeline engine: rank 0 claims tasks from the queue and hands each to a\n"
    "group of ranks; each finished task is committed with its products and the next\n"
    "task of its chain in one transaction.\n\n"
    "  --drain               exit when no task this engine works is left (batch);\n"
    "                        without it the engine waits for new tasks (observing)\n"
    "  --ranks-per-task N    ranks given to one task (default: every worker rank)\n"
    "  --grace SECONDS       on SIGTERM/SIGINT/SIGUSR1, how long tasks in flight may\n"
    "                        finish (default CONTIMG_DRAIN_GRACE_SEC, 240)\n"
    "  --max-tasks N         claim at most N tasks, then finish (benchmarks)\n"
    "  --quiet               no line per task\n"
    "  --json                print a summary as JSON at the end\n\n"
    "A signal drains: no more claims, tasks in flight finish, exit 0. Tasks still\n"
    "running after the grace period are released (no attempt spent) and the job\n"
    "ends with status 75. Exit 3: database unavailable.";

static int run_body(int argc, char **argv, const ct_config *cfg)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    static const struct option opts[] = {
        {"drain", no_argument, NULL, 'd'},       {"ranks-per-task", required_argument, NULL, 'r'},
        {"grace", required_argument, NULL, 'g'}, {"max-tasks", required_argument, NULL, 'm'},
        {"quiet", no_argument, NULL, 'q'},       {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {0, 0, 0, 0}};
    ct_engine_opts o = {.grace_sec = -1};
    bool json = false;
    long v;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            if (rank == 0)
                printf("%s\n", usage);
            return EXIT_OK;
        case 'd': o.drain = true; break;
        case 'q': o.quiet = true; break;
        case 'j': json = true; break;
        case 'r':
            if (!cli_parse_long(optarg, 1, 1 << 20, &v))
                return cli_rank_usage_error(rank, "--ranks-per-task must be >= 1, got '%s'",
                                            optarg);
            o.ranks_per_task = (int)v;
            break;
        case 'g':
            if (!cli_parse_double(optarg, 0, 86400, &o.grace_sec))
                return cli_rank_usage_error(rank, "--grace must be 0..86400 seconds, got '%s'",
                                            optarg);
            break;
        case 'm':
            if (!cli_parse_long(optarg, 1, 1L << 40, &v))
                return cli_rank_usage_error(rank, "--max-tasks must be >= 1, got '%s'", optarg);
            o.max_tasks = v;
            break;
        case ':': return cli_rank_usage_error(rank, "run: %s needs a value", argv[optind - 1]);
        default: return cli_rank_usage_error(rank, "run: unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_rank_usage_error(rank, "run: unexpected argument '%s'", argv[optind]);
    ct_engine_catch_signals();
    ct_engine_summary s;
    ct_err err;
    ct_err_clear(&err);
    ct_code rc = ct_engine_run(MPI_COMM_WORLD, cfg, &o, &s, &err);
    if (rank != 0)
        return cli_exit_code(rc);
    if (json) {
        json_t *j =
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:f, s:I, s:I}", "claimed",
                      (json_int_t)s.claimed, "completed", (json_int_t)s.completed, "failed",
                      (json_int_t)s.failed, "released", (json_int_t)s.released, "dropped",
                      (json_int_t)s.dropped, "journaled", (json_int_t)s.journaled, "replayed",
                      (json_int_t)s.replayed, "reaped", (json_int_t)s.reaped, "signalled",
                      s.signalled, "seconds", s.seconds, "heap_bytes", (json_int_t)s.heap_bytes,
                      "peak_rss_kb", (json_int_t)s.peak_rss_kb);
        cli_print_json(j);
    } else if (!o.quiet) {
        printf("engine done in %.1f s: %ld claimed, %ld completed, %ld failed, %ld released, "
               "%ld dropped, %ld journaled, %ld replayed, %ld reaped%s\n",
               s.seconds, s.claimed, s.completed, s.failed, s.released, s.dropped, s.journaled,
               s.replayed, s.reaped, s.signalled ? " (drained on a signal)" : "");
    }
    return rc == CT_OK ? EXIT_OK : cli_report(&err);
}

int cmd_run(int argc, char **argv, const ct_config *cfg)
{
    /* Before MPI_Init, which takes a few hundred ms: a drain asked for while the job starts
     * is a drain, not a death by the signal's default action (the fault harness's TERM
     * 50 ms into a run killed rank 0). run_body catches them again after MPI_Init. */
    ct_engine_catch_signals();
    return cli_mpi_main("run", run_body, argc, argv, cfg);
}
