/* science.c -- see science.h. */
#define _GNU_SOURCE
#include "science.h"

#include "fitsimage.h"
#include "mpiutil.h"
#include "photometry.h"
#include "refcat.h"
#include "sources.h"
#include "validate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ct_science_validation_outputs(json_t *outputs, const char *group, const char *products_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/images/%s" CT_SCIENCE_CATALOG_SUFFIX, products_dir, group);
    json_object_set_new(outputs, "catalog_path", json_string(path));
}

/* --- Shared: the image, the beam, the catalogue ---------------------------------------- */

typedef struct image {
    ct_fits_image_info info;
    float *data;
    float *pb; /* NULL: no primary-beam-corrected twin given */
} image;

static void image_free(image *im)
{
    free(im->data), free(im->pb);
    im->data = im->pb = NULL;
}

/* A reader's "not such a file" is damaged input, never worth a retry. */
static ct_code as_corrupt(ct_code rc, const char *path, ct_err *err)
{
    if (rc != CT_EINVAL)
        return rc;
    char why[CT_ERRMSG_MAX];
    snprintf(why, sizeof why, "%s", err->msg);
    return ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL, "corrupt_input: %s: %s", path, why);
}

/* inputs.image_path (the restored image) and, when named and there, inputs.pb_path (its
 * primary-beam-corrected twin), read and checked to match. */
static ct_code load_image(const json_t *params, const ct_config *cfg, image *im, ct_err *err)
{
    memset(im, 0, sizeof *im);
    const char *path,
        *pbpath = json_string_value(json_object_get(json_object_get(params, "inputs"), "pb_path"));
    ct_code rc = ct_stage_param_str(params, "inputs", "image_path", &path, err);
    if (rc == CT_OK)
        rc = ct_config_check_paths(cfg, &path, 1, err);
    if (rc == CT_OK)
        rc = as_corrupt(ct_fits_read_image(path, &im->info, &im->data, err), path, err);
    if (rc != CT_OK || pbpath == NULL || pbpath[0] == '\0')
        return rc;
    if ((rc = ct_config_check_paths(cfg, &pbpath, 1, err)) != CT_OK)
        return rc;
    ct_fits_image_info *pbinfo = malloc(sizeof *pbinfo);
    float *pbdata = NULL;
    if (pbinfo == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    rc = as_corrupt(ct_fits_read_image(pbpath, pbinfo, &pbdata, err), pbpath, err);
    if (rc == CT_OK && (pbinfo->desc.nx != im->info.desc.nx || pbinfo->desc.ny != im->info.desc.ny))
        rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                        "corrupt_input: %s is %d x %d px, its image %s %d x %d", pbpath,
                        pbinfo->desc.nx, pbinfo->desc.ny, path, im->info.desc.nx, im->info.desc.ny);
    size_t n = (size_t)im->info.desc.nx * im->info.desc.ny;
    if (rc == CT_OK && (im->pb = malloc(n * sizeof *im->pb)) == NULL)
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
    if (rc == CT_OK)
        ct_pb_from_images(im->data, pbdata, im->info.desc.nx, im->info.desc.ny, im->pb);
    free(pbdata), free(pbinfo);
    return rc;
}

/* CONTIMG_REFCAT, or *out NULL when none is configured. A catalogue that cannot be read
 * is the operator's to fix: permanent. */
