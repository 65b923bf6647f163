/*
 * commands.h -- the top-level `contimg` subcommands, one file each.
 */
#ifndef CONTIMG_COMMANDS_H
#define CONTIMG_COMMANDS_H

#include "config.h"

int cmd_db(int argc, char **argv, const ct_config *cfg);
int cmd_task(int argc, char **argv, const ct_config *cfg);
int cmd_queue(int argc, char **argv, const ct_config *cfg);
int cmd_reap(int argc, char **argv, const ct_config *cfg);
int cmd_demo(int argc, char **argv, const ct_config *cfg);
int cmd_simulate(int argc, char **argv, const ct_config *cfg);
int cmd_convert(int argc, char **argv, const ct_config *cfg);
int cmd_image(int argc, char **argv, const ct_config *cfg);
int cmd_run(int argc, char **argv, const ct_config *cfg);
int cmd_ingest(int argc, char **argv, const ct_config *cfg);
int cmd_products(int argc, char **argv, const ct_config *cfg);
int cmd_mosaic(int argc, char **argv, const ct_config *cfg);
int cmd_sources(int argc, char **argv, const ct_config *cfg);
int cmd_publish(int argc, char **argv, const ct_config *cfg);
int cmd_calibrate(int argc, char **argv, const ct_config *cfg);
int cmd_flag(int argc, char **argv, const ct_config *cfg);
int cmd_serve(int argc, char **argv, const ct_config *cfg);
int cmd_schedule(int argc, char **argv, const ct_config *cfg);

#endif
