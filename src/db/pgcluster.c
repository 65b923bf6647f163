/* pgcluster.c -- see pgcluster.h. */
#define _GNU_SOURCE
#include "pgcluster.h"

#include "fsutil.h"
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct ct_pgcluster {
    char state_dir[CT_PATH_MAX];
    char bindir[CT_PATH_MAX];
    char base[CT_PATH_MAX]; /* holds data/, run/, postgres.log */
    char data[CT_PATH_MAX];
    char sock[CT_PATH_MAX];
    char log[CT_PATH_MAX];
    char conninfo[CT_PATH_MAX + 128];
    char hash[17];
    const char *run_as; /* NULL unless we are root */
    char os_user[CT_NAME_MAX];
};

/* FNV-1a: a stable name for a state directory, not a security measure. */
static void name_hash(const char *s, char out[17])
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static bool file_exists(const char *dir, const char *name)
{
    char p[CT_PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* The newest /usr/lib/postgresql/N/bin with a pg_ctl, as Debian installs them. */
static ct_code find_bindir(const ct_config *cfg, char *out, size_t size, ct_err *err)
{
    if (cfg->pg_bindir[0]) {
        if (!file_exists(cfg->pg_bindir, "pg_ctl"))
            return ct_fail(err, CT_ENOTFOUND, "CONTIMG_PG_BINDIR=%s has no pg_ctl", cfg->pg_bindir);
        snprintf(out, size, "%s", cfg->pg_bindir);
        return CT_OK;
    }
    int best = -1;
    DIR *d = opendir("/usr/lib/postgresql");
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *end = NULL;
            long v = strtol(e->d_name, &end, 10);
            char bin[CT_PATH_MAX];
            snprintf(bin, sizeof bin, "/usr/lib/postgresql/%s/bin", e->d_name);
            if (end != e->d_name && *end == '\0' && v > best && v < 1000 &&
                file_exists(bin, "pg_ctl") && file_exists(bin, "initdb")) {
                best = (int)v;
                snprintf(out, size, "%s", bin);
            }
        }
        closedir(d);
    }
    if (best < 0)
        return ct_fail(err, CT_ENOTFOUND,
                       "PostgreSQL server programs not found: apt-get install postgresql-15 "
                       "(or set CONTIMG_PG_BINDIR)");
    return CT_OK;
}

static void set_base(ct_pgcluster *pg, const char *base)
{
    snprintf(pg->base, sizeof pg->base, "%s", base);
    snprintf(pg->data, sizeof pg->data, "%s/data", base);
    snprintf(pg->log, sizeof pg->log, "%s/postgres.log", base);
    snprintf(pg->sock, sizeof pg->sock, "%s/run", base);
    struct sockaddr_un sa;
    if (strlen(pg->sock) + strlen("/.s.PGSQL.5432") >= sizeof sa.sun_path)
        snprintf(pg->sock, sizeof pg->sock, "/tmp/contimg-pg-%s", pg->hash);
    snprintf(pg->conninfo, sizeof pg->conninfo,
             "host=%s dbname=" CT_PG_DATABASE " user=" CT_PG_ROLE " application_name=contimg",
             pg->sock);
}

static void fallback_base(const ct_pgcluster *pg, char *out, size_t size)
{
    snprintf(out, size, "/var/lib/contimg/pg-%s", pg->hash);
}