static ct_code open_refcat(const ct_config *cfg, ct_refcat **out, ct_err *err)
{
    *out = NULL;
    if (cfg->refcat[0] == '\0')
        return CT_OK;
    ct_code rc = ct_refcat_open(cfg->refcat, out, err);
    if (rc == CT_EINVAL || rc == CT_ENOTFOUND) {
        char why[CT_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        return ct_fail_as(err, CT_CAT_PERMANENT, CT_EINVAL, "CONTIMG_REFCAT: %s", why);
    }
    return rc;
}

/* config.sources and config.thresholds of a validation step; no other key. */
static ct_code validation_config(const json_t *config, ct_src_opts *so, ct_val_opts *vo,
                                 ct_err *err)
{
    ct_src_opts_default(so);
    ct_val_opts_default(vo);
    if (config != NULL && !json_is_object(config))
        return ct_fail(err, CT_EINVAL, "params.config must be an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)config, key, v)
    {
        if (strcmp(key, "sources") != 0 && strcmp(key, "thresholds") != 0)
            return ct_fail(err, CT_EINVAL,
                           "params.config: unknown key \"%s\" (sources, thresholds)", key);
    }
    ct_code rc = ct_src_opts_from_json(so, json_object_get(config, "sources"), err);
    if (rc == CT_OK)
        rc = ct_val_opts_from_json(vo, json_object_get(config, "thresholds"), err);
    return rc;
}

/* The outputs the next step reads: the image, its twin and its catalogue. */
static json_t *pass_outputs(const json_t *params, const char *catalog_path)
{
    json_t *in = json_object_get(params, "inputs"), *o = json_object();
    const char *keys[] = {"image_path", "pb_path", "catalog_path"};
    for (int i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(in, keys[i]));
        if (v)
            json_object_set_new(o, keys[i], json_string(v));
    }
    if (catalog_path)
        json_object_set_new(o, "catalog_path", json_string(catalog_path));
    return o;
}

/* --- validation ------------------------------------------------------------------------- */

static ct_code validation_body(const json_t *params, const ct_config *cfg, ct_stage_outcome *out,
                               ct_err *err)
{
    const char *group, *image_path, *catalog_path;
    ct_src_opts so;
    ct_val_opts vo;
    ct_code rc;
    if ((rc = ct_stage_param_str(params, "inputs", "group_id", &group, err)) ||
        (rc = ct_stage_param_str(params, "inputs", "image_path", &image_path, err)) ||
        (rc = ct_stage_param_str(params, "outputs", "catalog_path", &catalog_path, err)) ||
        (rc = validation_config(json_object_get(params, "config"), &so, &vo, err)))
        return rc;
    so.threads = cfg->threads;
    image im;
    ct_refcat *ref = NULL;
    ct_src_catalog cat = {0};
    ct_validation val = {0};
    float *rms = NULL;
    if ((rc = load_image(params, cfg, &im, err)) != CT_OK)
        goto done;
    const ct_fits_image_desc *d = &im.info.desc;
    if ((rms = malloc((size_t)d->nx * d->ny * sizeof *rms)) == NULL) {
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = as_corrupt(ct_src_find(im.data, d, im.info.projection, &so, &cat, NULL, rms, err),
                         image_path, err)) != CT_OK ||
        (rc = ct_src_catalog_write_csv(&cat, catalog_path, err)) != CT_OK ||
        (rc = open_refcat(cfg, &ref, err)) != CT_OK)
        goto done;
    if (ref) {
        ct_val_image vi = {d, im.info.projection, rms, im.pb};
        if ((rc = ct_validate(&vi, &cat, ref, &vo, &val, err)) != CT_OK)
            goto done;
    } else {
        val.status = "no_catalog";
        val.n_sources = cat.n;
        val.completeness = NAN;
        snprintf(val.reason, sizeof val.reason, "no reference catalogue (CONTIMG_REFCAT unset)");
    }
    json_t *catj = ct_src_catalog_json(&cat),
           *valj = ct_validation_json(&val, &vo, &cat, ref, false);
    if (catj == NULL || valj == NULL) {
        json_decref(catj), json_decref(valj);
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
        goto done;
    }
    json_t *srcs = json_object_get(catj, "sources");
    for (size_t i = 0; i < json_array_size(srcs); i++) /* idx: its place, the rows' key */
        json_object_set_new(json_array_get(srcs, i), "idx", json_integer((json_int_t)i));
    json_t *crow = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:O, s:O, s:O, s:O, s:O, s:{s:f, s:f, "
        "s:i, s:i}}",
        "image_path", image_path, "group_id", group, "catalog_path", catalog_path, "n_sources",
        (json_int_t)cat.n, "n_islands", (json_int_t)cat.n_islands, "rms_jy",
        json_object_get(catj, "rms_jy"), "beam_maj_arcsec",
        json_object_get(json_object_get(catj, "beam"), "maj_arcsec"), "beam_min_arcsec",
        json_object_get(json_object_get(catj, "beam"), "min_arcsec"), "beam_pa_deg",
        json_object_get(json_object_get(catj, "beam"), "pa_deg"), "seconds",
        json_object_get(catj, "seconds"), "options", "seed_sigma", so.seed_sigma, "island_sigma",
        so.island_sigma, "box", cat.box, "max_components", so.max_components);
    json_object_set(crow, "sources", srcs);
    json_t *vrow = json_deep_copy(valj);
    json_object_set_new(vrow, "image_path", json_string(image_path));
    json_object_set_new(vrow, "group_id", json_string(group));
    json_object_set_new(vrow, "catalog", ref ? json_string(cfg->refcat) : json_null());
    char msg[400];
    snprintf(msg, sizeof msg, "%zu source(s); validation %s%s%s", cat.n, val.status,
             val.reason[0] ? ": " : "", val.reason);
    json_t *metrics = json_pack("{s:I, s:O, s:o}", "n_sources", (json_int_t)cat.n, "rms_jy",
                                json_object_get(catj, "rms_jy"), "validation", valj);
    out->result = ct_stage_result_new(msg, pass_outputs(params, catalog_path), metrics);
    out->products = json_pack("{s:[o], s:[o]}", "catalogs", crow, "validations", vrow);
    out->continue_chain = true;
    json_decref(catj);
    if (out->result == NULL || out->products == NULL)
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
done:
    ct_validation_free(&val);
    ct_src_catalog_free(&cat);
    ct_refcat_destroy(ref);
    image_free(&im);
    free(rms);
    return rc;
}

