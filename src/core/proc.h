/*
 * proc.h -- running a child program and waiting for it.
 *
 * Used to drive PostgreSQL's own tools (initdb, pg_ctl). When the caller is
 * root and a user name is given, the child drops to that user first: the
 * server refuses to run as root, and a private cluster should not.
 */
#ifndef CONTIMG_PROC_H
#define CONTIMG_PROC_H

#include "error.h"

#include <sys/types.h>

typedef struct ct_proc_opts {
    const char *run_as;   /* user to become when euid is 0; NULL = stay */
    const char *cwd;      /* directory to start in; NULL = "/" */
    const char *log_path; /* append stdout+stderr here; NULL = /dev/null */
} ct_proc_opts;

/* Runs argv[0] (an absolute path) with argv, waits, and stores its exit
 * status in *exit_status (128+signal when killed). CT_EIO when it could not
 * be started at all. */
ct_code ct_proc_run(const char *const argv[], const ct_proc_opts *opts, int *exit_status,
                    ct_err *err);

/* Looks up a user; CT_ENOTFOUND if there is none of that name. */
ct_code ct_proc_user(const char *name, uid_t *uid, gid_t *gid, ct_err *err);

/* Whether `name` (uid/gid) may search and write directory `dir`, decided by
 * trying it in a child that has dropped to that user. */
int ct_proc_user_can_write(const char *name, const char *dir);

#endif