ct_code ct_pgcluster_open(const ct_config *cfg, ct_pgcluster **out, ct_err *err)
{
    *out = NULL;
    ct_pgcluster *pg = calloc(1, sizeof *pg);
    if (pg == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    ct_code rc = ct_absolute_path(cfg->state_dir, pg->state_dir, sizeof pg->state_dir, err);
    if (rc == CT_OK)
        rc = find_bindir(cfg, pg->bindir, sizeof pg->bindir, err);
    if (rc != CT_OK) {
        free(pg);
        return rc;
    }
    name_hash(pg->state_dir, pg->hash);
    if (geteuid() == 0) {
        uid_t uid;
        gid_t gid;
        snprintf(pg->os_user, sizeof pg->os_user, "%s", cfg->pg_os_user);
        if (ct_proc_user(pg->os_user, &uid, &gid, NULL) != CT_OK) {
            rc = ct_fail(err, CT_ENOTFOUND,
                         "running as root, the private PostgreSQL needs an unprivileged OS user; "
                         "\"%s\" does not exist (install postgresql-15 or set CONTIMG_PG_OS_USER)",
                         pg->os_user);
            free(pg);
            return rc;
        }
        pg->run_as = pg->os_user;
    }
    /* An existing cluster decides where it is; otherwise the state dir. */
    char primary[CT_PATH_MAX + 8], fallback[CT_PATH_MAX];
    snprintf(primary, sizeof primary, "%s/pg", pg->state_dir);
    fallback_base(pg, fallback, sizeof fallback);
    char probe[CT_PATH_MAX + 16];
    snprintf(probe, sizeof probe, "%s/data", primary);
    if (!file_exists(probe, "PG_VERSION")) {
        snprintf(probe, sizeof probe, "%s/data", fallback);
        if (file_exists(probe, "PG_VERSION")) {
            set_base(pg, fallback);
            *out = pg;
            return CT_OK;
        }
    }
    set_base(pg, primary);
    *out = pg;
    return CT_OK;
}

void ct_pgcluster_close(ct_pgcluster *pg)
{
    free(pg);
}

const char *ct_pgcluster_conninfo(const ct_pgcluster *pg)
{
    return pg->conninfo;
}
const char *ct_pgcluster_data_dir(const ct_pgcluster *pg)
{
    return pg->data;
}
const char *ct_pgcluster_socket_dir(const ct_pgcluster *pg)
{
    return pg->sock;
}
const char *ct_pgcluster_log_path(const ct_pgcluster *pg)
{
    return pg->log;
}

/* A directory owned by the server's OS user, mode 0700. */
static ct_code make_owned_dir(const ct_pgcluster *pg, const char *dir, ct_err *err)
{
    /* Parents must stay traversable by the server's user: only the leaf is 0700. */
    char parent[CT_PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash != NULL && slash != parent)
        *slash = '\0';
    ct_code rc = ct_mkdir_p(parent, 0755, err);
    if (rc == CT_OK && mkdir(dir, 0700) != 0 && errno != EEXIST)
        rc = ct_fail(err, CT_EIO, "mkdir %s: %s", dir, strerror(errno));
    if (rc != CT_OK)
        return rc;
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (pg->run_as != NULL && (rc = ct_proc_user(pg->run_as, &uid, &gid, err)) != CT_OK)
        return rc;
    /* Never follow a symlink, and never adopt a directory someone else made:
     * the socket fallback lives in /tmp under a predictable name. */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ct_fail(err, CT_EIO, "%s is not a plain directory: %s", dir, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || (st.st_uid != uid && st.st_uid != geteuid())) {
        close(fd);
        return ct_fail(err, CT_EIO, "%s belongs to another user; refusing to use it", dir);
    }
    bool ok = (st.st_uid == uid || fchown(fd, uid, gid) == 0) && fchmod(fd, 0700) == 0;
    close(fd);
    if (!ok)
        return ct_fail(err, CT_EIO, "cannot give %s to %s: %s", dir,
                       pg->run_as ? pg->run_as : "this user", strerror(errno));
    return CT_OK;
}

static ct_code run_tool(const ct_pgcluster *pg, const char *const argv[], const char *log,
                        int *status, ct_err *err)
{
    ct_proc_opts o = {.run_as = pg->run_as, .cwd = pg->base, .log_path = log};
    return ct_proc_run(argv, &o, status, err);
}

/* Appends (or, with replace, writes anew) and fsyncs: the settings must be on disk before
 * the rename that makes the cluster visible. */
static ct_code write_conf(const char *path, const char *text, bool replace, ct_err *err)
{
    FILE *f = fopen(path, replace ? "w" : "a");
    if (f == NULL)
        return ct_fail(err, CT_EIO, "open %s: %s", path, strerror(errno));
    int bad = fputs(text, f) < 0;
    bad |= fflush(f) != 0;
    bad |= fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    return bad ? ct_fail(err, CT_EIO, "write %s failed", path) : CT_OK;
}

/* initdb into data.tmp and rename: a crash mid-way leaves no half cluster. */
static ct_code initialize(ct_pgcluster *pg, ct_err *err)
{
    char tmp[CT_PATH_MAX + 8], initlog[CT_PATH_MAX + 16], tool[CT_PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp", pg->data);
    snprintf(initlog, sizeof initlog, "%s/initdb.log", pg->base);
    snprintf(tool, sizeof tool, "%s/initdb", pg->bindir);
    ct_code rc = ct_remove_tree(tmp, err);
    if (rc != CT_OK)
        return rc;
    const char *argv[] = {tool,          "-D",
                          tmp,           "-U",
                          CT_PG_ROLE,    "--auth=trust",
                          "-E",          "UTF8",
                          "--no-locale", "--no-instructions",
                          NULL};
    int st = 0;
    if ((rc = run_tool(pg, argv, initlog, &st, err)) != CT_OK)
        return rc;
    if (st != 0)
        return ct_fail(err, CT_EIO, "initdb failed (exit %d); see %s", st, initlog);
    char conf[CT_PATH_MAX + 32], text[CT_PATH_MAX + 512];
    snprintf(conf, sizeof conf, "%s/postgresql.conf", tmp);
    snprintf(text, sizeof text,
             "\n# contimg private cluster: Unix socket only, owner-only socket.\n"
             "listen_addresses = ''\n"
             "unix_socket_directories = '%s'\n"
             "unix_socket_permissions = 0700\n"
             "max_connections = 200\n",
             pg->sock);
    if ((rc = write_conf(conf, text, false, err)) != CT_OK)
        return rc;
    /* initdb's --auth=trust also trusts TCP from 127.0.0.1 and ::1 and replication: latent
     * (nothing listens on TCP) until someone sets listen_addresses. Only the socket, whose
     * directory only the server's OS user (and root) may enter, is trusted. */
    snprintf(conf, sizeof conf, "%s/pg_hba.conf", tmp);
    if ((rc = write_conf(conf,
                         "# contimg private cluster: the Unix socket only (its directory is\n"
                         "# 0700, the server's OS user's); no TCP, no replication.\n"
                         "local all all trust\n",
                         true, err)) != CT_OK)
        return rc;
    if (rename(tmp, pg->data) != 0)
        return ct_fail(err, CT_EIO, "rename %s: %s", tmp, strerror(errno));
    (void)ct_fsync_path(pg->base, true);
    return CT_OK;
}

static ct_code pg_ctl(const ct_pgcluster *pg, const char *const *args, int *status, ct_err *err)
{
    char tool[CT_PATH_MAX + 16];
    snprintf(tool, sizeof tool, "%s/pg_ctl", pg->bindir);
    const char *argv[16] = {tool, "-D", pg->data};
    size_t n = 3;
    for (; *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    return run_tool(pg, argv, pg->log, status, err);
}

ct_code ct_pgcluster_status_get(ct_pgcluster *pg, ct_pgcluster_status *st, ct_err *err)
{
    st->initialized = file_exists(pg->data, "PG_VERSION");
    st->running = false;
    if (!st->initialized)
        return CT_OK;
    const char *args[] = {"status", NULL};
    int code = 0;
    ct_code rc = pg_ctl(pg, args, &code, err);
    if (rc != CT_OK)
        return rc;
    st->running = code == 0;
    return CT_OK;
}

static ct_code create_database(const ct_pgcluster *pg, ct_err *err)
{
    char ci[CT_PATH_MAX + 128];
    snprintf(ci, sizeof ci, "host=%s dbname=postgres user=" CT_PG_ROLE, pg->sock);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK) {
        ct_code rc = ct_fail(err, CT_ECONNECT,
                             "private PostgreSQL started but refuses "
                             "connections: %s",
                             PQerrorMessage(c));
        PQfinish(c);
        return rc;
    }
    PGresult *r = PQexec(c, "SELECT 1 FROM pg_database WHERE datname = '" CT_PG_DATABASE "'");
    bool exists = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    PQclear(r);
    ct_code rc = CT_OK;
    if (!exists) {
        r = PQexec(c, "CREATE DATABASE " CT_PG_DATABASE);
        /* 42P04: a concurrent `db start` created it first. */
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !(state && strcmp(state, "42P04") == 0))
            rc = ct_fail(err, CT_EDB, "CREATE DATABASE failed: %s", PQerrorMessage(c));
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

/* Serializes `db start` and `db stop` runs on one state directory (two
 * first starts would otherwise initdb into the same data.tmp). The lock
 * dies with the process, so a crash never leaves it held. */
static ct_code lock_state(const ct_pgcluster *pg, int *fd_out, ct_err *err)
{
    ct_code rc = ct_mkdir_p(pg->state_dir, 0755, err);
    if (rc != CT_OK)
        return rc;
    char path[CT_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/.db.lock", pg->state_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return ct_fail(err, CT_EIO, "open %s: %s", path, strerror(errno));
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close(fd);
            return ct_fail(err, CT_EIO, "lock %s: %s", path, strerror(errno));
        }
    }
    *fd_out = fd;
    return CT_OK;
}

static ct_code start_locked(ct_pgcluster *pg, bool *already, ct_err *err);
static ct_code stop_locked(ct_pgcluster *pg, bool *was_running, ct_err *err);

/* Runs op (start or stop) holding the state directory's lock. */
static ct_code with_state_lock(ct_pgcluster *pg, ct_code (*op)(ct_pgcluster *, bool *, ct_err *),
                               bool *flag, ct_err *err)
{
    int fd = -1;
    *flag = false;
    ct_code rc = lock_state(pg, &fd, err);
    if (rc != CT_OK)
        return rc;
    rc = op(pg, flag, err);
    close(fd);
    return rc;
}

ct_code ct_pgcluster_start(ct_pgcluster *pg, bool *already, ct_err *err)
{
    return with_state_lock(pg, start_locked, already, err);
}

ct_code ct_pgcluster_stop(ct_pgcluster *pg, bool *was_running, ct_err *err)
{
    return with_state_lock(pg, stop_locked, was_running, err);
}

static ct_code start_locked(ct_pgcluster *pg, bool *already, ct_err *err)
{
    ct_code rc;
    if (!file_exists(pg->data, "PG_VERSION")) {
        /* Choose where a new cluster goes: the state dir if the server's
         * user can work there, else the fixed fallback. */
        if ((rc = ct_mkdir_p(pg->state_dir, 0755, err)) != CT_OK ||
            (rc = make_owned_dir(pg, pg->base, err)) != CT_OK)
            return rc;
        if (pg->run_as != NULL && !ct_proc_user_can_write(pg->run_as, pg->base)) {
            char fb[CT_PATH_MAX];
            fallback_base(pg, fb, sizeof fb);
            set_base(pg, fb);
            if ((rc = make_owned_dir(pg, pg->base, err)) != CT_OK)
                return rc;
        }
        if ((rc = initialize(pg, err)) != CT_OK)
            return rc;
    }
    if ((rc = make_owned_dir(pg, pg->sock, err)) != CT_OK)
        return rc;
    ct_pgcluster_status st;
    if ((rc = ct_pgcluster_status_get(pg, &st, err)) != CT_OK)
        return rc;
    if (st.running) {
        *already = true;
    } else {
        const char *args[] = {"-l", pg->log, "-w", "-t", "120", "start", NULL};
        int code = 0;
        if ((rc = pg_ctl(pg, args, &code, err)) != CT_OK)
            return rc;
        if (code != 0)
            return ct_fail(err, CT_EIO, "PostgreSQL did not start (pg_ctl exit %d); see %s", code,
                           pg->log);
    }
    return create_database(pg, err);
}

static ct_code stop_locked(ct_pgcluster *pg, bool *was_running, ct_err *err)
{
    ct_pgcluster_status st;
    ct_code rc = ct_pgcluster_status_get(pg, &st, err);
    *was_running = st.running;
    if (rc != CT_OK || !st.running)
        return rc;
    const char *args[] = {"-m", "fast", "-w", "-t", "120", "stop", NULL};
    int code = 0;
    if ((rc = pg_ctl(pg, args, &code, err)) != CT_OK)
        return rc;
    if (code != 0)
        return ct_fail(err, CT_EIO, "PostgreSQL did not stop (pg_ctl exit %d); see %s", code,
                       pg->log);
    return CT_OK;
}