ct_code ct_science_validation(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                              ct_stage_outcome *out, ct_err *err)
{
    const char *catalog_path;
    ct_code rc = ct_stage_param_str(params, "outputs", "catalog_path", &catalog_path, err);
    if (rc == CT_OK)
        rc = ct_stage_prepare_output(comm, catalog_path, "", err);
    if (rc != CT_OK)
        return rc;
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0)
        rc = validation_body(params, cfg, out, err);
    return ct_mpi_agree(comm, rc, err);
}

/* --- crossmatch ------------------------------------------------------------------------- */

static ct_code crossmatch_body(const json_t *params, const ct_config *cfg, ct_stage_outcome *out,
                               ct_err *err)
{
    const char *group, *image_path, *catalog_path;
    ct_code rc;
    if ((rc = ct_stage_param_str(params, "inputs", "group_id", &group, err)) ||
        (rc = ct_stage_param_str(params, "inputs", "image_path", &image_path, err)) ||
        (rc = ct_stage_param_str(params, "inputs", "catalog_path", &catalog_path, err)) ||
        (rc = ct_config_check_paths(cfg, &image_path, 1, err)) ||
        (rc = ct_config_check_paths(cfg, &catalog_path, 1, err)))
        return rc;
    const json_t *config = json_object_get(params, "config");
    double radius = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)config, key, v)
    {
        if (strcmp(key, "match_radius_arcsec") != 0 || !json_is_number(v) ||
            !(json_number_value(v) >= 0 && json_number_value(v) <= 3600))
            return ct_fail(err, CT_EINVAL,
                           "params.config.%s: crossmatch takes match_radius_arcsec, a number "
                           "in [0, 3600]",
                           key);
        radius = json_number_value(v);
    }
    ct_refcat *ref = NULL;
    if ((rc = open_refcat(cfg, &ref, err)) != CT_OK)
        return rc;
    if (ref == NULL) {
        out->result = ct_stage_result_new("no reference catalogue (CONTIMG_REFCAT unset): "
                                          "nothing to match",
                                          pass_outputs(params, NULL), json_object());
        out->continue_chain = true;
        return CT_OK;
    }
    ct_fits_image_info *info = malloc(sizeof *info);
    ct_src_catalog cat = {0};
    ct_match *m = NULL;
    size_t nm = 0;
    if (info == NULL) {
        ct_refcat_destroy(ref);
        return ct_fail(err, CT_ENOMEM, "out of memory");
    }
    if ((rc = as_corrupt(ct_fits_read_image(image_path, info, NULL, err), image_path, err)) ||
        (rc = as_corrupt(ct_src_catalog_read_csv(catalog_path, &cat, err), catalog_path, err)))
        goto done;
    if (radius == 0)
        radius =
            0.5 * (info->desc.bmaj_deg > 0 ? info->desc.bmaj_deg : 3 * info->desc.cdelt_deg) * 3600;
    if ((rc = ct_crossmatch(&cat, ref, radius, &m, &nm, err)) != CT_OK)
        goto done;
    json_t *matches = json_array();
    for (size_t i = 0; i < nm; i++)
        json_array_append_new(matches, json_pack("{s:I, s:s, s:f}", "idx", (json_int_t)m[i].src,
                                                 "ref_id", ct_refcat_get(ref, m[i].ref)->id,
                                                 "sep_arcsec", m[i].sep_arcsec));
    char msg[160];
    snprintf(msg, sizeof msg, "%zu of %zu source(s) matched within %.3g arcsec", nm, cat.n, radius);
    out->result =
        ct_stage_result_new(msg, pass_outputs(params, NULL),
                            json_pack("{s:I, s:I, s:f}", "n_sources", (json_int_t)cat.n,
                                      "n_matches", (json_int_t)nm, "radius_arcsec", radius));
    out->products =
        json_pack("{s:[{s:s, s:o}]}", "crossmatches", "image_path", image_path, "matches", matches);
    out->continue_chain = true;
    if (out->result == NULL || out->products == NULL)
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
done:
    free(m), free(info);
    ct_src_catalog_free(&cat);
    ct_refcat_destroy(ref);
    return rc;
}

ct_code ct_science_crossmatch(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                              ct_stage_outcome *out, ct_err *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    ct_code rc = rank == 0 ? crossmatch_body(params, cfg, out, err) : CT_OK;
    return ct_mpi_agree(comm, rc, err);
}

