/*
 * publish.h -- publishing one finished file from staging (the products directory) to the
 * archive, safely and at most once.
 *
 * The file is copied under a temporary name beside its destination, synced and renamed into
 * place: a crash at any line leaves the archive without the file or with all of it, never
 * half. The staged file stays where it is: the products tables key rows by it, and
 * housekeeping's retention removes it in its time (a row whose file vanished early would
 * read as a lost disk). A retry that finds the staged file gone and the archived one there
 * counts it done. Paths are checked first, as any database client could have written
 * them: the source inside the staging root and a regular file (no link leads out), the
 * destination inside the archive root (ct_path_check_output: no "..", no link out, never a
 * directory or link where the file goes). sql/0014_publish.sql keeps each file's status,
 * attempts and errors.
 */
#ifndef CONTIMG_PUBLISH_H
#define CONTIMG_PUBLISH_H

#include "error.h"

/* Publishes src (inside staging_root) to dest (inside archive_root). *bytes: the file's size.
 * CT_EINVAL for a path outside its root (permanent), CT_ENOTFOUND when neither src nor
 * dest is there, CT_EIO for the file system (the message says which step). */
ct_code ct_publish_file(const char *src, const char *dest, const char *staging_root,
                        const char *archive_root, long long *bytes, ct_err *err);

#endif
