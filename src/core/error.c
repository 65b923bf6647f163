/* error.c -- see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The length of the valid UTF-8 sequence at p (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), 0 when none starts there. */
static size_t utf8_len(const unsigned char *p)
{
    const unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    const unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    const size_t n = c >= 0xC2 && c <= 0xDF   ? 2
                     : c >= 0xE0 && c <= 0xEF ? 3
                     : c >= 0xF0 && c <= 0xF4 ? 4
                                              : 0;
    if (n == 0 || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if ((p[k] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* The message as one line of valid UTF-8. vsnprintf stops at a byte count, possibly
 * inside a multi-byte character, and the text formatted into it may carry bytes that are
 * not UTF-8 at all (a directory's name, a string read from a damaged file, another
 * message cut short in a smaller buffer): JSON -- the queue's results, the engine's
 * messages between ranks -- refuses such a string, so each such byte becomes '?', and a
 * character cut at the end is dropped. */
static void tidy(ct_err *err, int full_len)
{
    size_t n = strlen(err->msg);
    if (full_len >= 0 && (size_t)full_len >= sizeof err->msg) {
        /* Back to the last character's first byte, then keep it only if it is whole. */
        size_t k = n;
        while (k > 0 && ((unsigned char)err->msg[k - 1] & 0xC0) == 0x80)
            k--;
        if (k > 0 && ((unsigned char)err->msg[k - 1] & 0x80)) {
            const unsigned char lead = (unsigned char)err->msg[k - 1];
            const size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (n - (k - 1) < want)
                n = k - 1;
        }
        err->msg[n] = '\0';
    }
    for (size_t i = 0; i < n;) {
        unsigned char *p = (unsigned char *)err->msg + i;
        const size_t w = utf8_len(p);
        if (w == 0)
            *p = '?';
        else if (*p == '\n' || *p == '\r')
            *p = ' ';
        i += w ? w : 1;
    }
    /* Trailing blanks come from libpq messages that end in a newline. */
    while (n > 0 && err->msg[n - 1] == ' ')
        err->msg[--n] = '\0';
}

static ct_code vfail(ct_err *err, ct_category category, ct_code code, const char *fmt, va_list ap)
{
    if (err == NULL)
        return code;
    err->code = code;
    err->category = category;
    err->sqlstate[0] = '\0';
    const int len = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    tidy(err, len);
    return code;
}

ct_code ct_fail(ct_err *err, ct_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, ct_code_category(code), code, fmt, ap);
    va_end(ap);
    return code;
}

ct_code ct_fail_as(ct_err *err, ct_category category, ct_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(err, category, code, fmt, ap);
    va_end(ap);
    return code;
}

ct_category ct_code_category(ct_code code)
{
    return code == CT_EINVAL || code == CT_ENOTFOUND ? CT_CAT_PERMANENT : CT_CAT_TRANSIENT;
}

void ct_err_clear(ct_err *err)
{
    if (err != NULL) {
        err->code = CT_OK;
        err->category = CT_CAT_TRANSIENT;
        err->msg[0] = '\0';
        err->sqlstate[0] = '\0';
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
    case CT_EFULL: return "queue_full";
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
