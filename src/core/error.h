/*
 * error.h -- the one error idiom of contimg.
 *
 * Every fallible function returns a ct_code and, when given a ct_err, fills it
 * with the code, a one-line message a caller can print as it is, and the
 * failure's category: how the queue treats the work that failed (retried,
 * dead-lettered, quarantined). The category is set where the failure is
 * known -- ct_fail_as for damaged input, ct_fail's default from the code
 * otherwise -- and travels as a field, never parsed back out of the text.
 * CT_OK is zero, so `if ((rc = f(..., &err)) != CT_OK)` reads naturally. The
 * message never contains credentials, and is valid UTF-8 whenever what was
 * formatted into it was (a message cut at CT_ERRMSG_MAX loses its partial
 * last character, not the JSON it is put into).
 */
#ifndef CONTIMG_ERROR_H
#define CONTIMG_ERROR_H

#include <stddef.h>

typedef enum ct_code {
    CT_OK = 0,
    CT_EINVAL,         /* invalid argument or input: the caller must change it */
    CT_ENOTFOUND,      /* no such task, queue or file */
    CT_ESTATE,         /* not allowed in the object's current state */
    CT_ELEASE_EXPIRED, /* the caller's lease ran out before it acted */
    CT_ENOT_HOLDER,    /* the caller does not hold the claim it presented */
    CT_EUNKNOWN_QUEUE, /* the queue is not registered */
    CT_ECONNECT,       /* the database is unreachable: transient, retry later */
    CT_EDB,            /* any other database error */
    CT_ENOMEM,         /* allocation failed */
    CT_EIO,            /* an operating-system call or child process failed */
    CT_EFULL,          /* the queue holds as many waiting tasks as it may: back off, retry */
} ct_code;

/* Why a piece of work failed, as the queue records it; decides retrying. */
typedef enum ct_category {
    CT_CAT_TRANSIENT,     /* retry after backoff (network, database, busy disk) */
    CT_CAT_TIMEOUT,       /* ran past its deadline; retried */
    CT_CAT_PERMANENT,     /* will fail again the same way; not retried */
    CT_CAT_CORRUPT_INPUT, /* the input is damaged; quarantined, not retried */
} ct_category;

#define CT_ERRMSG_MAX 1024

typedef struct ct_err {
    ct_code code;
    ct_category category;
    char msg[CT_ERRMSG_MAX];
    /* The database's SQLSTATE when PostgreSQL itself raised the error ("" otherwise): what
     * tells a refusal of the data (class 22, 23) from trouble reaching it. */
    char sqlstate[6];
} ct_err;

/* Sets *err (when non-NULL) and returns code. The message is one line:
 * newlines in the formatted text are replaced by spaces. The category is
 * the code's (ct_code_category). */
ct_code ct_fail(ct_err *err, ct_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same with the category given: CT_CAT_CORRUPT_INPUT where a reader
 * finds its input damaged, for one. */
ct_code ct_fail_as(ct_err *err, ct_category category, ct_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A code's category where nothing more is known: CT_EINVAL and
 * CT_ENOTFOUND are permanent (the same input fails the same way), every
 * other failure transient (the database, memory, the disk may recover). */
ct_category ct_code_category(ct_code code);

/* Resets *err to CT_OK with an empty message. */
void ct_err_clear(ct_err *err);

/* A short stable name for a code ("not_found", "lease_expired", ...). */
const char *ct_code_name(ct_code code);

/* "transient", "timeout", "permanent", "corrupt_input" (the queue's spelling). */
const char *ct_category_name(ct_category cat);
/* Parses a category name; returns CT_EINVAL for an unknown one. */
ct_code ct_category_parse(const char *name, ct_category *out);

#endif
