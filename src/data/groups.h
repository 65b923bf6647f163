/*
 * groups.h -- finding DSA-110 observations among subband files.
 *
 * The correlator writes one observation as 16 files, one per subband, named
 * YYYY-MM-DDTHH:MM:SS_sbNN.hdf5 (NN = 00..15), each first as
 * ..._incomplete.hdf5 and renamed when finished. The 16 writers start within
 * seconds of each other, not at one instant, so files belong together when
 * their timestamps lie within a tolerance (default 60 s) of the group's
 * first file. A group is named by its sb00 timestamp.
 *
 * This module looks at names only; whether the files agree in times,
 * antennas, channels and pointing is the converter's check, which reads
 * their headers.
 */
#ifndef CONTIMG_GROUPS_H
#define CONTIMG_GROUPS_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>

#define CT_SUBBANDS      16
#define CT_TIMESTAMP_LEN 19 /* YYYY-MM-DDTHH:MM:SS */

typedef struct ct_subband_file {
    char *path; /* DIR/NAME */
    char timestamp[CT_TIMESTAMP_LEN + 1];
    double unix_time;
    int subband;     /* 0..15 */
    bool incomplete; /* still being written (_incomplete) */
} ct_subband_file;

typedef struct ct_group {
    /* The sb00 timestamp, or the earliest file's when sb00 is missing. */
    char id[CT_TIMESTAMP_LEN + 1];
    double unix_time;
    /* The finished file of each subband; NULL where missing or duplicated. */
    const ct_subband_file *subband[CT_SUBBANDS];
    unsigned missing;       /* bit s: no finished file for subband s */
    unsigned duplicated;    /* bit s: more than one finished file for subband s */
    unsigned incomplete;    /* bit s: an _incomplete file for subband s */
    ct_subband_file *files; /* every file of the group, in time then subband order */
    size_t n_files;
} ct_group;

/* A group is ready to convert: all 16 subbands, once each, all finished. */
bool ct_group_complete(const ct_group *g);

/* One line describing what is wrong with g ("" when complete), e.g.
 * "missing sb03 sb07; duplicated sb01; still being written sb15". */
void ct_group_problems(const ct_group *g, char *out, size_t size);

/* Scans dir (not recursively) for subband files and clusters them into
 * groups, oldest first. Names that do not follow the pattern are ignored.
 * tolerance_sec: how far after a group's first file a file may start and
 * still belong to it (> 0). */
ct_code ct_groups_scan(const char *dir, double tolerance_sec, ct_group **groups, size_t *n,
                       ct_err *err);

void ct_groups_free(ct_group *groups, size_t n);

/* Parses a subband file name (no directory). False when it is not one. */
bool ct_subband_name_parse(const char *name, char timestamp[CT_TIMESTAMP_LEN + 1],
                           double *unix_time, int *subband, bool *incomplete);

#endif
