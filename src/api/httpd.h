/*
 * httpd.h -- a small HTTP/1.1 server over libmicrohttpd: requests in, responses out.
 *
 * Owns: the listening socket and its worker threads, each request's body gathered whole
 * (up to a limit) before the handler sees it, and the handler's answer sent with its
 * status and content type. Does not own: what a path means (api.h), JSON, the database.
 *
 * Threads: the handler is called on the server's worker threads, several at once; it must
 * be thread-safe. A request's fields live for the handler's call only.
 *
 * Errors from the server itself, before the handler: a body over the limit 413 (at once
 * when its Content-Length says so), an
 * unsupported method 405 (only GET, HEAD, POST, PUT, DELETE reach the handler), each with
 * a JSON body {"error": ...}.
 */
#ifndef CONTIMG_HTTPD_H
#define CONTIMG_HTTPD_H

#include "error.h"

#include <stddef.h>

typedef struct ct_http_request {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* the path without the query, percent-decoding not applied */
    const char *authorization; /* the Authorization header, NULL when none */
    const char *body;          /* the request body, NUL-terminated; "" when none */
    size_t body_len;
    void *conn; /* the server's connection, for ct_http_query */
} ct_http_request;

/* The value of query parameter key (decoded), NULL when absent. */
const char *ct_http_query(const ct_http_request *r, const char *key);

typedef struct ct_http_response {
    int status;               /* default 200 */
    const char *content_type; /* default "application/json" */
    char *body;               /* malloc'd; the server frees it. NULL: empty */
    size_t body_len;          /* 0 with a body: strlen(body) */
    const char *extra_header; /* one "Name: value" header, static; NULL: none */
} ct_http_response;

typedef void (*ct_http_handler)(void *ctx, const ct_http_request *req, ct_http_response *resp);

typedef struct ct_httpd ct_httpd;

/*
 * Listens on listen ("HOST:PORT"; HOST an IPv4 address, PORT 0 for any free one) with
 * `threads` worker threads and calls handler for every request. CT_EINVAL for a bad
 * address, CT_EIO when the socket cannot be bound (in use, no permission).
 */
ct_code ct_httpd_start(const char *listen, int threads, size_t max_body, ct_http_handler handler,
                       void *ctx, ct_httpd **out, ct_err *err);

/* The port actually bound (the one asked for, or the one chosen for 0). */
int ct_httpd_port(const ct_httpd *d);

/* Stops accepting, waits for the requests in flight, closes. NULL is a no-op. */
void ct_httpd_stop(ct_httpd *d);

#endif
