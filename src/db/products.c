/* products.c -- see products.h. */
#include "products.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {[CT_PRODUCTS_IMAGES] = "images",
                                         [CT_PRODUCTS_VISIBILITIES] = "visibilities",
                                         [CT_PRODUCTS_MOSAICS] = "mosaics",
                                         [CT_PRODUCTS_CALTABLES] = "caltables"};

const char *ct_products_kind_name(ct_products_kind kind)
{
    return (size_t)kind < sizeof kind_names / sizeof kind_names[0] ? kind_names[kind] : "?";
}

ct_code ct_products_kind_parse(const char *name, ct_products_kind *out)
{
    for (size_t k = 0; name && k < sizeof kind_names / sizeof kind_names[0]; k++)
        if (strcmp(name, kind_names[k]) == 0) {
            *out = (ct_products_kind)k;
            return CT_OK;
        }
    return CT_EINVAL;
}

ct_code ct_products_list(cq_client *c, ct_products_kind kind, const char *group, long limit,
                         json_t **rows, ct_err *err)
{
    /* Each table's rows of a group, newest first; the tables and their keys
     * are this file's own text, never input. */
    static const char *const sql[] = {
        [CT_PRODUCTS_IMAGES] =
            "SELECT coalesce(json_agg(row_to_json(x)), '[]') FROM ("
            " SELECT i.group_id, i.image_path, i.pb_path, i.vis_path, i.nx, i.ny, i.cell_arcsec,"
            "        i.ra_deg, i.dec_deg, i.freq_hz, i.rms_jy, i.peak_jy, i.dynamic_range,"
            "        i.beam_major_arcsec, i.beam_minor_arcsec, i.n_vis, i.n_components,"
            "        i.qa_passed, i.n_writes, i.updated_at"
            "   FROM products.images i WHERE $1::text IS NULL OR i.group_id = $1"
            "  ORDER BY i.updated_at DESC, i.image_path LIMIT $2::bigint) x",
        [CT_PRODUCTS_VISIBILITIES] =
            "SELECT coalesce(json_agg(row_to_json(x)), '[]') FROM ("
            " SELECT v.* FROM products.visibilities v WHERE $1::text IS NULL OR v.group_id = $1"
            "  ORDER BY v.updated_at DESC, v.group_id LIMIT $2::bigint) x",
        [CT_PRODUCTS_MOSAICS] =
            "SELECT coalesce(json_agg(row_to_json(x)), '[]') FROM ("
            " SELECT m.* FROM products.mosaics m WHERE $1::text IS NULL OR $1 = ANY (m.groups)"
            "  ORDER BY m.updated_at DESC, m.mosaic_id LIMIT $2::bigint) x",
        [CT_PRODUCTS_CALTABLES] =
            "SELECT coalesce(json_agg(row_to_json(x)), '[]') FROM ("
            " SELECT t.* FROM products.caltables t WHERE $1::text IS NULL OR t.group_id = $1"
            "  ORDER BY t.updated_at DESC, t.path LIMIT $2::bigint) x",
    };
    if ((size_t)kind >= sizeof sql / sizeof sql[0])
        return ct_fail(err, CT_EINVAL, "products: no such table");
    if (limit < 1)
        return ct_fail(err, CT_EINVAL, "products: limit %ld must be >= 1", limit);
    char limit_text[32], what[64];
    snprintf(limit_text, sizeof limit_text, "%ld", limit);
    snprintf(what, sizeof what, "products.%s", kind_names[kind]);
    const char *params[2] = {group, limit_text};
    return cq_query_json(c, what, sql[kind], 2, params, true, rows, err);
}

ct_code ct_products_plan_mosaics(cq_client *c, const char *tier, long per_mosaic, long overlap,
                                 const char *queue, json_t **rows, ct_err *err)
{
    char per[32], lap[32];
    snprintf(per, sizeof per, "%ld", per_mosaic);
    snprintf(lap, sizeof lap, "%ld", overlap);
    const char *params[4] = {tier, per_mosaic > 0 ? per : NULL, lap, queue};
    return cq_query_json(c, "products.plan_mosaics",
                         "SELECT coalesce(json_agg(row_to_json(p) ORDER BY p.window_index), '[]')"
                         "  FROM products.plan_mosaics($1, $2::int, $3::int, $4) p",
                         4, params, true, rows, err);
}

