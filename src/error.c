/* error.c -- see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

ct_code ct_fail(ct_err *err, ct_code code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    /* Trailing blanks come from libpq messages that end in a newline. */
    size_t n = strlen(err->msg);
    while (n > 0 && err->msg[n - 1] == ' ')
        err->msg[--n] = '\0';
    return code;
}

void ct_err_clear(ct_err *err)
{
    if (err != NULL) {
        err->code = CT_OK;
        err->msg[0] = '\0';
    }
}

const char *ct_code_name(ct_code code)
{
    switch (code) {
    case CT_OK: return "ok";
    case CT_EINVAL: return "invalid_argument";
    case CT_ENOTFOUND: return "not_found";
    case CT_ESTATE: return "invalid_state";
    case CT_ELEASE_EXPIRED: return "lease_expired";
    case CT_ENOT_HOLDER: return "not_lease_holder";
    case CT_EUNKNOWN_QUEUE: return "unknown_queue";
    case CT_ECONNECT: return "database_unavailable";
    case CT_EDB: return "database_error";
    case CT_ENOMEM: return "out_of_memory";
    case CT_EIO: return "io_error";
    }
    return "unknown";
}

static const char *const category_names[] = {
    [CT_CAT_TRANSIENT] = "transient",
    [CT_CAT_TIMEOUT] = "timeout",
    [CT_CAT_PERMANENT] = "permanent",
    [CT_CAT_CORRUPT_INPUT] = "corrupt_input",
};

const char *ct_category_name(ct_category cat)
{
    if ((size_t)cat < sizeof category_names / sizeof category_names[0])
        return category_names[cat];
    return "transient";
}

ct_code ct_category_parse(const char *name, ct_category *out)
{
    for (size_t i = 0; i < sizeof category_names / sizeof category_names[0]; i++) {
        if (name != NULL && strcmp(name, category_names[i]) == 0) {
            *out = (ct_category)i;
            return CT_OK;
        }
    }
    return CT_EINVAL;
}
