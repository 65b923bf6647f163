/* fsutil.c -- see fsutil.h. */
#define _GNU_SOURCE
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

ct_code ct_mkdir_p(const char *dir, mode_t mode, ct_err *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return ct_fail(err, CT_EINVAL, "path too long: %s", dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return ct_fail(err, CT_EIO, "mkdir %s: %s", buf, strerror(errno));
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return ct_fail(err, CT_EIO, "%s is not a directory", dir);
    return CT_OK;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

ct_code ct_remove_tree(const char *path, ct_err *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? CT_OK : ct_fail(err, CT_EIO, "stat %s: %s", path, strerror(errno));
    if (nftw(path, remove_one, 32, FTW_DEPTH | FTW_PHYS) != 0)
        return ct_fail(err, CT_EIO, "remove %s: %s", path, strerror(errno));
    return CT_OK;
}

ct_code ct_absolute_path(const char *path, char *out, size_t size, ct_err *err)
{
    char joined[8192];
    if (path[0] == '/') {
        snprintf(joined, sizeof joined, "%s", path);
    } else {
        char cwd[4096];
        if (getcwd(cwd, sizeof cwd) == NULL)
            return ct_fail(err, CT_EIO, "getcwd: %s", strerror(errno));
        snprintf(joined, sizeof joined, "%s/%s", cwd, path);
    }
    /* Lexical normalization into out. */
    size_t n = 0;
    char *save = NULL;
    out[0] = '\0';
    for (char *seg = strtok_r(joined, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (strcmp(seg, ".") == 0)
            continue;
        if (strcmp(seg, "..") == 0) {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
            out[n] = '\0';
            continue;
        }
        size_t len = strlen(seg);
        if (n + 1 + len + 1 > size)
            return ct_fail(err, CT_EINVAL, "path too long: %s", path);
        out[n++] = '/';
        memcpy(out + n, seg, len + 1);
        n += len;
    }
    if (n == 0)
        snprintf(out, size, "/");
    return CT_OK;
}

int ct_fsync_path(const char *path, bool directory)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    if (close(fd) < 0)
        rc = -1;
    return rc;
}

/* Moves up to n bytes from in to out at their file offsets; the bytes moved, or -1. */
static ssize_t copy_some(int in, int out, size_t n, bool *kernel, char *buf, size_t bufsize)
{
    if (*kernel) {
        ssize_t k = copy_file_range(in, NULL, out, NULL, n, 0);
        if (k >= 0 || (errno != ENOSYS && errno != EXDEV && errno != EINVAL &&
                       errno != EOPNOTSUPP && errno != EPERM))
            return k;
        *kernel = false; /* this pair of files cannot: copy through memory from here on */
    }
    ssize_t k = read(in, buf, n < bufsize ? n : bufsize);
    for (ssize_t done = 0; k > 0 && done < k;) {
        ssize_t w = write(out, buf + done, (size_t)(k - done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1; /* a failed copy: the caller removes dst */
        done += w;
    }
    return k;
}

ct_code ct_copy_file(const char *src, const char *dst, ct_err *err)
{
    enum { BUF = 1 << 20 };
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return ct_fail(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s: %s", src,
                       strerror(errno));
    struct stat st;
    if (fstat(in, &st) < 0) {
        ct_code rc = ct_fail(err, CT_EIO, "%s: %s", src, strerror(errno));
        close(in);
        return rc;
    }
    /* The source's mode, writable by its owner: the caller may rewrite part of the copy
     * (a read-only raw file's flagged copy). */
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (st.st_mode & 0777) | S_IWUSR);
    if (out < 0) {
        ct_code rc = ct_fail(err, CT_EIO, "%s: %s", dst, strerror(errno));
        close(in);
        return rc;
    }
    char *buf = malloc(BUF);
    bool kernel = true;
    ct_code rc = buf ? CT_OK : ct_fail(err, CT_ENOMEM, "out of memory for a copy buffer");
    for (off_t left = st.st_size; rc == CT_OK && left > 0;) {
        ssize_t k =
            copy_some(in, out, (size_t)(left < (1 << 30) ? left : (1 << 30)), &kernel, buf, BUF);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            rc = ct_fail(err, CT_EIO, "copy %s -> %s: %s", src, dst,
                         k < 0 ? strerror(errno) : "the source ended early");
        else
            left -= k;
    }
    free(buf);
    close(in);
    if (close(out) < 0 && rc == CT_OK)
        rc = ct_fail(err, CT_EIO, "%s: %s", dst, strerror(errno));
    if (rc != CT_OK)
        unlink(dst);
    return rc;
}

int ct_disk_usage(const char *path, double *total_bytes, double *free_bytes, double *used_ratio)
{
    struct statvfs v;
    if (statvfs(path, &v) != 0)
        return -1;
    if (v.f_blocks == 0) {
        errno = EINVAL;
        return -1;
    }
    const double f = (double)v.f_frsize, used = (double)(v.f_blocks - v.f_bfree) * f,
                 avail = (double)v.f_bavail * f;
    *total_bytes = (double)v.f_blocks * f;
    *free_bytes = avail;
    *used_ratio = used + avail > 0 ? used / (used + avail) : 1;
    return 0;
}

void ct_fsync_parent(const char *path)
{
    char *dir = strdup(path);
    if (dir == NULL)
        return;
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        strcpy(dir, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    (void)ct_fsync_path(dir, true);
    free(dir);
}

ct_code ct_remove_stale_temps(const char *dir, const char *name_prefix, size_t *removed,
                              ct_err *err)
{
    if (removed)
        *removed = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT)
            return CT_OK;
        return ct_fail(err, CT_EIO, "cannot list %s: %s", dir, strerror(errno));
    }
    size_t plen = strlen(name_prefix);
    ct_code rc = CT_OK;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        /* The marker may begin at the prefix's last character: convert's prefix
         * "GROUP.hdf5." ends with the dot of "GROUP.hdf5.tmp-PID". */
        if (strncmp(e->d_name, name_prefix, plen) != 0 ||
            strstr(e->d_name + (plen > 0 ? plen - 1 : 0), ".tmp-") == NULL)
            continue;
        char path[4096];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path ||
            lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = ct_fail(err, CT_EIO, "cannot remove %s: %s", path, strerror(errno));
            break;
        }
        if (removed)
            (*removed)++;
    }
    closedir(d);
    return rc;
}

