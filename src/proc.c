/* proc.c -- see proc.h. */
#define _GNU_SOURCE
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

ct_code ct_proc_user(const char *name, uid_t *uid, gid_t *gid, ct_err *err)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    if (getpwnam_r(name, &pw, buf, sizeof buf, &found) != 0 || found == NULL)
        return ct_fail(err, CT_ENOTFOUND, "no OS user \"%s\"", name);
    *uid = pw.pw_uid;
    *gid = pw.pw_gid;
    return CT_OK;
}

/* In the child: become `name`. Returns 0 or -1. */
static int drop_to(const char *name)
{
    uid_t uid;
    gid_t gid;
    if (ct_proc_user(name, &uid, &gid, NULL) != CT_OK)
        return -1;
    if (initgroups(name, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
        return -1;
    return 0;
}

static int wait_status(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return 127;
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 127;
}

ct_code ct_proc_run(const char *const argv[], const ct_proc_opts *opts, int *exit_status,
                    ct_err *err)
{
    ct_proc_opts none = {0};
    if (opts == NULL)
        opts = &none;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return ct_fail(err, CT_EIO, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Drop privileges first, so the log belongs to (and stays writable
         * by) the user the program runs as. */
        if (opts->run_as != NULL && geteuid() == 0 && drop_to(opts->run_as) != 0)
            _exit(125);
        int out = open(opts->log_path ? opts->log_path : "/dev/null",
                       O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (out < 0 || in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            _exit(126);
        if (chdir(opts->cwd ? opts->cwd : "/") != 0)
            _exit(124);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st = wait_status(pid);
    if (st == 125)
        return ct_fail(err, CT_EIO, "could not switch to user \"%s\" to run %s", opts->run_as,
                       argv[0]);
    if (st == 127)
        return ct_fail(err, CT_EIO, "could not run %s", argv[0]);
    *exit_status = st;
    return CT_OK;
}

int ct_proc_user_can_write(const char *name, const char *dir)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        if (geteuid() == 0 && drop_to(name) != 0)
            _exit(1);
        _exit(access(dir, W_OK | X_OK) == 0 ? 0 : 1);
    }
    return wait_status(pid) == 0;
}
