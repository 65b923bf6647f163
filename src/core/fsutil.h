/*
 * fsutil.h -- small filesystem helpers shared by the front doors.
 */
#ifndef CONTIMG_FSUTIL_H
#define CONTIMG_FSUTIL_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* mkdir -p: creates dir and missing parents with `mode`; existing is fine. */
ct_code ct_mkdir_p(const char *dir, mode_t mode, ct_err *err);

/* rm -rf of one path; a missing path is fine. */
ct_code ct_remove_tree(const char *path, ct_err *err);

/* Makes `path` absolute (relative to the working directory) and removes
 * "." and ".." components lexically; the path need not exist. */
ct_code ct_absolute_path(const char *path, char *out, size_t size, ct_err *err);

/* fsync of a file (or, with directory true, a directory). 0 or -1 (errno set). */
int ct_fsync_path(const char *path, bool directory);

/* Copies src's bytes into a new file at dst (which must not exist; src's mode, owner-writable).
 * The kernel copies where it can (copy_file_range: no trip through user memory, and
 * shared extents on filesystems that offer them); otherwise read and write. Not synced:
 * the caller fsyncs before it renames. On failure dst is removed. CT_ENOTFOUND for a
 * missing src, CT_EIO otherwise. */
ct_code ct_copy_file(const char *src, const char *dst, ct_err *err);

/* The filesystem holding path: its size, the bytes free to unprivileged users, and the
 * fraction in use as df counts it (used / (used + available)). 0, or -1 (errno set). */
int ct_disk_usage(const char *path, double *total_bytes, double *free_bytes, double *used_ratio);

/* Best-effort fsync of the directory holding path, so a rename into it is
 * durable. Failures are ignored: the file is complete at its path either way. */
void ct_fsync_parent(const char *path);

/* The temporary name a writer makes path under before it renames it: "PATH.tmp-PID-N",
 * N counting in this process (threads included), so two writers never share one. false
 * when it does not fit in size bytes. */
bool ct_temp_name(char *out, size_t size, const char *path);

/* Removes the temporary files a killed writer left in dir: regular files
 * whose names start with name_prefix and contain ".tmp-" (every writer in
 * contimg names its temporary PATH.tmp-PID[-N] and renames it when done).
 * Call it only while holding the claim on the task that owns those outputs.
 * *removed (may be NULL) counts them; a missing dir is fine. */
ct_code ct_remove_stale_temps(const char *dir, const char *name_prefix, size_t *removed,
                              ct_err *err);

/* Whether path, resolved (symlinks and ".." followed), lies inside one of
 * the n roots. Guards every path that arrives in task params. CT_EINVAL
 * naming the path when it does not; CT_ENOTFOUND when it does not exist. */
ct_code ct_path_check_roots(const char *path, const char *const *roots, size_t n, ct_err *err);

/* Whether path may be written as an output under root (the products directory): absolute,
 * without "." or ".." components, lexically inside root, and, where it already exists in
 * part, resolving inside root's real path (no link leads out); the path itself, when
 * there, is a regular file (rename replaces it; a link or directory there is not ours).
 * CT_EINVAL naming the path and what is wrong. Guards every output a task's params name:
 * any database client can write those. */
ct_code ct_path_check_output(const char *path, const char *root, ct_err *err);

#endif
