/* chain.c -- see chain.h. */
#include "chain.h"

#include <stdlib.h>
#include <string.h>

struct ct_chains {
    json_t *root; /* chain name -> array of steps, each normalized to {"task", "config"} */
};

static const char builtin_chains[] =
    "{\"standard\": [\"convert-uvh5-to-ms\", \"flag-rfi\", \"calibration-solve\","
    "                \"calibration-apply\", \"imaging\", \"validation\", \"crossmatch\","
    "                \"photometry\", \"publish\"],"
    " \"quick\": [\"convert-uvh5-to-ms\", \"flag-rfi\", \"imaging\", \"create-mosaic\"],"
    " \"calibrator\": [\"convert-uvh5-to-ms\", \"flag-rfi\", \"calibration-solve\"],"
    " \"target\": [\"convert-uvh5-to-ms\", \"flag-rfi\", \"calibration-apply\", \"imaging\"],"
    " \"nightly\": [\"mosaic-plan\","
    "               {\"task\": \"create-mosaic\", \"config\": {\"tier\": \"science\"}}]}";

/* Rewrites every step of root as {"task": name, "config": {...}}. */
static ct_code normalize(json_t *root, const char *origin, ct_err *err)
{
    if (!json_is_object(root) || json_object_size(root) == 0)
        return ct_fail(err, CT_EINVAL, "%s: chains must be a non-empty JSON object", origin);
    const char *name;
    json_t *steps;
    json_object_foreach(root, name, steps)
    {
        if (!json_is_array(steps) || json_array_size(steps) == 0)
            return ct_fail(err, CT_EINVAL, "%s: chain \"%s\" must be a non-empty array", origin,
                           name);
        size_t i;
        json_t *step;
        json_array_foreach(steps, i, step)
        {
            const char *task = NULL;
            json_t *config = NULL;
            if (json_is_string(step)) {
                task = json_string_value(step);
            } else if (json_is_object(step)) {
                task = json_string_value(json_object_get(step, "task"));
                config = json_object_get(step, "config");
                if (config != NULL && !json_is_object(config))
                    return ct_fail(err, CT_EINVAL,
                                   "%s: chain \"%s\" step %zu: config must be an "
                                   "object",
                                   origin, name, i + 1);
            }
            if (task == NULL || task[0] == '\0')
                return ct_fail(err, CT_EINVAL,
                               "%s: chain \"%s\" step %zu must be a task name or "
                               "{\"task\": ..., \"config\": {...}}",
                               origin, name, i + 1);
            for (size_t j = 0; j < i; j++)
                if (strcmp(json_string_value(json_object_get(json_array_get(steps, j), "task")),
                           task) == 0)
                    return ct_fail(err, CT_EINVAL, "%s: chain \"%s\" names %s twice", origin, name,
                                   task);
            /* task points into step, which the new object replaces: copy it first. */
            json_t *task_copy = json_string(task);
            json_t *norm = json_pack("{s:o, s:o}", "task", task_copy, "config",
                                     config ? json_incref(config) : json_object());
            if (norm == NULL || json_array_set_new(steps, i, norm) != 0)
                return ct_fail(err, CT_ENOMEM, "out of memory");
        }
    }
    return CT_OK;
}

ct_code ct_chains_load(const char *path, ct_chains **out, ct_err *err)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root;
    const char *origin = path && path[0] ? path : "built-in chains";
    if (path && path[0]) {
        root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (root == NULL)
            return ct_fail(err, jerr.line < 0 ? CT_ENOTFOUND : CT_EINVAL, "%s: %s", path,
                           jerr.text);
    } else {
        root = json_loads(builtin_chains, JSON_REJECT_DUPLICATES, &jerr);
        if (root == NULL)
            return ct_fail(err, CT_ENOMEM, "built-in chains: %s", jerr.text);
    }
    ct_code rc = normalize(root, origin, err);
    if (rc != CT_OK) {
        json_decref(root);
        return rc;
    }
    ct_chains *c = malloc(sizeof *c);
    if (c == NULL) {
        json_decref(root);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    c->root = root;
    *out = c;
    return CT_OK;
}

void ct_chains_free(ct_chains *c)
{
    if (c == NULL)
        return;
    json_decref(c->root);
    free(c);
}

static ct_code steps_of(const ct_chains *c, const char *name, const json_t **steps, ct_err *err)
{
    *steps = name ? json_object_get(c->root, name) : NULL;
    if (*steps == NULL)
        return ct_fail(err, CT_ENOTFOUND, "no chain named \"%s\"", name ? name : "");
    return CT_OK;
}

static void step_fields(const json_t *step, const char **task, const json_t **config)
{
    *task = json_string_value(json_object_get(step, "task"));
    if (config)
        *config = json_object_get(step, "config");
}

ct_code ct_chain_first(const ct_chains *c, const char *name, const char **task,
                       const json_t **config, ct_err *err)
{
    const json_t *steps;
    ct_code rc = steps_of(c, name, &steps, err);
    if (rc == CT_OK)
        step_fields(json_array_get(steps, 0), task, config);
    return rc;
}

ct_code ct_chain_next(const ct_chains *c, const char *name, const char *task, const char **next,
                      const json_t **config, ct_err *err)
{
    const json_t *steps;
    ct_code rc = steps_of(c, name, &steps, err);
    if (rc != CT_OK)
        return rc;
    size_t n = json_array_size(steps);
    for (size_t i = 0; i < n; i++) {
        const char *t;
        step_fields(json_array_get(steps, i), &t, NULL);
        if (strcmp(t, task) != 0)
            continue;
        *next = NULL;
        if (config)
            *config = NULL;
        if (i + 1 < n)
            step_fields(json_array_get(steps, i + 1), next, config);
        return CT_OK;
    }
    return ct_fail(err, CT_ENOTFOUND, "chain \"%s\" has no step %s", name, task);
}
