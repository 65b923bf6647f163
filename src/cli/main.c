/*
 * main.c -- the `contimg` command: git-style subcommands over the queue,
 * the database and (in later stages) the pipeline.
 */
#include "cli_util.h"
#include "commands.h"

#include <stdio.h>
#include <string.h>

#ifndef CONTIMG_VERSION
#define CONTIMG_VERSION "0.1.0"
#endif

static int cmd_version(int argc, char **argv, const ct_config *cfg)
{
    /* argv[1] is "--version" when called as `contimg --version` */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: contimg version\n\nPrints the version (as `contimg --version` "
                   "does).\n");
            return EXIT_OK;
        }
        if (strcmp(argv[i], "--version") != 0)
            return cli_usage_error("version takes no arguments, got '%s'", argv[i]);
    }
    printf("contimg %s\n", CONTIMG_VERSION);
    return EXIT_OK;
}

static const cli_command commands[] = {
    {"db", "start, stop, inspect and migrate the database", cmd_db},
    {"task", "spawn, list, show, cancel, retry, claim and complete tasks", cmd_task},
    {"queue", "queue statistics, registration and backpressure limits", cmd_queue},
    {"reap", "return tasks of dead or timed-out workers to their queue", cmd_reap},
    {"simulate", "write a simulated DSA-110 observation (16 UVH5 subband files)", cmd_simulate},
    {"convert", "combine one observation's 16 subband files into one UVH5 file (MPI)", cmd_convert},
    {"flag", "flag radio-frequency interference and bad inputs in an observation (MPI)", cmd_flag},
    {"calibrate", "solve antenna gains on a calibrator, apply them to an observation",
     cmd_calibrate},
    {"image", "image one observation: CLEANed, primary-beam corrected FITS (MPI)", cmd_image},
    {"ingest", "spawn tasks for the complete observations in a directory", cmd_ingest},
    {"run", "the pipeline engine: work the queue on MPI ranks (mpirun, srun)", cmd_run},
    {"products", "list the images the pipeline has made, with their QA", cmd_products},
    {"serve", "the status page, the HTTP API under /absurd/ and the Prometheus metrics", cmd_serve},
    {"schedule", "tasks on cron schedules: add, list, remove, tick", cmd_schedule},
    {"mosaic", "primary-beam-weighted mosaics of images, and the mosaic planner (MPI)", cmd_mosaic},
    {"sources", "find the sources of a restored image: Gaussian fits, a catalogue", cmd_sources},
    {"publish", "copy finished products to the archive, each once, with retries", cmd_publish},
    {"demo", "simulate an observation and take it through the engine to an image", cmd_demo},
    {"version", "print the version", cmd_version},
    {NULL, NULL, NULL},
};

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--version") == 0)
        return cmd_version(argc, argv, NULL);
    ct_config cfg;
    ct_err err;
    if (ct_config_load(&cfg, &err) != CT_OK)
        return cli_report(&err);
    return cli_dispatch("contimg", "usage: contimg COMMAND [ARGS...]", commands, argc, argv, &cfg);
}
