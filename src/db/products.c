/* products.c -- see products.h. */
#include "products.h"

#include <stdio.h>
#include <stdlib.h>

ct_code ct_products_images(cq_client *c, const char *group, long limit, json_t **rows, ct_err *err)
{
    char limit_text[32];
    snprintf(limit_text, sizeof limit_text, "%ld", limit);
    const char *params[2] = {group, limit_text};
    return cq_query_json(
        c, "products.images",
        "SELECT coalesce(json_agg(row_to_json(x)), '[]') FROM ("
        " SELECT i.group_id, i.image_path, i.pb_path, i.vis_path, i.nx, i.ny, i.cell_arcsec,"
        "        i.ra_deg, i.dec_deg, i.freq_hz, i.rms_jy, i.peak_jy, i.dynamic_range,"
        "        i.beam_major_arcsec, i.beam_minor_arcsec, i.n_vis, i.n_components, i.qa_passed,"
        "        i.n_writes, i.updated_at"
        "   FROM products.images i WHERE $1::text IS NULL OR i.group_id = $1"
        "  ORDER BY i.updated_at DESC, i.image_path LIMIT $2::bigint) x",
        2, params, true, rows, err);
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
