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
    /* Both roots reachable first: a disk that is away (EIO, a stale NFS handle) is worth
     * another try, while a path refused below never is (CT_EINVAL is final). */
    struct stat st;
    ct_code rc = ct_mkdir_p(archive_root, 0755, err);
    if (rc != CT_OK || stat(staging_root, &st) != 0) {
        snprintf(why, sizeof why, "%s", rc != CT_OK ? err->msg : strerror(errno));
        return ct_fail(err, CT_EIO, "publish: %s: %s", rc != CT_OK ? archive_root : staging_root,
                       why);
    }
    if ((rc = ct_path_check_output(dest, archive_root, err)) != CT_OK) {
        snprintf(why, sizeof why, "%s", err->msg);
        return ct_fail(err, rc == CT_EINVAL ? CT_EINVAL : CT_EIO, "publish: destination: %s", why);
    }
    if (lstat(src, &st) != 0) {
        int e = errno;
        if (e == ENOENT && stat(dest, &st) == 0 && S_ISREG(st.st_mode)) {
            *bytes = (long long)st.st_size; /* published before a crash: done */
            return CT_OK;
        }
        return ct_fail(err, e == ENOENT ? CT_ENOTFOUND : CT_EIO, "publish: %s: %s (and not at %s)",
                       src, strerror(e), dest);
    }
    if (!S_ISREG(st.st_mode))
        return ct_fail(err, CT_EINVAL, "publish: %s is not a regular file", src);
    if ((rc = ct_path_check_roots(src, &staging_root, 1, err)) != CT_OK) {
        snprintf(why, sizeof why, "%s", err->msg);
        return ct_fail(err, rc == CT_EINVAL ? CT_EINVAL : CT_EIO, "publish: source: %s", why);
    }
    char dir[PATH_MAX], tmp[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", dest);
    rc = ct_mkdir_p(dirname(dir), 0755, err);
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
