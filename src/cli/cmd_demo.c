/*
 * cmd_demo.c -- `contimg demo`: the main job on a built-in default.
 *
 * Simulates one DSA-110 observation (16 subband files, three point sources,
 * thermal noise and the simulator's interference) under the state directory,
 * ingests it, runs the engine under mpirun until the queue is drained (convert,
 * flag-rfi, then imaging, committed with their products) and prints the
 * image's products row. Each step is the
 * ordinary command, run as a child, so what the demo shows is what an
 * operator would type.
 */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEMO_RANKS "3"

/* Runs argv (looked up on PATH) with this process's stdout and stderr. */
static int run_child(char *const argv[])
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "contimg: demo: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int step(const char *what, char *const argv[])
{
    printf("\n== %s\n$", what);
    for (int i = 0; argv[i]; i++)
        printf(" %s", argv[i]);
    printf("\n");
    int rc = run_child(argv);
    if (rc != 0)
        fprintf(stderr, "contimg: demo: %s failed (exit %d)\n", what, rc);
    return rc;
}

static bool write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    bool ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0)
        ok = false;
    return ok;
}

int cmd_demo(int argc, char **argv, const ct_config *cfg)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: contimg demo\n\n"
               "The main job on a built-in default: simulates one observation (16 UVH5\n"
               "subband files with three point sources, noise and interference: narrowband\n"
               "transmitters, a broadband burst, spikes, a dead antenna) under the state\n"
               "directory, ingests it, runs `mpirun -np " DEMO_RANKS " contimg run --drain`\n"
               "(convert, flag-rfi, then imaging; results committed with their products)\n"
               "and prints the image's products row. Needs a running, migrated database.\n");
        return EXIT_OK;
    }
    if (argc > 1)
        return cli_usage_error("demo: unexpected argument '%s'", argv[1]);
    char self[CT_PATH_MAX], dir[CT_PATH_MAX], incoming[CT_PATH_MAX + 32], chains[CT_PATH_MAX + 32],
        sources[CT_PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    ct_err err;
    if (n <= 0)
        return ct_fail(&err, CT_EIO, "demo: cannot find my own executable"), cli_report(&err);
    self[n] = '\0';
    if (ct_absolute_path(cfg->state_dir, dir, sizeof dir, &err) != CT_OK)
        return cli_report(&err);
    snprintf(incoming, sizeof incoming, "%s/demo/incoming", dir);
    snprintf(chains, sizeof chains, "%s/demo/chains.json", dir);
    snprintf(sources, sizeof sources, "%s/demo/sources.txt", dir);
    if (ct_mkdir_p(incoming, 0755, &err) != CT_OK)
        return cli_report(&err);
    /* A 512-pixel image of 20 arcsec cells: the demo takes about a minute on
     * two cores. A real deployment's chains file leaves the size to the stage. */
    if (!write_text(chains, "{\"quick\": [\"convert-uvh5-to-ms\", \"flag-rfi\", "
                            "{\"task\": \"imaging\", "
                            "\"config\": {\"size\": 512, \"cell_arcsec\": 20, \"niter\": 1000, "
                            "\"threshold_jy\": 0.02}}]}\n") ||
        !write_text(sources, "# east_deg north_deg flux_jy (offsets from the pointing)\n"
                             "0 0 5.0\n0.5 0.3 3.0\n-0.4 -0.5 2.0\n"))
        return ct_fail(&err, CT_EIO, "demo: cannot write under %s", dir), cli_report(&err);
    setenv("CONTIMG_CHAINS_FILE", chains, 1);
    setenv("CONTIMG_STATE_DIR", dir, 1);
    if (getuid() == 0) { /* Open MPI refuses root unless told this twice */
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    }
    /* A new observation each run: named by the current minute. */
    char start[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    tm.tm_sec = 0;
    strftime(start, sizeof start, "%Y-%m-%dT%H:%M:%S", &tm);
    printf("contimg demo: one simulated observation (%s) from 16 subband files to an image\n",
           start);
    char *sim[] = {self,        "simulate",   "--out",      incoming,
                   "--start",   start,        "--dec",      "55",
                   "--sources", sources,      "--relative", "--noise-jy",
                   "0.05",      "--times",    "8",          "--channels-per-subband",
                   "2",         "--rfi-seed", "7",          "--rfi-jy",
                   "2",         NULL};
    char *ingest[] = {self, "ingest", incoming, NULL};
    char *run[] = {"mpirun", "--oversubscribe", "-np", DEMO_RANKS, self, "run", "--drain", NULL};
    char *products[] = {self, "products", "--group", start, NULL};
    int rc;
    if ((rc = step("simulate the observation", sim)) != 0 ||
        (rc = step("ingest: spawn its convert task", ingest)) != 0 ||
        (rc = step("the engine: convert, flag and image, then drain", run)) != 0 ||
        (rc = step("the products", products)) != 0)
        return rc == 127 ? EXIT_FAILURE_INTERNAL : rc;
    return EXIT_OK;
}