/* Whether real (a real path) is root (a real path) or lies below it. */
static bool path_within(const char *real, const char *root)
{
    const size_t len = strlen(root);
    return strcmp(root, "/") == 0 ||
           (strncmp(real, root, len) == 0 && (real[len] == '\0' || real[len] == '/'));
}

ct_code ct_path_check_roots(const char *path, const char *const *roots, size_t n, ct_err *err)
{
    char real[PATH_MAX];
    if (realpath(path, real) == NULL)
        return ct_fail(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s: %s", path,
                       strerror(errno));
    for (size_t i = 0; i < n; i++) {
        char root[PATH_MAX];
        if (realpath(roots[i], root) == NULL)
            continue;
        if (path_within(real, root))
            return CT_OK;
    }
    return ct_fail(err, CT_EINVAL, "%s is outside the configured data roots", path);
}

/* p (absolute, lexically clean) with its deepest existing part resolved (links followed)
 * and the rest, which does not exist and so holds no link, as written. *leaf: p itself
 * exists (its lstat in *st). */
static bool resolve_existing(const char *p, char out[PATH_MAX], struct stat *st, bool *leaf)
{
    char probe[PATH_MAX], real[PATH_MAX];
    snprintf(probe, sizeof probe, "%s", p);
    size_t cut = strlen(probe);
    *leaf = true;
    while (lstat(probe, st) != 0) {
        if (errno != ENOENT && errno != ENOTDIR) /* a file where a directory goes: the
                                                    writer finds out, and says so */
            return false;
        char *slash = strrchr(probe, '/');
        if (slash == NULL || slash == probe) {
            probe[1] = '\0';
            cut = 1;
            *leaf = false;
            break;
        }
        *slash = '\0';
        cut = (size_t)(slash - probe);
        *leaf = false;
    }
    if (realpath(probe, real) == NULL)
        return false;
    const char *rest = p + cut;
    return snprintf(out, PATH_MAX, "%s%s", strcmp(real, "/") == 0 && *rest == '/' ? "" : real,
                    rest) < PATH_MAX;
}

ct_code ct_path_check_output(const char *path, const char *root, ct_err *err)
{
    char croot[PATH_MAX], rroot[PATH_MAX], rpath[PATH_MAX];
    if (path[0] != '/')
        return ct_fail(err, CT_EINVAL, "output %s: not an absolute path", path);
    if (strlen(path) >= PATH_MAX)
        return ct_fail(err, CT_EINVAL, "output %.200s...: the path is too long", path);
    for (const char *p = path; *p;) {
        const size_t n = strcspn(p, "/");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return ct_fail(err, CT_EINVAL, "output %s: '.' and '..' are not allowed", path);
        p += n + (p[n] == '/');
    }
    ct_code rc = ct_absolute_path(root, croot, sizeof croot, err);
    if (rc != CT_OK)
        return rc;
    struct stat st, rst;
    bool leaf, root_leaf;
    if (!resolve_existing(path, rpath, &st, &leaf) ||
        !resolve_existing(croot, rroot, &rst, &root_leaf))
        return ct_fail(err, CT_EINVAL, "output %s: %s", path, strerror(errno));
    if (leaf && !S_ISREG(st.st_mode))
        return ct_fail(err, CT_EINVAL, "output %s: %s stands there, not a file of ours", path,
                       S_ISLNK(st.st_mode)   ? "a symbolic link"
                       : S_ISDIR(st.st_mode) ? "a directory"
                                             : "something else");
    if (!path_within(rpath, rroot) || strcmp(rpath, rroot) == 0)
        return ct_fail(err, CT_EINVAL, "output %s: outside the products directory %s%s", path,
                       croot, strcmp(rpath, path) != 0 ? " (a link leads out)" : "");
    return CT_OK;
}

bool ct_temp_name(char *out, size_t size, const char *path)
{
    /* The one counter of the process's temporary names: per writer they could repeat
     * when two modules write the same path in one process. */
    static atomic_ulong seq;
    int n = snprintf(out, size, "%s.tmp-%ld-%lu", path, (long)getpid(),
                     (unsigned long)atomic_fetch_add(&seq, 1));
    return n >= 0 && (size_t)n < size;
}
