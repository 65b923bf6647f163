/* cmd_task.c -- `contimg task ...`: one queue operation per subcommand. */
#define _GNU_SOURCE
#include "cli_util.h"
#include "commands.h"
#include "stages.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs getopt_long over argv with the given options; every subcommand
 * handles options through this one loop. handle() returns -1 to go on or an
 * exit code to stop. Returns -1 when parsing finished normally. */
typedef int (*opt_handler)(int ch, const char *arg, void *ctx);

static int parse_opts(int argc, char **argv, const struct option *opts, const char *usage,
                      opt_handler handle, void *ctx)
{
    optind = 0;
    opterr = 0;
    int ch, idx;
    while ((ch = getopt_long(argc, argv, ":h", opts, &idx)) != -1) {
        if (ch == 'h') {
            printf("%s\n", usage);
            return EXIT_OK;
        }
        if (ch == ':')
            return cli_usage_error("%s: option '%s' needs a value", argv[0], argv[optind - 1]);
        if (ch == '?')
            return cli_usage_error("%s: unknown option '%s'; see --help", argv[0],
                                   argv[optind - 1]);
        int rc = handle(ch, optarg, ctx);
        if (rc >= 0)
            return rc;
    }
    return -1;
}

/* One positional argument, a task id. */
static int take_task_id(int argc, char **argv, const char **id)
{
    if (optind >= argc)
        return cli_usage_error("%s: a task id is required", argv[0]);
    if (optind + 1 < argc)
        return cli_usage_error("%s: unexpected argument '%s'", argv[0], argv[optind + 1]);
    *id = argv[optind];
    if (!cq_uuid_valid(*id))
        return cli_usage_error("'%s' is not a task id (expected a UUID)", *id);
    return -1;
}

static int no_positional(int argc, char **argv)
{
    if (optind < argc)
        return cli_usage_error("%s: unexpected argument '%s'", argv[0], argv[optind]);
    return -1;
}

static int check_queue_name(const char *q)
{
    if (!cq_name_valid(q))
        return cli_usage_error("queue name '%.60s%s' is invalid: 1-127 characters of "
                               "[A-Za-z0-9._-], starting with a letter or digit",
                               q, strlen(q) > 60 ? "..." : "");
    return -1;
}

/* Parses a JSON object option. */
/* --- spawn ------------------------------------------------------------------ */

typedef struct spawn_ctx {
    cq_spawn_opts o;
    json_t *params;
    char *deps_text;
    const char **deps;
    bool json, unchecked;
} spawn_ctx;

