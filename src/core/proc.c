/* proc.c -- see proc.h. */
#define _GNU_SOURCE
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
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

/* Who the child becomes, resolved before fork (lookups are not safe after
 * fork in a multithreaded parent). */
typedef struct identity {
    bool change;
    const char *name;
    uid_t uid;
    gid_t gid;
} identity;

static ct_code resolve_identity(const char *run_as, identity *id, ct_err *err)
{
    memset(id, 0, sizeof *id);
    if (run_as == NULL || geteuid() != 0)
        return CT_OK;
    id->change = true;
    id->name = run_as;
    return ct_proc_user(run_as, &id->uid, &id->gid, err);
}

/* In the child: become id. initgroups reads the group database; the
 * parents here are single-threaded, so that is safe. */
static int become(const identity *id)
{
    if (!id->change)
        return 0;
    if (initgroups(id->name, id->gid) != 0 || setgid(id->gid) != 0 || setuid(id->uid) != 0)
        return -1;
    return 0;
}

static int wait_status(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

/* The child reports a failure before exec through a close-on-exec pipe as
 * (stage, errno), so the program's own exit codes stay unambiguous. */
enum { STAGE_IDENTITY = 1, STAGE_REDIRECT, STAGE_CHDIR, STAGE_EXEC };

static void child_fail(int fd, int stage)
{
    int msg[2] = {stage, errno};
    ssize_t w = write(fd, msg, sizeof msg);
    (void)w;
    _exit(127);
}

ct_code ct_proc_run(const char *const argv[], const ct_proc_opts *opts, int *exit_status,
                    ct_err *err)
{
    ct_proc_opts none = {0};
    if (opts == NULL)
        opts = &none;
    identity id;
    ct_code rc = resolve_identity(opts->run_as, &id, err);
    if (rc != CT_OK)
        return rc;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return ct_fail(err, CT_EIO, "pipe: %s", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return ct_fail(err, CT_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        /* Drop privileges first, so the log belongs to (and stays writable
         * by) the user the program runs as. */
        if (become(&id) != 0)
            child_fail(fds[1], STAGE_IDENTITY);
        int out = open(opts->log_path ? opts->log_path : "/dev/null",
                       O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (out < 0 || in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
            child_fail(fds[1], STAGE_REDIRECT);
        if (chdir(opts->cwd ? opts->cwd : "/") != 0)
            child_fail(fds[1], STAGE_CHDIR);
        execv(argv[0], (char *const *)argv);
        child_fail(fds[1], STAGE_EXEC);
    }
    close(fds[1]);
    int msg[2] = {0, 0};
    ssize_t got;
    do {
        got = read(fds[0], msg, sizeof msg);
    } while (got < 0 && errno == EINTR);
    close(fds[0]);
    int st = wait_status(pid);
    if (got == (ssize_t)sizeof msg) {
        static const char *const what[] = {"", "switch to user", "redirect output of",
                                           "enter the working directory for", "run"};
        int stage = msg[0] >= 1 && msg[0] <= 4 ? msg[0] : STAGE_EXEC;
        return ct_fail(err, CT_EIO, "could not %s %s%s%s: %s", what[stage], argv[0],
                       stage == STAGE_IDENTITY ? " as " : "",
                       stage == STAGE_IDENTITY ? id.name : "", strerror(msg[1]));
    }
    if (st < 0)
        return ct_fail(err, CT_EIO, "waiting for %s failed", argv[0]);
    *exit_status = st;
    return CT_OK;
}

int ct_proc_user_can_write(const char *name, const char *dir)
{
    identity id;
    if (resolve_identity(name, &id, NULL) != CT_OK)
        return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        if (become(&id) != 0)
            _exit(1);
        _exit(access(dir, W_OK | X_OK) == 0 ? 0 : 1);
    }
    return wait_status(pid) == 0;
}
