/* cmd_serve.c -- `contimg serve`: the seed's HTTP API and the Prometheus metrics (api.h). */
#define _GNU_SOURCE
#include "api.h"
#include "cli_util.h"
#include "commands.h"
#include "database.h"
#include "httpd.h"
#include "schedules.h"
#include "stages.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: contimg serve [--listen HOST:PORT] [--threads N] [--window SECONDS]\n"
    "                     [--tick SECONDS]\n\n"
    "Serves the queue over HTTP until SIGINT or SIGTERM: the seed's REST API under\n"
    "/absurd/ (tasks: spawn, list, show, cancel, retry; queue stats; health) and the\n"
    "Prometheus metrics at /metrics (docs/api.md). Changes (POST, DELETE) need\n"
    "'Authorization: Bearer $CONTIMG_API_TOKEN'; without that variable set they are\n"
    "refused (403) and the server only reads.\n\n"
    "  --listen HOST:PORT  the IPv4 address and port (default $CONTIMG_API_LISTEN or\n"
    "                      127.0.0.1:8000: this machine only; port 0: any free one)\n"
    "  --threads N         request threads, and database connections at most (default 4)\n"
    "  --window SECONDS    the metrics' quantiles cover the last SECONDS (default 3600)\n"
    "  --tick SECONDS      fire due schedules this often (default 15; 0: never), exactly\n"
    "                      once each however many servers and engines tick\n\n"
    "Prints 'listening on http://HOST:PORT' once it is. Exit 0 after a signal; 3 when the\n"
    "database is not there; 1 when the address cannot be bound; 2 for bad options.";

/* The API's admission step: the stage table's contract (stages.h). */
static ct_code admit_task(void *cfg, const char *task_name, json_t *params, char *key,
                          size_t key_size, ct_err *err)
{
    return ct_stage_admit(task_name, params, cfg, key, key_size, err);
}

/* The schedules' ticker: its own connection, a tick every `every` seconds until stopped. */
typedef struct ticker {
    const char *conninfo;
    double every;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
} ticker;

static void *tick_loop(void *arg)
{
    ticker *t = arg;
    cq_client *c = NULL;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)t->every;
        until.tv_nsec += (long)((t->every - (double)(time_t)t->every) * 1e9);
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!t->stop && pthread_cond_timedwait(&t->cv, &t->mu, &until) == 0)
            ;
        const bool stop = t->stop;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            break;
        ct_err err;
        json_t *fired = NULL;
        if (c == NULL && cq_connect(t->conninfo, &c, &err) != CT_OK) {
            c = NULL;
            continue; /* the database comes back; the next tick fires what is due */
        }
        if (ct_schedule_tick(c, &fired, &err) != CT_OK) {
            fprintf(stderr, "contimg serve: schedules: %s\n", err.msg);
            continue;
        }
        size_t i;
        json_t *f;
        json_array_foreach(fired, i, f)
        {
            char line[1400];
            if (ct_schedule_describe(f, line, sizeof line))
                printf("%s\n", line);
            else
                fprintf(stderr, "contimg serve: %s\n", line);
        }
        fflush(stdout);
        json_decref(fired);
    }
    cq_disconnect(c);
    return NULL;
}

int cmd_serve(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"threads", required_argument, NULL, 't'},
        {"window", required_argument, NULL, 'w'}, {"tick", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},         {0, 0, 0, 0}};
    const char *listen = cfg->api_listen;
    long threads = 4;
    double window = 3600, tick = 15;
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': printf("%s\n", usage); return EXIT_OK;
        case 'l': listen = optarg; break;
        case 't':
            if (!cli_parse_long(optarg, 1, 256, &threads))
                return cli_usage_error("serve: --threads wants 1..256, not '%s'", optarg);
            break;
        case 'w':
            if (!cli_parse_double(optarg, 1, 1e7, &window))
                return cli_usage_error("serve: --window wants seconds, not '%s'", optarg);
            break;
        case 'k':
            if (!cli_parse_double(optarg, 0, 86400, &tick))
                return cli_usage_error("serve: --tick wants seconds, not '%s'", optarg);
            break;
        case ':': return cli_usage_error("serve: %s needs a value", argv[optind - 1]);
        default: return cli_usage_error("serve: unknown option '%s'; see --help", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("serve: unexpected argument '%s'", argv[optind]);

    char conninfo[CT_PATH_MAX + 256];
    bool external = false;
    ct_err err;
    if (ct_db_conninfo(cfg, conninfo, sizeof conninfo, &external, &err) != CT_OK)
        return cli_report(&err);
    const ct_api_opts ao = {
        .conninfo = conninfo,
        .queue = cfg->queue,
        .token = cfg->api_token,
        .products_dir = cfg->products_dir,
        .state_dir = cfg->state_dir,
        .connections = (int)threads,
        .metrics_window_sec = window,
        .disk_guard = cfg->disk_guard,
        .admit = admit_task,
        .admit_ctx = (void *)cfg,
    };
    ct_api *api = NULL;
    if (ct_api_create(&ao, &api, &err) != CT_OK) {
        if (err.code == CT_ECONNECT && !external) {
            ct_err e2;
            ct_fail(&e2, CT_ECONNECT,
                    "database unavailable: the private PostgreSQL under %s is not running "
                    "(start it with 'contimg db start')",
                    cfg->state_dir);
            return cli_report(&e2);
        }
        return cli_report(&err);
    }
    /* The signals wait for this thread alone: blocked here before the server's threads
     * are made, so they inherit the mask and never take them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    ct_httpd *httpd = NULL;
    if (ct_httpd_start(listen, (int)threads, 1 << 20, ct_api_handle, api, &httpd, &err) != CT_OK) {
        ct_api_destroy(api);
        return cli_report(&err);
    }
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(strrchr(listen, ':') - listen), listen);
    printf("contimg serve: listening on http://%s:%d (queue %s; changes %s)\n", host,
           ct_httpd_port(httpd), cfg->queue,
           cfg->api_token[0] ? "need the bearer token" : "disabled: no CONTIMG_API_TOKEN");
    fflush(stdout);
    ticker tk = {.conninfo = conninfo, .every = tick, .stop = false};
    pthread_mutex_init(&tk.mu, NULL);
    pthread_cond_init(&tk.cv, NULL);
    pthread_t tid;
    const bool ticking = tick > 0 && pthread_create(&tid, NULL, tick_loop, &tk) == 0;
    int sig = 0;
    sigwait(&stop, &sig);
    if (ticking) {
        pthread_mutex_lock(&tk.mu);
        tk.stop = true;
        pthread_cond_signal(&tk.cv);
        pthread_mutex_unlock(&tk.mu);
        pthread_join(tid, NULL);
    }
    pthread_mutex_destroy(&tk.mu);
    pthread_cond_destroy(&tk.cv);
    ct_httpd_stop(httpd);
    ct_api_destroy(api);
    fprintf(stderr, "contimg serve: stopped (%s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    return EXIT_OK;
}
