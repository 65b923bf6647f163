/* httpd.c -- see httpd.h. */
#define _GNU_SOURCE
#include "httpd.h"

#include <microhttpd.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ct_httpd {
    struct MHD_Daemon *daemon;
    ct_http_handler handler;
    void *ctx;
    size_t max_body;
    int port;
};

/* One request's body, gathered across the upload calls. */
typedef struct body {
    char *buf;
    size_t len, cap;
    bool too_big;
} body;

const char *ct_http_query(const ct_http_request *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

static char *error_body(const char *msg)
{
    char *s = NULL;
    if (asprintf(&s, "{\"error\": \"%s\"}", msg) < 0)
        return NULL;
    return s;
}

static enum MHD_Result send_response(struct MHD_Connection *c, ct_http_response *r)
{
    const size_t n = r->body ? (r->body_len ? r->body_len : strlen(r->body)) : 0;
    struct MHD_Response *mr =
        r->body ? MHD_create_response_from_buffer(n, r->body, MHD_RESPMEM_MUST_FREE)
                : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (mr == NULL) {
        free(r->body);
        return MHD_NO;
    }
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    /* Nothing the server says may be cached by a proxy: it is the queue as it is now. */
    MHD_add_response_header(mr, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (r->extra_header) {
        const char *colon = strchr(r->extra_header, ':');
        char name[64];
        if (colon && (size_t)(colon - r->extra_header) < sizeof name) {
            memcpy(name, r->extra_header, (size_t)(colon - r->extra_header));
            name[colon - r->extra_header] = '\0';
            MHD_add_response_header(mr, name, colon + 1 + strspn(colon + 1, " "));
        }
    }
    const enum MHD_Result ok =
        MHD_queue_response(c, r->status ? (unsigned)r->status : MHD_HTTP_OK, mr);
    MHD_destroy_response(mr);
    return ok;
}

static bool method_known(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0)
            return true;
    return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    ct_httpd *d = cls;
    body *b = *con_cls;
    if (b == NULL) { /* the headers: the body, if any, comes in the calls after */
        if ((b = calloc(1, sizeof *b)) == NULL)
            return MHD_NO;
        *con_cls = b;
        /* A body announced too large is refused now, not read to its end first. */
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > d->max_body) {
            ct_http_response r = {.status = MHD_HTTP_CONTENT_TOO_LARGE,
                                  .body = error_body("request body too large")};
            return send_response(c, &r);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!b->too_big && b->len + *upload_size > d->max_body)
            b->too_big = true;
        if (!b->too_big) {
            if (b->len + *upload_size + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 1024;
                while (cap < b->len + *upload_size + 1)
                    cap *= 2;
                char *nb = realloc(b->buf, cap);
                if (nb == NULL)
                    return MHD_NO;
                b->buf = nb;
                b->cap = cap;
            }
            memcpy(b->buf + b->len, upload, *upload_size);
            b->len += *upload_size;
            b->buf[b->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    ct_http_response r = {0};
    if (b->too_big) {
        r.status = MHD_HTTP_CONTENT_TOO_LARGE;
        r.body = error_body("request body too large");
    } else if (!method_known(method)) {
        r.status = MHD_HTTP_METHOD_NOT_ALLOWED;
        r.body = error_body("method not allowed");
    } else {
        const ct_http_request q = {
            .method = method,
            .path = url,
            .authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
            .body = b->buf ? b->buf : "",
            .body_len = b->len,
            .conn = c,
        };
        d->handler(d->ctx, &q, &r);
    }
    return send_response(c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    body *b = *con_cls;
    if (b) {
        free(b->buf);
        free(b);
    }
    *con_cls = NULL;
}

ct_code ct_httpd_start(const char *listen, int threads, size_t max_body, ct_http_handler handler,
                       void *ctx, ct_httpd **out, ct_err *err)
{
    *out = NULL;
    char host[64];
    long port = -1;
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (colon && (size_t)(colon - listen) < sizeof host) {
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        char *end;
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
            port = -1;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    if (port < 0 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return ct_fail(err, CT_EINVAL, "listen address '%s': want IPV4:PORT, e.g. 127.0.0.1:8000",
                       listen ? listen : "");
    sa.sin_port = htons((uint16_t)port);
    if (threads < 1 || max_body < 1)
        return ct_fail(err, CT_EINVAL, "httpd: %d threads, body limit %zu", threads, max_body);
    ct_httpd *d = calloc(1, sizeof *d);
    if (d == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    d->handler = handler;
    d->ctx = ctx;
    d->max_body = max_body;
    errno = 0;
    d->daemon = MHD_start_daemon(
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_TURBO, (uint16_t)port, NULL, NULL, on_request, d,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, d,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (d->daemon == NULL) {
        const int e = errno;
        free(d);
        return ct_fail(err, CT_EIO, "cannot listen on %s: %s", listen,
                       e ? strerror(e) : "the server would not start");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->daemon, MHD_DAEMON_INFO_BIND_PORT);
    d->port = info ? info->port : (int)port;
    *out = d;
    return CT_OK;
}

int ct_httpd_port(const ct_httpd *d)
{
    return d->port;
}

void ct_httpd_stop(ct_httpd *d)
{
    if (d == NULL)
        return;
    MHD_stop_daemon(d->daemon);
    free(d);
}