/* --- photometry ------------------------------------------------------------------------- */

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static ct_code photometry_body(const json_t *params, const ct_config *cfg, ct_stage_outcome *out,
                               ct_err *err)
{
    const char *group, *image_path;
    ct_phot_opts po;
    ct_phot_opts_default(&po);
    ct_code rc;
    if ((rc = ct_stage_param_str(params, "inputs", "group_id", &group, err)) ||
        (rc = ct_stage_param_str(params, "inputs", "image_path", &image_path, err)) ||
        (rc = ct_phot_opts_from_json(&po, json_object_get(params, "config"), err)))
        return rc;
    ct_refcat *ref = NULL;
    if ((rc = open_refcat(cfg, &ref, err)) != CT_OK)
        return rc;
    if (ref == NULL) {
        out->result = ct_stage_result_new("no reference catalogue (CONTIMG_REFCAT unset): no "
                                          "positions to measure",
                                          pass_outputs(params, NULL), json_object());
        out->continue_chain = true;
        return CT_OK;
    }
    image im;
    float *bkg = NULL, *rms = NULL;
    ct_phot_result res = {0};
    if ((rc = load_image(params, cfg, &im, err)) != CT_OK)
        goto done;
    const ct_fits_image_desc *d = &im.info.desc;
    if (!isfinite(im.info.mjd_obs)) {
        rc = ct_fail_as(err, CT_CAT_CORRUPT_INPUT, CT_EINVAL,
                        "corrupt_input: %s has no MJD-OBS: a light curve needs the time",
                        image_path);
        goto done;
    }
    size_t np = (size_t)d->nx * d->ny;
    bkg = malloc(np * sizeof *bkg), rms = malloc(np * sizeof *rms);
    if (bkg == NULL || rms == NULL) {
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
        goto done;
    }
    double bmaj_px = d->bmaj_deg > 0 ? d->bmaj_deg / d->cdelt_deg : 3;
    int box = (int)fmax(16, ceil(10 * bmaj_px));
    if ((rc = as_corrupt(ct_src_background(im.data, d->nx, d->ny, box, bkg, rms, err), image_path,
                         err)) != CT_OK)
        goto done;
    ct_phot_image pi = {im.data, bkg, rms, im.pb, d, im.info.projection};
    if ((rc = ct_phot_measure(&pi, ref, NULL, NULL, &po, &res, err)) != CT_OK)
        goto done;
    json_t *points = json_array();
    for (size_t i = 0; i < res.n; i++) {
        const ct_phot *p = &res.p[i];
        const ct_refsrc *r = ct_refcat_get(ref, p->ref);
        json_array_append_new(points,
                              json_pack("{s:s, s:f, s:f, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                                        "ref_id", r->id, "ra_deg", r->ra_deg, "dec_deg", r->dec_deg,
                                        "peak_jy", num(p->peak_jy), "rms_jy", num(p->rms_jy), "pb",
                                        num(p->pb), "flux_jy", num(p->flux_jy), "flux_err_jy",
                                        num(p->flux_err_jy), "norm_flux_jy", num(p->norm_flux_jy),
                                        "norm_err_jy", num(p->norm_err_jy), "snr", num(p->snr)));
    }
    char msg[200];
    snprintf(msg, sizeof msg,
             "%zu catalogue source(s) measured; flux scale %.4f +- %.4f from %zu "
             "reference(s)%s",
             res.n, res.factor, res.factor_err, res.n_refs,
             res.normalized ? "" : " (not normalized)");
    out->result =
        ct_stage_result_new(msg, pass_outputs(params, NULL),
                            json_pack("{s:I, s:f, s:f, s:I, s:b}", "n_points", (json_int_t)res.n,
                                      "factor", res.factor, "factor_err", res.factor_err, "n_refs",
                                      (json_int_t)res.n_refs, "normalized", res.normalized));
    out->products =
        json_pack("{s:[{s:s, s:s, s:f, s:f, s:f, s:I, s:b, s:o}]}", "photometry", "image_path",
                  image_path, "group_id", group, "mjd", im.info.mjd_obs, "factor", res.factor,
                  "factor_err", res.factor_err, "n_refs", (json_int_t)res.n_refs, "normalized",
                  res.normalized, "points", points);
    out->continue_chain = true;
    if (out->result == NULL || out->products == NULL)
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
done:
    ct_phot_result_free(&res);
    ct_refcat_destroy(ref);
    image_free(&im);
    free(bkg), free(rms);
    return rc;
}

ct_code ct_science_photometry(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                              ct_stage_outcome *out, ct_err *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    ct_code rc = rank == 0 ? photometry_body(params, cfg, out, err) : CT_OK;
    return ct_mpi_agree(comm, rc, err);
}