ct_code ct_products_spawn_mosaics(cq_client *c, const char *tier, long per_mosaic, long overlap,
                                  const char *queue, const char *out_dir, json_t **rows,
                                  ct_err *err)
{
    json_t *m = json_pack("{s:s, s:s, s:I}", "tier", tier, "out_dir", out_dir, "overlap",
                          (json_int_t)overlap);
    if (m && per_mosaic > 0)
        json_object_set_new(m, "per_mosaic", json_integer(per_mosaic));
    json_t *spec = m ? json_pack("{s:o}", "mosaic", m) : NULL;
    char *text = spec ? json_dumps(spec, JSON_COMPACT) : NULL;
    json_decref(spec);
    if (!text)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    const char *params[2] = {queue, text};
    /* Keyed by mosaic id: running it again after a lost connection spawns
     * nothing twice. */
    ct_code rc = cq_query_json(
        c, "absurd.spawn_mosaics",
        "SELECT coalesce(json_agg(row_to_json(s)), '[]') FROM absurd.spawn_mosaics($1, $2) s", 2,
        params, true, rows, err);
    free(text);
    return rc;
}

ct_code ct_products_register_caltable(cq_client *c, const json_t *row, json_t **out, ct_err *err)
{
    char *text = json_dumps(row, JSON_COMPACT);
    if (!text)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    const char *params[1] = {text};
    ct_code rc =
        cq_query_json(c, "products.register_caltable",
                      "SELECT products.register_caltable($1::jsonb)", 1, params, true, out, err);
    free(text);
    return rc;
}

ct_code ct_products_retention_plan(cq_client *c, const json_t *days, json_t **out, ct_err *err)
{
    char *text = json_dumps(days, JSON_COMPACT);
    if (text == NULL)
        return ct_fail(err, CT_ENOMEM, "products.retention_plan: out of memory");
    const char *params[1] = {text};
    ct_code rc =
        cq_query_json(c, "products.retention_plan", "SELECT products.retention_plan($1::jsonb)", 1,
                      params, true, out, err);
    free(text);
    return rc;
}

ct_code ct_products_find_caltable(cq_client *c, const char *time_iso, double stale_hours,
                                  json_t **out, ct_err *err)
{
    char hours[64];
    snprintf(hours, sizeof hours, "%.17g", stale_hours);
    const char *params[2] = {time_iso, hours};
    return cq_query_json(c, "products.find_caltable",
                         "SELECT coalesce(products.find_caltable($1::timestamptz, $2::float8), "
                         "'null'::jsonb)",
                         2, params, true, out, err);
}

ct_code ct_products_stage_publication(cq_client *c, const char *src, const char *dest,
                                      const char *kind, const char *group, int max_attempts,
                                      json_t **out, ct_err *err)
{
    char attempts[32];
    snprintf(attempts, sizeof attempts, "%d", max_attempts);
    const char *params[5] = {src, dest, kind, group, attempts};
    return cq_query_json(c, "products.stage_publication",
                         "SELECT to_jsonb(products.stage_publication($1, $2, $3, $4, $5::int))", 5,
                         params, true, out, err);
}

ct_code ct_products_claim_publications(cq_client *c, const char *worker, long limit,
                                       const json_t *srcs, double stale_sec, json_t **rows,
                                       ct_err *err)
{
    char lim[32], stale[64];
    snprintf(lim, sizeof lim, "%ld", limit);
    snprintf(stale, sizeof stale, "%.17g", stale_sec);
    char *list = srcs ? json_dumps(srcs, JSON_COMPACT) : NULL;
    if (srcs && list == NULL)
        return ct_fail(err, CT_ENOMEM, "products.claim_publications: out of memory");
    const char *params[4] = {worker, lim, list, stale};
    /* Not retry-safe: a claim whose answer was lost is taken over once it is stale. */
    ct_code rc = cq_query_json(
        c, "products.claim_publications",
        "SELECT coalesce(jsonb_agg(to_jsonb(p)), '[]') FROM products.claim_publications("
        "$1, $2::int, CASE WHEN $3::jsonb IS NOT NULL THEN "
        "ARRAY(SELECT jsonb_array_elements_text($3::jsonb)) END, $4::float8) p",
        4, params, false, rows, err);
    free(list);
    return rc;
}

ct_code ct_products_finish_publication(cq_client *c, const char *src, const char *worker,
                                       const char *error, long long bytes, double backoff_sec,
                                       bool final, char *status, size_t size, ct_err *err)
{
    char b[32], backoff[64];
    snprintf(b, sizeof b, "%lld", bytes);
    snprintf(backoff, sizeof backoff, "%.17g", backoff_sec);
    const char *params[6] = {
        src, worker, error, bytes >= 0 ? b : NULL, backoff, final ? "true" : "false"};
    json_t *out = NULL;
    ct_code rc = cq_query_json(c, "products.finish_publication",
                               "SELECT to_jsonb(coalesce(products.finish_publication($1, $2, $3, "
                               "$4::bigint, $5::float8, $6::boolean), ''))",
                               6, params, true, &out, err);
    if (rc == CT_OK)
        snprintf(status, size, "%s", json_string_value(out) ? json_string_value(out) : "");
    json_decref(out);
    return rc;
}
