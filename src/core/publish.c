/* publish.c -- see publish.h. */
#define _GNU_SOURCE
#include "publish.h"
#include "fsutil.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ct_code ct_publish_file(const char *src, const char *dest, const char *staging_root,
                        const char *archive_root, long long *bytes, ct_err *err)
{
    *bytes = -1;
    char why[CT_ERRMSG_MAX];
    if (ct_path_check_output(dest, archive_root, err) != CT_OK) {
        snprintf(why, sizeof why, "%s", err->msg);
        return ct_fail(err, CT_EINVAL, "publish: destination: %s", why);
    }
    struct stat st;
    if (lstat(src, &st) != 0) {
        if (errno == ENOENT && stat(dest, &st) == 0 && S_ISREG(st.st_mode)) {
            *bytes = (long long)st.st_size; /* moved before a crash: done */
            return CT_OK;
        }
        return ct_fail(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO,
                       "publish: %s: %s (and not at %s)", src, strerror(errno), dest);
    }
    if (!S_ISREG(st.st_mode))
        return ct_fail(err, CT_EINVAL, "publish: %s is not a regular file", src);
    if (ct_path_check_roots(src, &staging_root, 1, err) != CT_OK) {
        snprintf(why, sizeof why, "%s", err->msg);
        return ct_fail(err, CT_EINVAL, "publish: source: %s", why);
    }
    char dir[PATH_MAX], tmp[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", dest);
    ct_code rc = ct_mkdir_p(dirname(dir), 0755, err);
    if (rc != CT_OK) {
        snprintf(why, sizeof why, "%s", err->msg);
        return ct_fail(err, CT_EIO, "publish: %s", why);
    }
    if (!ct_temp_name(tmp, sizeof tmp, dest))
        return ct_fail(err, CT_EINVAL, "publish: destination path too long: %s", dest);
    if ((rc = ct_copy_file(src, tmp, err)) != CT_OK) {
        snprintf(why, sizeof why, "%s", err->msg);
        return ct_fail(err, CT_EIO, "publish: copy: %s", why);
    }
    if (ct_fsync_path(tmp, false) != 0 || rename(tmp, dest) != 0) {
        int e = errno;
        unlink(tmp);
        return ct_fail(err, CT_EIO, "publish: %s: %s", dest, strerror(e));
    }
    ct_fsync_parent(dest);
    *bytes = (long long)st.st_size;
    return CT_OK;
}