static int spawn_opt(int ch, const char *arg, void *p)
{
    spawn_ctx *s = p;
    long v;
    double d;
    switch (ch) {
    case 'n':
        if (!cq_name_valid(arg))
            return cli_usage_error("task name '%.60s' is invalid: 1-127 characters of "
                                   "[A-Za-z0-9._-], starting with a letter or digit",
                                   arg);
        s->o.name = arg;
        return -1;
    case 'q': s->o.queue = arg; return check_queue_name(arg);
    case 'p':
        json_decref(s->params);
        s->params = NULL;
        return cli_parse_json_object("--params", arg, &s->params);
    case 'P':
        if (!cli_parse_long(arg, 0, 1000000, &v))
            return cli_usage_error("--priority must be a whole number 0..1000000, got '%s'", arg);
        s->o.priority = (int)v;
        return -1;
    case 'r':
        if (!cli_parse_long(arg, 0, 100, &v))
            return cli_usage_error("--max-retries must be 0..100, got '%s'", arg);
        s->o.max_retries = (int)v;
        return -1;
    case 't':
        if (!cli_parse_long(arg, 1, 604800, &v))
            return cli_usage_error("--timeout must be 1..604800 seconds, got '%s'", arg);
        s->o.timeout_sec = (int)v;
        return -1;
    case 'k':
        if (strlen(arg) == 0 || strlen(arg) > CQ_KEY_MAX)
            return cli_usage_error("--idempotency-key must be 1..%d characters", CQ_KEY_MAX);
        s->o.idempotency_key = arg;
        return -1;
    case 'd': {
        free(s->deps_text);
        free(s->deps);
        s->deps_text = strdup(arg);
        size_t cap = strlen(arg) / 2 + 2, n = 0;
        s->deps = calloc(cap, sizeof *s->deps);
        if (s->deps_text == NULL || s->deps == NULL)
            return cli_usage_error("out of memory");
        char *save = NULL;
        for (char *t = strtok_r(s->deps_text, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (!cq_uuid_valid(t))
                return cli_usage_error("--depends-on: '%s' is not a task id (UUID)", t);
            s->deps[n++] = t;
        }
        if (n == 0)
            return cli_usage_error("--depends-on needs at least one task id");
        s->o.depends_on = s->deps;
        s->o.n_depends_on = n;
        return -1;
    }
    case 'w':
        if (!cq_uuid_valid(arg))
            return cli_usage_error("--workflow-id must be a UUID, got '%s'", arg);
        s->o.workflow_id = arg;
        return -1;
    case 'D':
        if (!cli_parse_double(arg, 0, 31536000, &d))
            return cli_usage_error("--delay must be 0..31536000 seconds, got '%s'", arg);
        s->o.delay_sec = d;
        return -1;
    case 'b':
        if (!cli_parse_double(arg, 0, 86400, &d))
            return cli_usage_error("--backoff-base must be 0..86400 seconds, got '%s'", arg);
        s->o.backoff_base_sec = d;
        return -1;
    case 'B':
        if (!cli_parse_double(arg, 0, 604800, &d))
            return cli_usage_error("--backoff-max must be 0..604800 seconds, got '%s'", arg);
        s->o.backoff_max_sec = d;
        return -1;
    case 'j': s->json = true; return -1;
    case 'U': s->unchecked = true; return -1;
    }
    return cli_usage_error("unexpected option");
}

static int task_spawn(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"queue", required_argument, NULL, 'q'},
                                         {"params", required_argument, NULL, 'p'},
                                         {"priority", required_argument, NULL, 'P'},
                                         {"max-retries", required_argument, NULL, 'r'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"idempotency-key", required_argument, NULL, 'k'},
                                         {"depends-on", required_argument, NULL, 'd'},
                                         {"workflow-id", required_argument, NULL, 'w'},
                                         {"delay", required_argument, NULL, 'D'},
                                         {"backoff-base", required_argument, NULL, 'b'},
                                         {"backoff-max", required_argument, NULL, 'B'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"no-check", no_argument, NULL, 'U'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    static const char usage[] =
        "usage: contimg task spawn --name NAME [options]\n\n"
        "Adds a task to a queue and prints its id. With an idempotency key that\n"
        "is already taken in the queue, prints the existing task's id instead.\n"
        "The params of a kind the engine runs are checked first, as the API checks\n"
        "them: the seed's shapes translated (inputs.ms_path; convert's input_path,\n"
        "start_time, end_time), outputs planned when absent, and a task its stage\n"
        "would refuse refused now (exit 2, nothing spawned).\n\n"
        "  --name NAME              task name, e.g. convert-uvh5-to-ms (required)\n"
        "  --queue Q                queue (default $ABSURD_QUEUE_NAME or dsa110-pipeline)\n"
        "  --params JSON|@FILE|-    a JSON object (default {}): given, read from FILE, or\n"
        "                           from standard input\n"
        "  --priority P             0..1000000, higher is claimed first (default 0)\n"
        "  --max-retries R          automatic retries after the first attempt (default 3)\n"
        "  --timeout S              seconds a claim may run (default 3600)\n"
        "  --idempotency-key K      spawn at most once per key and queue\n"
        "  --depends-on ID,...      not claimable until these tasks complete\n"
        "  --workflow-id UUID       group tasks of one workflow\n"
        "  --delay S                not claimable for S seconds\n"
        "  --backoff-base S         first retry delay; doubles per attempt (default 10)\n"
        "  --backoff-max S          retry delay cap (default 900)\n"
        "  --json                   print {\"task_id\": ..., \"created\": ...}\n"
        "  --no-check               spawn the params as given (the stage judges them when\n"
        "                           it runs)";
    spawn_ctx s = {.o = cq_spawn_defaults()};
    s.o.queue = cfg->queue;
    s.o.max_retries = cfg->max_retries;
    s.o.timeout_sec = cfg->task_timeout_sec;
    s.o.backoff_base_sec = cfg->backoff_base_sec;
    s.o.backoff_max_sec = cfg->backoff_max_sec;
    int rc = parse_opts(argc, argv, opts, usage, spawn_opt, &s);
    if (rc < 0)
        rc = no_positional(argc, argv);
    if (rc < 0 && s.o.name == NULL)
        rc = cli_usage_error("task spawn: --name is required");
    if (rc < 0) {
        if (s.params == NULL)
            s.params = json_object();
        s.o.params = s.params;
        cq_client *c = NULL;
        ct_err err;
        cq_uuid id;
        char key[CQ_KEY_MAX] = "";
        bool created = false;
        const ct_code admitted =
            s.unchecked ? CT_OK : ct_stage_admit(s.o.name, s.params, cfg, key, sizeof key, &err);
        if (admitted == CT_OK && s.o.idempotency_key == NULL && key[0])
            s.o.idempotency_key = key;
        if (admitted != CT_OK) {
            rc = cli_report(&err);
        } else if (cli_connect(cfg, &c, &err) != CT_OK ||
                   cq_spawn(c, &s.o, id, &created, &err) != CT_OK) {
            rc = cli_report(&err);
        } else if (s.json) {
            cli_print_json(json_pack("{s:s, s:b}", "task_id", id, "created", created));
            rc = EXIT_OK;
        } else {
            puts(id);
            rc = EXIT_OK;
        }
        cq_disconnect(c);
    }
    json_decref(s.params);
    free(s.deps_text);
    free(s.deps);
    return rc;
}

/* --- list ---------------------------------------------------------------------- */

typedef struct list_ctx {
    cq_filter f;
    bool json;
} list_ctx;

static int list_opt(int ch, const char *arg, void *p)
{
    list_ctx *l = p;
    switch (ch) {
    case 's':
        if (cq_status_parse(arg, &l->f.status) != CT_OK)
            return cli_usage_error("unknown status '%.40s' (pending, claimed, retrying, "
                                   "completed, failed, cancelled)",
                                   arg);
        l->f.has_status = true;
        return -1;
    case 'n':
        if (!cq_name_valid(arg))
            return cli_usage_error("task name '%.60s' is invalid", arg);
        l->f.name = arg;
        return -1;
    case 'q': l->f.queue = arg; return check_queue_name(arg);
    case 'w':
        if (!cq_uuid_valid(arg))
            return cli_usage_error("--workflow-id must be a UUID, got '%s'", arg);
        l->f.workflow_id = arg;
        return -1;
    case 'l':
        if (!cli_parse_long(arg, 1, 100000, &l->f.limit))
            return cli_usage_error("--limit must be 1..100000, got '%s'", arg);
        return -1;
    case 'o':
        if (!cli_parse_long(arg, 0, 1000000000, &l->f.offset))
            return cli_usage_error("--offset must be >= 0, got '%s'", arg);
        return -1;
    case 'j': l->json = true; return -1;
    }
    return cli_usage_error("unexpected option");
}

static void print_task_table(const cq_task *t, size_t n)
{
    printf("%-36s  %-9s  %-20s  %-20s  %4s  %3s  %s\n", "TASK_ID", "STATUS", "NAME", "QUEUE", "PRI",
           "ATT", "CREATED");
    for (size_t i = 0; i < n; i++) {
        char created[40];
        cq_format_time(t[i].created_at, created, sizeof created);
        printf("%-36s  %-9s  %-20.20s  %-20.20s  %4d  %3d  %s\n", t[i].id,
               cq_status_name(t[i].status), t[i].name, t[i].queue, t[i].priority, t[i].attempt,
               created);
    }
}

static int task_list(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {{"status", required_argument, NULL, 's'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"queue", required_argument, NULL, 'q'},
                                         {"workflow-id", required_argument, NULL, 'w'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {"offset", required_argument, NULL, 'o'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    static const char usage[] =
        "usage: contimg task list [--status S] [--name N] [--queue Q] [--workflow-id W]\n"
        "                         [--limit L] [--offset O] [--json]\n\n"
        "Lists tasks, newest first (default limit 100). Status is one of pending,\n"
        "claimed, retrying, completed, failed, cancelled. Dead-lettered tasks are in\n"
        "the queue QUEUE-dlq.";
    list_ctx l = {.f = {.limit = 100}};
    int rc = parse_opts(argc, argv, opts, usage, list_opt, &l);
    if (rc < 0)
        rc = no_positional(argc, argv);
    if (rc >= 0)
        return rc;
    cq_client *c = NULL;
    ct_err err;
    cq_task *t = NULL;
    size_t n = 0;
    if (cli_connect(cfg, &c, &err) != CT_OK || cq_list(c, &l.f, &t, &n, &err) != CT_OK) {
        cq_disconnect(c);
        return cli_report(&err);
    }
    if (l.json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, cq_task_json(&t[i], true));
        cli_print_json(a);
    } else {
        print_task_table(t, n);
    }
    cq_tasks_free(t, n);
    cq_disconnect(c);
    return EXIT_OK;
}

/* --- show, cancel, retry ---------------------------------------------------------- */

typedef struct flag_ctx {
    bool json;
    const char *reason;
    const char *token;
    const char *result;
    const char *error;
    const char *category;
    double lease;
} flag_ctx;

static int flag_opt(int ch, const char *arg, void *p)
{
    flag_ctx *f = p;
    switch (ch) {
    case 'j': f->json = true; return -1;
    case 'r': f->reason = arg; return -1;
    case 't':
        if (!cq_uuid_valid(arg))
            return cli_usage_error("--token must be the claim token (a UUID), got '%s'", arg);
        f->token = arg;
        return -1;
    case 'R': f->result = arg; return -1;
    case 'e': f->error = arg; return -1;
    case 'c': {
        ct_category cat;
        if (ct_category_parse(arg, &cat) != CT_OK)
            return cli_usage_error("unknown error category '%.40s' (transient, timeout, "
                                   "permanent, corrupt_input)",
                                   arg);
        f->category = arg;
        return -1;
    }
    case 'L':
        if (!cli_parse_double(arg, 0.001, 86400, &f->lease))
            return cli_usage_error("--lease must be in (0, 86400] seconds, got '%s'", arg);
        return -1;
    }
    return cli_usage_error("unexpected option");
}

static const struct option flag_opts[] = {{"json", no_argument, NULL, 'j'},
                                          {"reason", required_argument, NULL, 'r'},
                                          {"token", required_argument, NULL, 't'},
                                          {"result", required_argument, NULL, 'R'},
                                          {"error", required_argument, NULL, 'e'},
                                          {"category", required_argument, NULL, 'c'},
                                          {"lease", required_argument, NULL, 'L'},
                                          {"help", no_argument, NULL, 'h'},
                                          {0, 0, 0, 0}};

/* Parses options and the task id of a per-task subcommand. */
static int parse_task_cmd(int argc, char **argv, const char *usage, flag_ctx *f, const char **id)
{
    int rc = parse_opts(argc, argv, flag_opts, usage, flag_opt, f);
    if (rc < 0)
        rc = take_task_id(argc, argv, id);
    return rc;
}

static void print_task_detail(const cq_task *t)
{
    json_t *o = cq_task_json(t, true);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        char *s = json_is_string(v) ? strdup(json_string_value(v))
                                    : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%-19s %s\n", key, json_is_null(v) ? "-" : s);
        free(s);
    }
    json_decref(o);
}

static int task_show(int argc, char **argv, const ct_config *cfg)
{
    flag_ctx f = {0};
    const char *id = NULL;
    int rc = parse_task_cmd(argc, argv,
                            "usage: contimg task show ID [--json]\n\nPrints every field of one "
                            "task.",
                            &f, &id);
    if (rc >= 0)
        return rc;
    cq_client *c = NULL;
    ct_err err;
    cq_task t;
    if (cli_connect(cfg, &c, &err) != CT_OK || cq_get(c, id, &t, &err) != CT_OK) {
        cq_disconnect(c);
        return cli_report(&err);
    }
    if (f.json)
        cli_print_json(cq_task_json(&t, true));
    else
        print_task_detail(&t);
    cq_task_free(&t);
    cq_disconnect(c);
    return EXIT_OK;
}

/* Connects, runs op on the task id, and prints `done` on success. */
typedef ct_code (*task_op)(cq_client *c, const char *id, const flag_ctx *f, ct_err *err);

static int run_task_op(const ct_config *cfg, const char *id, const flag_ctx *f, task_op op,
                       const char *done)
{
    cq_client *c = NULL;
    ct_err err;
    int rc = EXIT_OK;
    if (cli_connect(cfg, &c, &err) != CT_OK || op(c, id, f, &err) != CT_OK)
        rc = cli_report(&err);
    else if (f->json)
        cli_print_json(json_pack("{s:s, s:s}", "task_id", id, "result", done));
    else
        printf("%s %s\n", id, done);
    cq_disconnect(c);
    return rc;
}

static ct_code op_cancel(cq_client *c, const char *id, const flag_ctx *f, ct_err *err)
{
    return cq_cancel(c, id, f->reason, err);
}

static ct_code op_retry(cq_client *c, const char *id, const flag_ctx *f, ct_err *err)
{
    return cq_retry(c, id, err);
}

static ct_code op_release(cq_client *c, const char *id, const flag_ctx *f, ct_err *err)
{
    return cq_release(c, id, f->token, err);
}

static ct_code op_complete(cq_client *c, const char *id, const flag_ctx *f, ct_err *err)
{
    json_t *res = NULL;
    if (f->result != NULL && (res = json_loads(f->result, JSON_DECODE_ANY, NULL)) == NULL)
        return ct_fail(err, CT_EINVAL, "--result is not valid JSON");
    ct_code rc = cq_complete(c, id, f->token, res, err);
    json_decref(res);
    return rc;
}

static ct_code op_fail(cq_client *c, const char *id, const flag_ctx *f, ct_err *err)
{
    ct_category cat = CT_CAT_TRANSIENT;
    if (f->category)
        ct_category_parse(f->category, &cat);
    cq_task after;
    ct_code rc = cq_fail(c, id, f->token, f->error, cat, &after, err);
    if (rc == CT_OK) {
        char when[40];
        cq_format_time(after.available_at, when, sizeof when);
        if (!f->json) {
            if (after.status == CQ_RETRYING)
                printf("%s will be retried (attempt %d of %d) from %s\n", id, after.attempt + 1,
                       after.max_retries + 1, when);
            else
                printf("%s dead-lettered into %s\n", id, after.queue);
        }
        cq_task_free(&after);
    }
    return rc;
}

static ct_code op_heartbeat(cq_client *c, const char *id, const flag_ctx *f, ct_err *err)
{
    cq_uuid ids[1], toks[1];
    snprintf(ids[0], sizeof ids[0], "%s", id);
    snprintf(toks[0], sizeof toks[0], "%s", f->token);
    bool alive = false;
    ct_code rc = cq_heartbeat(c, ids, toks, 1, f->lease, &alive, err);
    if (rc == CT_OK && !alive)
        return ct_fail(err, CT_ENOT_HOLDER, "task %s: lease lost (expired, reaped or not held)",
                       id);
    return rc;
}

static int task_cancel(int argc, char **argv, const ct_config *cfg)
{
    flag_ctx f = {0};
    const char *id = NULL;
    int rc = parse_task_cmd(argc, argv,
                            "usage: contimg task cancel ID [--reason TEXT] [--json]\n\n"
                            "Cancels a pending or retrying task and every task that depends on "
                            "it.\nA claimed task cannot be cancelled (exit 5).",
                            &f, &id);
    return rc >= 0 ? rc : run_task_op(cfg, id, &f, op_cancel, "cancelled");
}

static int task_retry(int argc, char **argv, const ct_config *cfg)
{
    flag_ctx f = {0};
    const char *id = NULL;
    int rc = parse_task_cmd(argc, argv,
                            "usage: contimg task retry ID [--json]\n\n"
                            "Puts a failed (dead-lettered) or cancelled task back in its queue "
                            "with a\nfresh attempt budget, and restores the dependents its "
                            "failure cancelled.",
                            &f, &id);
    return rc >= 0 ? rc : run_task_op(cfg, id, &f, op_retry, "pending");
}

static int require_token(const flag_ctx *f, const char *cmd)
{
    if (f->token == NULL)
        return cli_usage_error("task %s: --token (the claim token from 'task claim') is required",
                               cmd);
    return -1;
}

static int task_complete(int argc, char **argv, const ct_config *cfg)
{
    flag_ctx f = {0};
    const char *id = NULL;
    int rc = parse_task_cmd(argc, argv,
                            "usage: contimg task complete ID --token T [--result JSON] [--json]\n\n"
                            "Completes a task claimed with 'task claim'. Refused (exit 5) when "
                            "the\nlease expired or was lost.",
                            &f, &id);
    if (rc < 0)
        rc = require_token(&f, "complete");
    if (rc < 0 && f.result != NULL) {
        json_t *v = json_loads(f.result, JSON_DECODE_ANY, NULL);
        if (v == NULL)
            rc = cli_usage_error("--result is not valid JSON");
        json_decref(v);
    }
    return rc >= 0 ? rc : run_task_op(cfg, id, &f, op_complete, "completed");
}

static int task_fail(int argc, char **argv, const ct_config *cfg)
{
    flag_ctx f = {0};
    const char *id = NULL;
    int rc = parse_task_cmd(argc, argv,
                            "usage: contimg task fail ID --token T --error TEXT\n"
                            "                         [--category transient|timeout|permanent|"
                            "corrupt_input]\n\n"
                            "Records a failed attempt. transient and timeout failures are "
                            "retried\nwith backoff until max_retries; then, or at once for "
                            "permanent and\ncorrupt_input, the task is dead-lettered.",
                            &f, &id);
    if (rc < 0)
        rc = require_token(&f, "fail");
    if (rc < 0 && f.error == NULL)
        rc = cli_usage_error("task fail: --error is required");
    return rc >= 0 ? rc : run_task_op(cfg, id, &f, op_fail, "failed");
}

static int task_release(int argc, char **argv, const ct_config *cfg)
{
    flag_ctx f = {0};
    const char *id = NULL;
    int rc = parse_task_cmd(argc, argv,
                            "usage: contimg task release ID --token T [--json]\n\n"
                            "Gives a claimed task back to its queue without spending an "
                            "attempt.",
                            &f, &id);
    if (rc < 0)
        rc = require_token(&f, "release");
    return rc >= 0 ? rc : run_task_op(cfg, id, &f, op_release, "released");
}

static int task_heartbeat(int argc, char **argv, const ct_config *cfg)
{
    flag_ctx f = {.lease = cfg->lease_sec};
    const char *id = NULL;
    int rc = parse_task_cmd(argc, argv,
                            "usage: contimg task heartbeat ID --token T [--lease S] [--json]\n\n"
                            "Extends a claimed task's lease (default $ABSURD_LEASE_SEC).",
                            &f, &id);
    if (rc < 0)
        rc = require_token(&f, "heartbeat");
    return rc >= 0 ? rc : run_task_op(cfg, id, &f, op_heartbeat, "lease extended");
}

/* --- claim ------------------------------------------------------------------------ */

typedef struct claim_ctx {
    const char *queue;
    const char *worker;
    long limit;
    double lease;
    bool json;
} claim_ctx;

static int claim_opt(int ch, const char *arg, void *p)
{
    claim_ctx *c = p;
    switch (ch) {
    case 'q': c->queue = arg; return check_queue_name(arg);
    case 'w':
        if (strlen(arg) == 0 || strlen(arg) > 256)
            return cli_usage_error("--worker must be 1..256 characters");
        c->worker = arg;
        return -1;
    case 'n':
        if (!cli_parse_long(arg, 1, 10000, &c->limit))
            return cli_usage_error("--limit must be 1..10000, got '%s'", arg);
        return -1;
    case 'L':
        if (!cli_parse_double(arg, 0.001, 86400, &c->lease))
            return cli_usage_error("--lease must be in (0, 86400] seconds, got '%s'", arg);
        return -1;
    case 'j': c->json = true; return -1;
    }
    return cli_usage_error("unexpected option");
}

static int task_claim(int argc, char **argv, const ct_config *cfg)
{
    static const struct option opts[] = {{"queue", required_argument, NULL, 'q'},
                                         {"worker", required_argument, NULL, 'w'},
                                         {"limit", required_argument, NULL, 'n'},
                                         {"lease", required_argument, NULL, 'L'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    static const char usage[] =
        "usage: contimg task claim [--queue Q] [--worker W] [--limit N] [--lease S] [--json]\n\n"
        "Claims up to N runnable tasks (default 1) and prints, one per line:\n"
        "TASK_ID CLAIM_TOKEN TASK_NAME. The token is needed to complete, fail,\n"
        "release or heartbeat the task. Prints nothing when no task is runnable.";
    char worker[300];
    cli_worker_id(worker, sizeof worker);
    claim_ctx k = {.queue = cfg->queue, .worker = worker, .limit = 1, .lease = cfg->lease_sec};
    int rc = parse_opts(argc, argv, opts, usage, claim_opt, &k);
    if (rc < 0)
        rc = no_positional(argc, argv);
    if (rc >= 0)
        return rc;
    cq_client *c = NULL;
    ct_err err;
    cq_task *t = NULL;
    size_t n = 0;
    if (cli_connect(cfg, &c, &err) != CT_OK ||
        cq_claim(c, k.queue, k.worker, (int)k.limit, k.lease, NULL, &t, &n, &err) != CT_OK) {
        cq_disconnect(c);
        return cli_report(&err);
    }
    if (k.json) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, cq_task_json(&t[i], true));
        cli_print_json(a);
    } else {
        for (size_t i = 0; i < n; i++)
            printf("%s %s %s\n", t[i].id, t[i].claim_token, t[i].name);
    }
    cq_tasks_free(t, n);
    cq_disconnect(c);
    return EXIT_OK;
}

int cmd_task(int argc, char **argv, const ct_config *cfg)
{
    static const cli_command sub[] = {
        {"spawn", "add a task to a queue", task_spawn},
        {"list", "list tasks", task_list},
        {"show", "show one task", task_show},
        {"cancel", "cancel a pending task and its dependents", task_cancel},
        {"retry", "retry a failed or cancelled task", task_retry},
        {"claim", "claim runnable tasks (as a worker)", task_claim},
        {"complete", "complete a claimed task", task_complete},
        {"fail", "record a failed attempt of a claimed task", task_fail},
        {"release", "give a claimed task back without spending an attempt", task_release},
        {"heartbeat", "extend a claimed task's lease", task_heartbeat},
        {NULL, NULL, NULL},
    };
    return cli_dispatch("contimg task", "usage: contimg task COMMAND", sub, argc, argv, cfg);
}
