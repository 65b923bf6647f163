/* stages.c -- see stages.h. */
#define _GNU_SOURCE
#include "stages.h"

#include "calibration.h"
#include "convert.h"
#include "cron.h"
#include "flagger.h"
#include "fsutil.h"
#include "groups.h"
#include "housekeeping.h"
#include "imaging.h"
#include "mosaic.h"
#include "mpiutil.h"
#include "products.h"
#include "publisher.h"
#include "queue.h"
#include "science.h"
#include "uvh5.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void ct_stage_outcome_free(ct_stage_outcome *o)
{
    if (o == NULL)
        return;
    json_decref(o->result);
    json_decref(o->products);
    o->result = o->products = NULL;
}

ct_category ct_stage_category(const ct_err *err)
{
    return err->category;
}

/* --- Params ------------------------------------------------------------------- */

static const char *str_at(const json_t *params, const char *section, const char *key)
{
    return json_string_value(json_object_get(json_object_get(params, section), key));
}

ct_code ct_stage_param_str(const json_t *params, const char *section, const char *key,
                           const char **out, ct_err *err)
{
    *out = str_at(params, section, key);
    if (*out == NULL || (*out)[0] == '\0')
        return ct_fail(err, CT_EINVAL, "params.%s.%s is missing or not a string", section, key);
    return CT_OK;
}

/* Where a convert task's file goes: products_dir/vis/GROUP.hdf5. */
static void convert_outputs(json_t *outputs, const char *group, const char *products_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vis/%s.hdf5", products_dir, group);
    json_object_set_new(outputs, "vis_path", json_string(path));
}

json_t *ct_stage_convert_params(const char *chain, const json_t *config, const char *group_id,
                                const char *const files[16], const char *products_dir)
{
    json_t *list = json_array();
    for (int i = 0; i < 16; i++)
        if (json_array_append_new(list, json_string(files[i])) != 0) {
            json_decref(list); /* a name that is not UTF-8 */
            return NULL;
        }
    json_t *outputs = json_object();
    convert_outputs(outputs, group_id, products_dir);
    return json_pack("{s:s, s:o, s:{s:s, s:o}, s:o}", "chain", chain, "config",
                     config ? json_incref((json_t *)config) : json_object(), "inputs", "group_id",
                     group_id, "files", list, "outputs", outputs);
}

json_t *ct_stage_next_params(const char *next, const json_t *params, const json_t *result,
                             const json_t *step_config, const char *products_dir)
{
    const char *group = str_at(params, "inputs", "group_id");
    json_t *inputs = json_object();
    if (group)
        json_object_set_new(inputs, "group_id", json_string(group));
    json_object_update(inputs, json_object_get(result, "outputs"));
    json_t *outputs = json_object();
    const ct_stage *st = ct_stage_find(next);
    if (group && st && st->plan_outputs)
        st->plan_outputs(outputs, group, products_dir);
    json_t *chain = json_object_get(params, "chain");
    return json_pack("{s:o, s:o, s:o, s:o}", "chain", chain ? json_incref(chain) : json_null(),
                     "config", step_config ? json_incref((json_t *)step_config) : json_object(),
                     "inputs", inputs, "outputs", outputs);
}

/* --- Shared steps --------------------------------------------------------------- */

/* On comm's rank 0: the output's directory exists and holds no temporary file
 * a killed run of this task left behind (the caller holds the task's claim,
 * so no live writer owns one). Collective. */
ct_code ct_stage_prepare_output(MPI_Comm comm, const char *path, const char *name_suffix,
                                ct_err *err)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    ct_code rc = CT_OK;
    if (rank == 0) {
        char a[4096], b[4096], prefix[4096];
        snprintf(a, sizeof a, "%s", path);
        snprintf(b, sizeof b, "%s", path);
        const char *dir = dirname(a), *base = basename(b);
        snprintf(prefix, sizeof prefix, "%s%s", base, name_suffix);
        size_t removed = 0;
        rc = ct_mkdir_p(dir, 0755, err);
        if (rc == CT_OK)
            rc = ct_remove_stale_temps(dir, prefix, &removed, err);
        if (rc == CT_OK && removed > 0)
            fprintf(stderr,
                    "contimg: removed %zu temporary file(s) %s/%s* left by an earlier "
                    "run\n",
                    removed, dir, prefix);
        if (rc != CT_OK) {
            char why[CT_ERRMSG_MAX]; /* ct_fail must not format err->msg into itself */
            snprintf(why, sizeof why, "%s", err->msg);
            rc = ct_fail(err, CT_EIO, "output directory: %s", why);
        }
    }
    return ct_mpi_agree(comm, rc, err);
}

json_t *ct_stage_result_new(const char *message, json_t *outputs, json_t *metrics)
{
    return json_pack("{s:s, s:o, s:s, s:[], s:o}", "status", "success", "outputs", outputs,
                     "message", message, "errors", "metrics", metrics);
}

/* --- convert-uvh5-to-ms ---------------------------------------------------------- */

static ct_code run_convert(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                           ct_stage_outcome *out, ct_err *err)
{
    const char *group, *vis;
    ct_code rc;
    if ((rc = ct_stage_param_str(params, "inputs", "group_id", &group, err)) ||
        (rc = ct_stage_param_str(params, "outputs", "vis_path", &vis, err)))
        return rc;
    const json_t *list = json_object_get(json_object_get(params, "inputs"), "files");
    const char *files[64];
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n == 0 || n > 64)
        return ct_fail(err, CT_EINVAL, "params.inputs.files must list the subband files");
    for (size_t i = 0; i < n; i++)
        if ((files[i] = json_string_value(json_array_get(list, i))) == NULL)
            return ct_fail(err, CT_EINVAL, "params.inputs.files[%zu] is not a string", i);
    if ((rc = ct_config_check_paths(cfg, files, n, err)) ||
        (rc = ct_stage_prepare_output(comm, vis, ".", err)))
        return rc;
    ct_convert_result res;
    if ((rc = ct_convert(comm, files, n, vis, NULL, &res, err)) != CT_OK)
        return rc;
    int rank;
    MPI_Comm_rank(comm, &rank);
    ct_qa_result qa;
    memset(&qa, 0, sizeof qa);
    if (rank == 0)
        rc = ct_convert_qa(vis, &qa, err);
    if ((rc = ct_mpi_agree(comm, rc, err)) != CT_OK || rank != 0)
        return rc;
    json_t *qaj =
        json_pack("{s:b, s:b, s:I, s:I, s:f, s:I, s:I, s:I, s:s}", "passed", qa.passed, "shapes_ok",
                  qa.shapes_ok, "n_samples", (json_int_t)qa.n_samples, "n_flagged",
                  (json_int_t)qa.n_flagged, "fraction_flagged", qa.fraction_flagged, "n_nonfinite",
                  (json_int_t)qa.n_nonfinite, "n_auto_bad", (json_int_t)qa.n_auto_bad,
                  "n_auto_zero", (json_int_t)qa.n_auto_zero, "reason", qa.reason);
    json_t *metrics = json_pack("{s:f, s:I, s:I, s:i}", "seconds", res.seconds, "bytes_read",
                                (json_int_t)res.bytes_read, "bytes_written",
                                (json_int_t)res.bytes_written, "ranks", res.n_ranks);
    json_object_set(metrics, "qa", qaj);
    out->result = ct_stage_result_new(qa.passed ? "converted" : "converted; quality gate failed",
                                      json_pack("{s:s}", "vis_path", vis), metrics);
    if (!qa.passed)
        json_object_set_new(out->result, "status", json_string("qa_failed"));
    out->products =
        json_pack("{s:[{s:s, s:s, s:i, s:i, s:i, s:i, s:I, s:f, s:b, s:o}]}", "visibilities",
                  "group_id", group, "path", vis, "n_subbands", (int)n, "nblts", res.nblts,
                  "nfreqs", res.nfreqs, "npols", res.npols, "n_samples", (json_int_t)qa.n_samples,
                  "fraction_flagged", qa.fraction_flagged, "qa_passed", qa.passed, "qa", qaj);
    out->continue_chain = qa.passed;
    return CT_OK;
}

/* --- imaging ------------------------------------------------------------------------ */

/* The image passes QA when it has a noise figure and a peak, and most of
 * it is sky rather than blanked primary-beam edge. */
static bool image_qa_passed(const ct_image_qa *qa, char *reason, size_t size)
{
    size_t total = qa->n_finite + qa->n_blank;
    reason[0] = '\0';
    if (!(isfinite(qa->rms_jy) && qa->rms_jy > 0))
        snprintf(reason, size, "no noise figure (rms %g)", qa->rms_jy);
    else if (!isfinite(qa->peak_jy))
        snprintf(reason, size, "no finite peak");
    else if (total == 0 || qa->n_finite < total / 10)
        snprintf(reason, size, "%zu of %zu pixels blank", qa->n_blank, total);
    return reason[0] == '\0';
}

static ct_code run_imaging(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                           ct_stage_outcome *out, ct_err *err)
{
    const char *group, *vis, *prefix;
    ct_code rc;
    ct_image_opts o;
    if ((rc = ct_stage_param_str(params, "inputs", "group_id", &group, err)) ||
        (rc = ct_stage_param_str(params, "inputs", "vis_path", &vis, err)) ||
        (rc = ct_stage_param_str(params, "outputs", "image_prefix", &prefix, err)) ||
        (rc = ct_image_opts_from_json(json_object_get(params, "config"), &o, err)))
        return rc;
    /* Inputs must lie in the data roots; outputs are planned by ingest and the engine
     * under CONTIMG_PRODUCTS_DIR and need not exist yet. */
    if ((rc = ct_config_check_paths(cfg, &vis, 1, err)) ||
        (rc = ct_stage_prepare_output(comm, prefix, "-", err)))
        return rc;
    o.out_prefix = prefix;
    o.threads = cfg->threads;
    ct_image_result res;
    if ((rc = ct_image_observation(comm, vis, &o, &res, err)) != CT_OK)
        return rc;
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rank != 0)
        return CT_OK;
    char image[4096], pb[4096], reason[256];
    snprintf(image, sizeof image, "%s-image.fits", prefix);
    snprintf(pb, sizeof pb, "%s-image-pb.fits", prefix);
    bool passed = image_qa_passed(&res.qa, reason, sizeof reason);
    json_t *metrics = ct_image_result_json(&res);
    json_t *qa = json_incref(json_object_get(metrics, "qa"));
    json_object_set_new(qa, "passed", json_boolean(passed));
    json_object_set_new(qa, "reason", json_string(reason));
    out->result = ct_stage_result_new(
        passed ? "imaged" : "imaged; quality gate failed",
        json_pack("{s:s, s:s, s:s}", "image_path", image, "pb_path", pb, "image_prefix", prefix),
        metrics);
    if (!passed)
        json_object_set_new(out->result, "status", json_string("qa_failed"));
    json_t *row = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:s}",
                            "image_path", image, "group_id", group, "vis_path", vis, "pb_path", pb,
                            "nx", res.nx, "ny", res.ny, "cell_arcsec", res.cell_arcsec, "ra_deg",
                            res.ra_deg, "dec_deg", res.dec_deg, "freq_hz", res.freq_hz,
                            "bandwidth_hz", res.bandwidth_hz, "date_obs", res.date_obs);
    json_object_set_new(row, "n_vis", json_integer((json_int_t)res.n_vis));
    json_object_set_new(row, "rms_jy", json_real(res.qa.rms_jy));
    json_object_set_new(row, "peak_jy", json_real(res.qa.peak_jy));
    json_object_set_new(row, "dynamic_range", json_real(res.qa.dynamic_range));
    json_object_set_new(row, "beam_major_arcsec", json_real(res.qa.bmaj_arcsec));
    json_object_set_new(row, "beam_minor_arcsec", json_real(res.qa.bmin_arcsec));
    json_object_set_new(row, "beam_pa_deg", json_real(res.qa.bpa_deg));
    json_object_set_new(row, "n_components", json_integer((json_int_t)res.qa.n_components));
    json_object_set_new(row, "qa_passed", json_boolean(passed));
    json_object_set_new(row, "qa", qa);
    out->products = json_pack("{s:[o]}", "images", row);
    out->continue_chain = passed;
    return CT_OK;
}

/* --- create-mosaic ------------------------------------------------------------------ */

static ct_code run_mosaic(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                          ct_stage_outcome *out, ct_err *err)
{
    (void)cfg;
    const char *id, *prefix;
    ct_code rc;
    ct_mosaic_opts o;
    if ((rc = ct_stage_param_str(params, "inputs", "mosaic_id", &id, err)) ||
        (rc = ct_stage_param_str(params, "outputs", "prefix", &prefix, err)) ||
        (rc = ct_mosaic_opts_from_json(json_object_get(params, "config"), &o, err)))
        return rc;
    const json_t *inputs = json_object_get(params, "inputs");
    const json_t *images = json_object_get(inputs, "images");
    int n = (int)json_array_size(images);
    if (n < 1)
        return ct_fail(err, CT_EINVAL, "params.inputs.images: no images to mosaic");
    const char **paths = calloc((size_t)n, sizeof *paths);
    if (paths == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    for (int i = 0; i < n && rc == CT_OK; i++)
        if (!(paths[i] = json_string_value(json_array_get(images, (size_t)i))))
            rc = ct_fail(err, CT_EINVAL, "params.inputs.images[%d] is not a path", i);
    if (rc == CT_OK)
        rc = ct_stage_prepare_output(comm, prefix, "", err);
    o.out_prefix = prefix;
    ct_mosaic_result res;
    if (rc == CT_OK)
        rc = ct_mosaic_make(comm, paths, n, &o, &res, err);
    free(paths);
    if (rc != CT_OK)
        return rc;
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rank != 0) {
        ct_mosaic_result_free(&res);
        return CT_OK;
    }
    json_t *metrics = ct_mosaic_result_json(&res);
    char noise[4200], weight[4200];
    snprintf(noise, sizeof noise, "%s-noise.fits", prefix);
    snprintf(weight, sizeof weight, "%s-weight.fits", prefix);
    json_t *tiles = json_incref(json_object_get(metrics, "tiles"));
    const char *tier = json_string_value(json_object_get(inputs, "tier"));
    json_t *row = json_pack(
        "{s:s, s:s?, s:s?, s:s?, s:i, s:s, s:s?, s:s?, s:o, s:i, s:i, s:f, s:f, s:f, s:f, s:f}",
        "mosaic_id", id, "path", res.assembled ? res.path : NULL, "noise_path",
        res.assembled ? noise : NULL, "weight_path", res.assembled ? weight : NULL, "n_images",
        res.n_images, "tier", tier ? tier : "quicklook", "start_time",
        res.date_start[0] ? res.date_start : NULL, "end_time",
        res.date_end[0] ? res.date_end : NULL, "tiles", tiles, "nx", res.nx, "ny", res.ny, "ra_deg",
        res.ra_deg, "dec_deg", res.dec_deg, "cell_arcsec", res.cell_arcsec, "freq_hz", res.freq_hz,
        "noise_min_jy", res.noise_min_jy);
    if (!res.assembled) /* the path is the first tile's; the row lists them all */
        json_object_set_new(row, "path", json_string(res.tiles[0].path));
    json_object_set_new(row, "noise_jy", json_incref(json_object_get(metrics, "noise_jy")));
    char method[64];
    snprintf(method, sizeof method, "linear-pb-weighted/%s", res.interp);
    json_object_set_new(row, "method", json_string(method));
    json_object_set(row, "groups", json_object_get(inputs, "groups"));
    json_object_set(row, "images", (json_t *)images);
    json_object_set_new(row, "qa",
                        json_pack("{s:f, s:I, s:o}", "max_weight", res.max_weight, "n_blank",
                                  (json_int_t)res.n_blank, "sigma_jy",
                                  json_incref(json_object_get(metrics, "sigma_jy"))));
    out->result = ct_stage_result_new("mosaicked",
                                      json_pack("{s:s, s:s?, s:s}", "mosaic_id", id, "path",
                                                res.assembled ? res.path : NULL, "prefix", prefix),
                                      metrics);
    out->products = json_pack("{s:[o]}", "mosaics", row);
    out->continue_chain = true;
    ct_mosaic_result_free(&res);
    return CT_OK;
}

/* A mosaic follows a window of images, not one task: the spawn entry asks
 * absurd.commit_task to run the mosaic planner (step config: tier,
 * images_per_mosaic, overlap) and spawn a create-mosaic task for each
 * complete window not yet mosaicked, writing under products_dir/mosaics. */
static json_t *mosaic_follow(const ct_stage_follow *f, ct_err *err)
{
    const char *chain = f->chain, *products_dir = f->products_dir;
    const json_t *step_config = f->step_config;
    const json_t *tier = json_object_get(step_config, "tier");
    const json_t *per = json_object_get(step_config, "images_per_mosaic");
    const json_t *overlap = json_object_get(step_config, "overlap");
    /* Checked here, not left to the planner: a value it refuses would fail the
     * commit of every imaging task of the chain. */
    const char *t = json_is_string(tier) ? json_string_value(tier) : "quicklook";
    long most = strcmp(t, "quicklook") == 0 ? 10
                : strcmp(t, "science") == 0 ? 100
                : strcmp(t, "deep") == 0    ? 1000
                                            : 0;
    long n = json_is_integer(per) ? (long)json_integer_value(per) : most;
    long k = json_is_integer(overlap) ? (long)json_integer_value(overlap) : 2;
    if ((tier && !json_is_string(tier)) || most == 0 || (per && !json_is_integer(per)) ||
        (overlap && !json_is_integer(overlap)) || n < 2 || n > most || k < 0 || k >= n) {
        ct_fail(err, CT_EINVAL,
                "chain step create-mosaic: tier must be quicklook, science or deep, "
                "images_per_mosaic 2..(10, 100, 1000), overlap 0..images_per_mosaic-1");
        return NULL;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/mosaics", products_dir);
    json_t *m = json_pack("{s:s, s:s}", "tier", t, "out_dir", dir);
    if (json_is_integer(per))
        json_object_set(m, "per_mosaic", (json_t *)per);
    if (json_is_integer(overlap))
        json_object_set(m, "overlap", (json_t *)overlap);
    json_t *config = step_config ? json_deep_copy(step_config) : json_object();
    return json_pack("{s:s, s:o, s:{s:s?, s:o}}", "name", CT_TASK_MOSAIC, "mosaic", m, "params",
                     "chain", chain, "config", config);
}

/* --- mosaic-plan ---------------------------------------------------------------------- */

/* Nothing to compute: the planning is its commit's, where the chain's next step
 * (create-mosaic, mosaic_follow) spawns every complete window of its tier not yet
 * mosaicked. The nightly schedule starts the "nightly" chain with it. */
static ct_code run_mosaic_plan(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                               ct_stage_outcome *out, ct_err *err)
{
    (void)comm;
    (void)cfg;
    if (json_string_value(json_object_get(params, "chain")) == NULL)
        return ct_fail(err, CT_EINVAL,
                       "mosaic-plan: params.chain names no chain (its next step, create-mosaic, "
                       "does the planning)");
    out->result = ct_stage_result_new("the chain's next step plans the mosaics", json_object(),
                                      json_object());
    out->continue_chain = true;
    return CT_OK;
}

/* --- noop ------------------------------------------------------------------------- */

static ct_code run_noop(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                        ct_stage_outcome *out, ct_err *err)
{
    (void)comm;
    (void)cfg;
    const json_t *s = json_object_get(json_object_get(params, "config"), "sleep_sec");
    double sec = s ? json_number_value(s) : 0;
    if (s && (!json_is_number(s) || sec < 0 || sec > 86400))
        return ct_fail(err, CT_EINVAL, "config.sleep_sec must be a number of seconds");
    if (sec > 0) { /* the whole time: a signal (a forwarded drain) does not cut it short */
        struct timespec ts = {(time_t)sec, (long)((sec - floor(sec)) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    out->result = ct_stage_result_new("nothing to do", json_object(), json_object());
    out->continue_chain = true;
    return CT_OK;
}

/* --- calibration-solve, calibration-apply ------------------------------------------------- */

/* config.model, [[ra_deg, dec_deg, flux_jy(, spectral_index)], ...], into src[max]. */
static ct_code cal_model_from(const json_t *model, ct_source *src, size_t max, size_t *n,
                              ct_err *err)
{
    *n = 0;
    if (!json_is_array(model) || json_array_size(model) == 0 || json_array_size(model) > max)
        return ct_fail(err, CT_EINVAL,
                       "config.model must list the calibrator field's components, "
                       "[[ra_deg, dec_deg, flux_jy(, spectral_index)], ...] (1..%zu)",
                       max);
    size_t i;
    json_t *c;
    json_array_foreach(model, i, c)
    {
        const size_t k = json_array_size(c);
        double v[4] = {0, 0, 0, 0};
        for (size_t j = 0; j < k && j < 4; j++)
            v[j] = json_is_number(json_array_get(c, j)) ? json_number_value(json_array_get(c, j))
                                                        : NAN;
        if (!json_is_array(c) || k < 3 || k > 4 || !(v[0] >= 0 && v[0] < 360) ||
            !(fabs(v[1]) <= 90) || !(v[2] > 0) || !isfinite(v[3]))
            return ct_fail(err, CT_EINVAL,
                           "config.model[%zu] must be [ra_deg 0..360, dec_deg, flux_jy > 0(, "
                           "spectral_index)]",
                           i);
        src[i] = (ct_source){v[0] * M_PI / 180.0, v[1] * M_PI / 180.0, v[2], v[3]};
    }
    *n = json_array_size(model);
    return CT_OK;
}

static ct_code run_cal_solve(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                             ct_stage_outcome *out, ct_err *err)
{
    const char *group, *vis, *path;
    ct_code rc;
    if ((rc = ct_stage_param_str(params, "inputs", "group_id", &group, err)) ||
        (rc = ct_stage_param_str(params, "inputs", "vis_path", &vis, err)) ||
        (rc = ct_stage_param_str(params, "outputs", "caltable_path", &path, err)))
        return rc;
    const json_t *config = json_object_get(params, "config");
    ct_source model[64];
    ct_cal_opts o;
    ct_cal_opts_default(&o);
    const json_t *given = json_object_get(config, "model");
    const char *name = json_string_value(json_object_get(config, "calibrator"));
    if (given) {
        if ((rc = cal_model_from(given, model, 64, &o.n_model, err)))
            return rc;
    } else {
        /* The catalogue's calibrator: named, or the one this observation is the
         * transit of. */
        const ct_calibrator *cal = name ? ct_calibrator_find(name) : NULL;
        double sep = 0;
        if (name && !cal)
            return ct_fail(err, CT_EINVAL, "config.calibrator: %s is not in the catalogue", name);
        if (!cal && (rc = ct_calibrator_in_field(vis, cfg->calibrator_radius_deg, &cal, &sep,
                                                 err)) != CT_OK)
            return rc;
        if (!cal)
            return ct_fail(err, CT_EINVAL,
                           "calibration-solve: no catalogue calibrator within %g deg of the "
                           "pointing of %s; give config.model or config.calibrator",
                           cfg->calibrator_radius_deg, vis);
        ct_calibrator_source(cal, &model[0]);
        o.n_model = 1;
    }
    o.model = model;
    double valid_hours = 24;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)config, key, v)
    {
        const double d = json_number_value(v);
        if (strcmp(key, "model") == 0 || (strcmp(key, "calibrator") == 0 && json_is_string(v)))
            continue;
        if (strcmp(key, "refant") == 0 && json_is_integer(v) && d >= 0 && d <= 100000)
            o.refant = (int)d;
        else if (strcmp(key, "solint_sec") == 0 && json_is_number(v) && d >= 0 && d <= 1e6)
            o.solint_sec = d;
        else if (strcmp(key, "min_snr") == 0 && json_is_number(v) && d >= 0)
            o.min_snr = d;
        else if (strcmp(key, "reject_sigma") == 0 && json_is_number(v) && d >= 0)
            o.reject_sigma = d;
        else if (strcmp(key, "valid_hours") == 0 && json_is_number(v) && d >= 0 && d <= 1e6)
            valid_hours = d;
        else
            return ct_fail(err, CT_EINVAL, "config.%s: unknown calibration option or out of range",
                           key);
    }
    if ((rc = ct_config_check_paths(cfg, &vis, 1, err)) ||
        (rc = ct_stage_prepare_output(comm, path, ".", err)))
        return rc;
    ct_caltable t;
    if ((rc = ct_cal_solve(comm, vis, &o, &t, err)) != CT_OK)
        return rc;
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rank != 0) {
        ct_caltable_free(&t);
        return CT_OK; /* rank 0 writes the table and reports */
    }
    rc = ct_caltable_write(path, &t, err);
    json_t *row = rc == CT_OK ? ct_caltable_registry_row(&t, path, valid_hours) : NULL;
    if (rc == CT_OK && !row)
        rc = ct_fail(err, CT_ENOMEM, "out of memory");
    if (rc == CT_OK) {
        json_t *qa = json_object_get(row, "qa");
        /* The observation solved on goes on with the table: the standard chain applies
         * the table to it next (calibration-apply reads inputs.vis_path). */
        out->result = ct_stage_result_new(
            "solved", json_pack("{s:s, s:s}", "caltable_path", path, "vis_path", vis),
            json_deep_copy(qa));
        out->products = json_pack("{s:[o]}", "caltables", row);
        out->continue_chain = true;
    }
    ct_caltable_free(&t);
    return rc;
}

static ct_code run_cal_apply(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                             ct_stage_outcome *out, ct_err *err)
{
    const char *group, *vis, *path, *calibrated;
    ct_code rc;
    if ((rc = ct_stage_param_str(params, "inputs", "group_id", &group, err)) ||
        (rc = ct_stage_param_str(params, "inputs", "vis_path", &vis, err)) ||
        (rc = ct_stage_param_str(params, "inputs", "caltable_path", &path, err)) ||
        (rc = ct_stage_param_str(params, "outputs", "vis_path", &calibrated, err)))
        return rc;
    if (strcmp(vis, calibrated) == 0)
        return ct_fail(err, CT_EINVAL, "calibration-apply: outputs.vis_path is the input");
    if ((rc = ct_config_check_paths(cfg, &vis, 1, err)) ||
        (rc = ct_stage_prepare_output(comm, calibrated, ".", err)))
        return rc;
    ct_caltable t;
    if ((rc = ct_caltable_read(path, &t, err)) != CT_OK)
        return rc;
    ct_cal_apply_result r;
    rc = ct_cal_apply(comm, vis, &t, calibrated, &r, err);
    ct_caltable_free(&t);
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rc != CT_OK || rank != 0)
        return rc; /* rank 0 reports */
    json_t *chosen = json_object_get(params, "calibration");
    json_t *metrics =
        json_pack("{s:s, s:I, s:I, s:f, s:O}", "caltable_path", path, "n_samples",
                  (json_int_t)r.n_samples, "n_flagged_by_cal", (json_int_t)r.n_flagged_by_cal,
                  "seconds", r.seconds, "calibration", chosen ? chosen : json_null());
    out->result =
        ct_stage_result_new("calibrated", json_pack("{s:s}", "vis_path", calibrated), metrics);
    out->continue_chain = true;
    return CT_OK;
}

/* --- flag-rfi -------------------------------------------------------------------------- */

/* A config number where given (and a number), else the default. */
static double config_number(const json_t *config, const char *key, double dflt, int *bad)
{
    const json_t *v = json_object_get(config, key);
    if (!v)
        return dflt;
    if (!json_is_number(v)) {
        *bad = 1;
        return dflt;
    }
    return json_number_value(v);
}

static ct_code run_flag(MPI_Comm comm, const json_t *params, const ct_config *cfg,
                        ct_stage_outcome *out, ct_err *err)
{
    const char *group, *vis, *flagged;
    ct_code rc;
    if ((rc = ct_stage_param_str(params, "inputs", "group_id", &group, err)) ||
        (rc = ct_stage_param_str(params, "inputs", "vis_path", &vis, err)) ||
        (rc = ct_stage_param_str(params, "outputs", "vis_path", &flagged, err)))
        return rc;
    if (strcmp(vis, flagged) == 0)
        return ct_fail(err, CT_EINVAL, "flag-rfi: outputs.vis_path is the input");
    ct_flag_opts o;
    ct_flag_opts_default(&o);
    const json_t *config = json_object_get(params, "config");
    int bad = 0;
    o.plane.threshold = config_number(config, "threshold", o.plane.threshold, &bad);
    o.plane.rounds = (int)config_number(config, "rounds", o.plane.rounds, &bad);
    o.plane.eta = config_number(config, "eta", o.plane.eta, &bad);
    o.antenna_sigma = config_number(config, "antenna_sigma", o.antenna_sigma, &bad);
    o.max_fraction = config_number(config, "max_fraction", o.max_fraction, &bad);
    o.burst_sigma = config_number(config, "burst_sigma", o.burst_sigma, &bad);
    o.threads = cfg->threads;
    if (bad)
        return ct_fail(err, CT_EINVAL, "flag-rfi: a config value is not a number");
    if ((rc = ct_flag_opts_check(&o, err)) || (rc = ct_config_check_paths(cfg, &vis, 1, err)) ||
        (rc = ct_stage_prepare_output(comm, flagged, ".", err)))
        return rc;
    ct_flag_result r;
    rc = ct_flag_observation(comm, vis, flagged, &o, &r, err);
    /* The gate (every rank alike: the QA is every rank's): the task is done,
     * its chain is not. */
    const bool gate_failed = rc != CT_OK && r.n_samples > 0 && !r.gate_passed;
    int rank;
    MPI_Comm_rank(comm, &rank);
    if ((rc != CT_OK && !gate_failed) || rank != 0) {
        ct_flag_result_free(&r);
        return gate_failed ? CT_OK : rc; /* rank 0 reports */
    }
    json_t *ants = json_array(), *subs = json_array();
    for (int a = 0; a < r.nant; a++)
        if (r.ant_state[a] != 'o')
            json_array_append_new(ants, json_pack("{s:i, s:s}", "antenna", r.ant_number[a], "state",
                                                  ct_flag_ant_state_name(r.ant_state[a])));
    for (int s = 0; s < r.nsub; s++)
        json_array_append_new(subs, json_real(r.sub_fraction[s]));
    json_t *metrics = json_pack(
        "{s:I, s:I, s:I, s:f, s:I, s:f, s:b, s:o, s:o, s:f, s:i}", "n_samples",
        (json_int_t)r.n_samples, "n_flagged_input", (json_int_t)r.n_flagged_in, "n_flagged",
        (json_int_t)r.n_flagged, "fraction", r.fraction, "burst_cells", (json_int_t)r.n_burst_cells,
        "max_fraction", o.max_fraction, "gate_passed", r.gate_passed, "bad_antennas", ants,
        "subband_fraction", subs, "seconds", r.seconds, "ranks", r.ranks);
    out->result = ct_stage_result_new(
        gate_failed ? "flagged; quality gate failed" : "flagged",
        gate_failed ? json_object() : json_pack("{s:s}", "vis_path", flagged), metrics);
    if (gate_failed) {
        json_object_set_new(out->result, "status", json_string("qa_failed"));
        json_object_set_new(metrics, "reason", json_string(err->msg));
    }
    out->continue_chain = !gate_failed;
    ct_flag_result_free(&r);
    return CT_OK;
}

static void flag_outputs(json_t *outputs, const char *group, const char *products_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vis/%s.flagged.hdf5", products_dir, group);
    json_object_set_new(outputs, "vis_path", json_string(path));
}

/* Rank 0: calibration-apply's caltable, when the task names none, from the
 * registry's fallback chain at the observation's middle. None in reach is
 * transient: a calibrator transit may yet be solved, and the retry finds it. */
static ct_code resolve_cal_apply(cq_client *db, const ct_config *cfg, json_t *params, ct_err *err)
{
    json_t *inputs = json_object_get(params, "inputs");
    const char *vis = json_string_value(json_object_get(inputs, "vis_path"));
    if (json_string_value(json_object_get(inputs, "caltable_path")))
        return CT_OK; /* given */
    if (!json_is_object(inputs) || !vis)
        return CT_OK; /* the stage refuses it, with its own message */
    char iso[48];
    ct_code rc = ct_cal_obs_middle_iso(vis, iso, sizeof iso, err);
    if (rc != CT_OK)
        return rc;
    json_t *found = NULL;
    if ((rc = ct_products_find_caltable(db, iso, cfg->calibrator_staleness_hours, &found, err)))
        return rc;
    if (json_is_null(found)) {
        json_decref(found);
        return ct_fail_as(err, CT_CAT_TRANSIENT, CT_ENOTFOUND,
                          "no caltable for %s at %s: none registered within reach (retried: a "
                          "calibrator transit may yet be solved)",
                          vis, iso);
    }
    json_object_set(inputs, "caltable_path", json_object_get(found, "path"));
    json_object_set_new(params, "calibration", found);
    return CT_OK;
}

/* Where calibration outputs go: products_dir/caltables/GROUP.cal.h5 and
 * products_dir/vis/GROUP.cal.hdf5. */
static void cal_solve_outputs(json_t *outputs, const char *group, const char *products_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/caltables/%s.cal.h5", products_dir, group);
    json_object_set_new(outputs, "caltable_path", json_string(path));
}

static void cal_apply_outputs(json_t *outputs, const char *group, const char *products_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vis/%s.cal.hdf5", products_dir, group);
    json_object_set_new(outputs, "vis_path", json_string(path));
}

/* --- Admission: the seed's convert shape ---------------------------------------------- */

/* A group id as the products tables key it: YYYY-MM-DDTHH:MM:SS, a real UTC time. */
static bool group_id_valid(const char *s)
{
    double t;
    return strlen(s) == CT_TIMESTAMP_LEN && s[4] == '-' && s[7] == '-' && s[10] == 'T' &&
           s[13] == ':' && s[16] == ':' && ct_time_parse_utc(s, &t);
}

/* The seed's convert task names a directory and a time window, not a group: inputs
 * {input_path, start_time, end_time}. It becomes the one complete observation in that
 * window, {group_id, files[16]}, found as ingest finds them; none, or more than one, is
 * refused with what was there (a convert task makes one file). The seed's inputs are kept
 * as params.seed_inputs, so the task still says what was asked. */
static ct_code admit_convert(json_t *params, const ct_config *cfg, ct_err *err)
{
    json_t *in = json_object_get(params, "inputs");
    const char *dir = json_string_value(json_object_get(in, "input_path"));
    if (dir == NULL)
        return CT_OK; /* contimg's own shape */
    if (json_object_get(in, "files") || json_object_get(in, "group_id"))
        return ct_fail(err, CT_EINVAL,
                       "params.inputs: input_path (the seed's time window) and group_id/files "
                       "(one group) exclude each other");
    const char *from = json_string_value(json_object_get(in, "start_time"));
    const char *to = json_string_value(json_object_get(in, "end_time"));
    double t0, t1;
    if (from == NULL || to == NULL || !ct_time_parse_utc(from, &t0) ||
        !ct_time_parse_utc(to, &t1) || t1 < t0)
        return ct_fail(err, CT_EINVAL,
                       "params.inputs: input_path needs start_time <= end_time, UTC times "
                       "YYYY-MM-DDTHH:MM:SS");
    ct_code rc = ct_config_check_paths(cfg, &dir, 1, err);
    if (rc != CT_OK) {
        char why[CT_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        return ct_fail(err, CT_EINVAL, "params.inputs.input_path: outside_data_roots: %s", why);
    }
    ct_group *groups = NULL;
    size_t n = 0, found = 0, incomplete = 0;
    if ((rc = ct_groups_scan(dir, 60, &groups, &n, err)) != CT_OK) {
        char why[CT_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        return ct_fail(err, CT_EINVAL, "params.inputs.input_path: %s", why);
    }
    const ct_group *g = NULL;
    char problems[256] = "";
    for (size_t i = 0; i < n; i++) {
        if (groups[i].unix_time < t0 || groups[i].unix_time > t1)
            continue;
        if (!ct_group_complete(&groups[i])) {
            if (incomplete++ == 0) {
                char what[200];
                ct_group_problems(&groups[i], what, sizeof what);
                snprintf(problems, sizeof problems, "; %s: %s", groups[i].id, what);
            }
            continue;
        }
        if (found++ == 0)
            g = &groups[i];
    }
    if (found != 1) {
        rc = found == 0 ? ct_fail(err, CT_EINVAL,
                                  "no complete observation in %s between %s and %s (%zu "
                                  "incomplete%s)",
                                  dir, from, to, incomplete, problems)
                        : ct_fail(err, CT_EINVAL,
                                  "%zu observations in %s between %s and %s, from %s: a convert "
                                  "task makes one; narrow the window, or let `contimg ingest` "
                                  "spawn one per group",
                                  found, dir, from, to, g->id);
        ct_groups_free(groups, n);
        return rc;
    }
    json_t *files = json_array();
    for (int sb = 0; sb < CT_SUBBANDS; sb++)
        json_array_append_new(files, json_string(g->subband[sb]->path));
    json_object_set_new(params, "seed_inputs", json_deep_copy(in));
    json_object_set_new(params, "inputs",
                        json_pack("{s:s, s:o}", "group_id", g->id, "files", files));
    ct_groups_free(groups, n);
    return CT_OK;
}

/* --- The stage table ------------------------------------------------------------------ */

/* Where an imaging task's images go: products_dir/images/GROUP-*.fits. */
static void imaging_outputs(json_t *outputs, const char *group, const char *products_dir)
{
    char prefix[4096];
    snprintf(prefix, sizeof prefix, "%s/images/%s", products_dir, group);
    json_object_set_new(outputs, "image_prefix", json_string(prefix));
}

/* One row per task kind: its name, the ranks it can use (conversion deals
 * blocks of baseline-times, calibration-solve channels, calibration-apply
 * blocks of baseline-times and imaging grid slabs, all to any number of ranks;
 * a no-op runs on one), its run, the
 * outputs planned for it when a chain spawns it (NULL: none), how it follows a finished step of a
 * chain (NULL: one task, ct_stage_next_params), what rank 0 resolves in its params from the
 * database first (NULL: nothing), the params a spawn must hold (ct_stage_admit: "section.key"
 * a string, "section.key[]" a list of strings) and its own admission step (NULL: none). A new
 * stage is one row here and its run function (docs/architecture.md). */
#define STAGE_TABLE(ROW)                                                                           \
    ROW(CT_TASK_CONVERT, CT_STAGE_ANY_RANKS, run_convert, convert_outputs, NULL, NULL,             \
        "inputs.group_id inputs.files[] outputs.vis_path", admit_convert)                          \
    ROW(CT_TASK_CAL_SOLVE, CT_STAGE_ANY_RANKS, run_cal_solve, cal_solve_outputs, NULL, NULL,       \
        "inputs.group_id inputs.vis_path outputs.caltable_path", NULL)                             \
    ROW(CT_TASK_CAL_APPLY, CT_STAGE_ANY_RANKS, run_cal_apply, cal_apply_outputs, NULL,             \
        resolve_cal_apply, "inputs.group_id inputs.vis_path outputs.vis_path", NULL)               \
    ROW(CT_TASK_FLAG, CT_STAGE_ANY_RANKS, run_flag, flag_outputs, NULL, NULL,                      \
        "inputs.group_id inputs.vis_path outputs.vis_path", NULL)                                  \
    ROW(CT_TASK_IMAGING, CT_STAGE_ANY_RANKS, run_imaging, imaging_outputs, NULL, NULL,             \
        "inputs.group_id inputs.vis_path outputs.image_prefix", NULL)                              \
    ROW(CT_TASK_MOSAIC, CT_STAGE_ANY_RANKS, run_mosaic, NULL, mosaic_follow, NULL,                 \
        "inputs.mosaic_id inputs.images[] outputs.prefix", NULL)                                   \
    ROW(CT_TASK_MOSAIC_PLAN, 1, run_mosaic_plan, NULL, NULL, NULL, "", NULL)                       \
    ROW(CT_TASK_HOUSEKEEPING, 1, ct_housekeeping_run, NULL, NULL, ct_housekeeping_resolve, "",     \
        ct_housekeeping_admit)                                                                     \
    ROW(CT_TASK_VALIDATION, 1, ct_science_validation, ct_science_validation_outputs, NULL, NULL,   \
        "inputs.group_id inputs.image_path outputs.catalog_path", NULL)                            \
    ROW(CT_TASK_CROSSMATCH, 1, ct_science_crossmatch, NULL, NULL, NULL,                            \
        "inputs.group_id inputs.image_path inputs.catalog_path", NULL)                             \
    ROW(CT_TASK_PHOTOMETRY, 1, ct_science_photometry, NULL, NULL, NULL,                            \
        "inputs.group_id inputs.image_path", NULL)                                                 \
    ROW(CT_TASK_PUBLISH, 1, ct_publish_stage_run, NULL, NULL, ct_publish_resolve,                  \
        "inputs.group_id inputs.image_path", NULL)                                                 \
    ROW(CT_TASK_NOOP, 1, run_noop, NULL, NULL, NULL, "", NULL)

#define STAGE_ROW(name, ranks, run, outputs, follow, resolve, keys, admit)                         \
    {name, ranks, run, outputs, follow, resolve, keys, admit},
#define STAGE_NAME(name, ranks, run, outputs, follow, resolve, keys, admit) name,
static const ct_stage stage_table[] = {STAGE_TABLE(STAGE_ROW)};
static const char *const stage_names[] = {STAGE_TABLE(STAGE_NAME) NULL};
#undef STAGE_ROW
#undef STAGE_NAME

const char *const *ct_stage_names(void)
{
    return stage_names;
}

size_t ct_stage_single_rank_names(const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < sizeof stage_table / sizeof stage_table[0] && n + 1 < cap; i++)
        if (stage_table[i].max_ranks == 1)
            out[n++] = stage_table[i].name;
    if (cap > 0)
        out[n] = NULL;
    return n;
}

const ct_stage *ct_stage_find(const char *task_name)
{
    for (size_t i = 0; task_name && i < sizeof stage_table / sizeof stage_table[0]; i++)
        if (strcmp(stage_table[i].name, task_name) == 0)
            return &stage_table[i];
    return NULL;
}

bool ct_stage_known(const char *task_name)
{
    return ct_stage_find(task_name) != NULL;
}

int ct_stage_max_ranks(const char *task_name)
{
    const ct_stage *st = ct_stage_find(task_name);
    return st ? st->max_ranks : 1;
}

/* --- Paths in params ---------------------------------------------------------------------- */

/* Every path a task's params name, as any database client may have written them: each
 * output inside the products directory (ct_path_check_output: no traversal, no link out,
 * never a link or directory where a file goes), each input -- a string member named
 * *_path, the lists files and images -- inside the data roots. An input that does not
 * exist (yet) is the stage's to report. */
static ct_code check_paths(const json_t *params, const ct_config *cfg, ct_err *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(params, "outputs"), key, v)
    {
        if (json_is_string(v) &&
            ct_path_check_output(json_string_value(v), cfg->products_dir, err) != CT_OK) {
            char why[CT_ERRMSG_MAX];
            snprintf(why, sizeof why, "%s", err->msg);
            return ct_fail(err, CT_EINVAL, "params.outputs.%s: %s", key, why);
        }
    }
    json_object_foreach(json_object_get(params, "inputs"), key, v)
    {
        const size_t n = strlen(key);
        const bool one = json_is_string(v) && n > 5 && strcmp(key + n - 5, "_path") == 0;
        const bool list =
            json_is_array(v) && (strcmp(key, "files") == 0 || strcmp(key, "images") == 0);
        for (size_t i = 0; (one && i == 0) || (list && i < json_array_size(v)); i++) {
            const char *path = json_string_value(one ? v : json_array_get(v, i));
            if (path == NULL)
                continue; /* the stage says what it wants */
            ct_code rc = ct_config_check_paths(cfg, &path, 1, err);
            if (rc != CT_OK && rc != CT_ENOTFOUND) {
                char why[CT_ERRMSG_MAX];
                snprintf(why, sizeof why, "%s", err->msg);
                return ct_fail(err, CT_EINVAL, "params.inputs.%s: outside_data_roots: %s", key,
                               why);
            }
        }
    }
    return CT_OK;
}

/* The task's UVH5 inputs that exist -- a subband group's files, a visibility file -- opened
 * in a child process first (ct_uvh5_probe): a file that would crash HDF5 fails the task as
 * corrupt input here, on rank 0, instead of killing the ranks that read it and with them
 * every task of the job. A missing file is left to the stage, which says so. */
static ct_code probe_inputs(const json_t *params, ct_err *err)
{
    const json_t *in = json_object_get(params, "inputs");
    const json_t *files = json_object_get(in, "files");
    const char *one = json_string_value(json_object_get(in, "vis_path"));
    size_t n = json_array_size(files) + (one != NULL);
    const char **paths = calloc(n + 1, sizeof *paths);
    if (paths == NULL)
        return ct_fail(err, CT_ENOMEM, "out of memory");
    size_t k = 0, i;
    const json_t *f;
    json_array_foreach(files, i, f)
    {
        if (json_string_value(f) && access(json_string_value(f), R_OK) == 0)
            paths[k++] = json_string_value(f);
    }
    if (one != NULL && access(one, R_OK) == 0)
        paths[k++] = one;
    ct_code rc = ct_uvh5_probe(paths, k, err);
    free(paths);
    return rc;
}

ct_code ct_stage_prepare(cq_client *db, const ct_config *cfg, const char *task_name, json_t *params,
                         ct_err *err)
{
    const ct_stage *st = ct_stage_find(task_name);
    if (st == NULL || !json_is_object(params))
        return CT_OK; /* ct_stage_run refuses it, with its own message */
    ct_code rc = check_paths(params, cfg, err);
    if (rc == CT_OK)
        rc = probe_inputs(params, err);
    if (rc == CT_OK && st->resolve)
        rc = st->resolve(db, cfg, params, err);
    return rc;
}

/* --- Admission ---------------------------------------------------------------------------- */

/* The observation a file is named after (GROUP.hdf5, GROUP.flagged.hdf5, the seed's
 * GROUP.ms), or false. */
static bool group_from_name(const char *path, char id[CT_TIMESTAMP_LEN + 1])
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(id, CT_TIMESTAMP_LEN + 1, "%s", base);
    return group_id_valid(id);
}

/* Whether params holds key ("section.name" a non-empty string, "section.name[]" a non-empty
 * list of them): key is its first len bytes. */
static bool has_key(const json_t *params, const char *key, size_t len)
{
    char section[32], name[64];
    const char *dot = memchr(key, '.', len);
    if (dot == NULL || (size_t)(dot - key) >= sizeof section ||
        len - (size_t)(dot - key) >= sizeof name)
        return false;
    snprintf(section, sizeof section, "%.*s", (int)(dot - key), key);
    snprintf(name, sizeof name, "%.*s", (int)(len - (size_t)(dot - key) - 1), dot + 1);
    const bool list = strstr(name, "[]") != NULL;
    if (list)
        *strstr(name, "[]") = '\0';
    const json_t *v = json_object_get(json_object_get(params, section), name);
    if (!list)
        return json_string_value(v) && json_string_value(v)[0];
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_string_value(e) || !json_string_value(e)[0])
            return false;
    }
    return json_array_size(v) > 0;
}

ct_code ct_stage_admit(const char *task_name, json_t *params, const ct_config *cfg, char *key,
                       size_t key_size, ct_err *err)
{
    if (key_size > 0)
        key[0] = '\0';
    const ct_stage *st = ct_stage_find(task_name);
    if (st == NULL)
        return CT_OK; /* another worker's kind: not ours to judge */
    if (!json_is_object(params))
        return ct_fail(err, CT_EINVAL, "%s: params must be a JSON object", task_name);
    static const char *const sections[] = {"inputs", "outputs", "config"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(params, sections[i]);
        if (v && !json_is_object(v))
            return ct_fail(err, CT_EINVAL, "%s: params.%s must be an object", task_name,
                           sections[i]);
        if (v == NULL && i < 2 && st->spawn_keys[0])
            json_object_set_new(params, sections[i], json_object());
    }
    ct_code rc;
    if (st->admit && (rc = st->admit(params, cfg, err)) != CT_OK)
        return rc;
    json_t *in = json_object_get(params, "inputs");
    /* The seed names the observation a stage reads ms_path; here it is a UVH5 file. */
    const char *ms = json_string_value(json_object_get(in, "ms_path"));
    if (ms && strstr(st->spawn_keys, "inputs.vis_path")) {
        struct stat sb;
        if (stat(ms, &sb) == 0 && S_ISDIR(sb.st_mode))
            return ct_fail(err, CT_EINVAL,
                           "%s: params.inputs.ms_path %s is a directory (a CASA Measurement "
                           "Set); contimg reads the UVH5 file convert-uvh5-to-ms wrote",
                           task_name, ms);
        if (json_object_get(in, "vis_path") == NULL)
            json_object_set_new(in, "vis_path", json_string(ms));
        json_object_del(in, "ms_path");
    }
    const char *vis = json_string_value(json_object_get(in, "vis_path"));
    char id[CT_TIMESTAMP_LEN + 1];
    if (strstr(st->spawn_keys, "inputs.group_id") && !json_object_get(in, "group_id") && vis &&
        group_from_name(vis, id))
        json_object_set_new(in, "group_id", json_string(id));
    const char *group = json_string_value(json_object_get(in, "group_id"));
    if (group && !group_id_valid(group))
        return ct_fail(err, CT_EINVAL,
                       "%s: params.inputs.group_id '%s' is not an observation's UTC time "
                       "stamp YYYY-MM-DDTHH:MM:SS",
                       task_name, group);
    if (group && st->plan_outputs) {
        /* What a chain would plan, where the spawn names nothing. */
        json_t *planned = json_object();
        st->plan_outputs(planned, group, cfg->products_dir);
        json_object_update_missing(json_object_get(params, "outputs"), planned);
        json_decref(planned);
    }
    for (const char *k = st->spawn_keys; *k;) {
        const size_t len = strcspn(k, " ");
        if (!has_key(params, k, len))
            return ct_fail(err, CT_EINVAL,
                           "%s: params.%.*s is missing or empty (the task needs %s; outputs "
                           "not given are planned under the products directory from "
                           "inputs.group_id, and the seed's inputs.ms_path is taken for "
                           "inputs.vis_path)",
                           task_name, (int)len, k, st->spawn_keys);
        k += len + (k[len] == ' ');
    }
    const json_t *files = json_object_get(in, "files");
    if (json_array_size(files) > 64)
        return ct_fail(err, CT_EINVAL, "%s: params.inputs.files lists %zu files (at most 64)",
                       task_name, json_array_size(files));
    if (check_paths(params, cfg, err) != CT_OK) {
        char why[CT_ERRMSG_MAX];
        snprintf(why, sizeof why, "%s", err->msg);
        return ct_fail(err, CT_EINVAL, "%s: %s", task_name, why);
    }
    if (strcmp(task_name, CT_TASK_CONVERT) == 0 && key_size > 0)
        snprintf(key, key_size, "%s", group); /* ingest's key: one convert per group */
    return CT_OK;
}

void ct_stage_planned_vis_paths(const char *group, const char *products_dir, json_t *paths)
{
    for (size_t i = 0; i < sizeof stage_table / sizeof stage_table[0]; i++) {
        if (stage_table[i].plan_outputs == NULL)
            continue;
        json_t *o = json_object();
        stage_table[i].plan_outputs(o, group, products_dir);
        const char *v = json_string_value(json_object_get(o, "vis_path"));
        bool listed = false;
        size_t j;
        const json_t *p;
        json_array_foreach(paths, j, p)
        {
            listed = listed || (v && strcmp(json_string_value(p), v) == 0);
        }
        if (v && !listed)
            json_array_append_new(paths, json_string(v));
        json_decref(o);
    }
}

json_t *ct_stage_follow_spawns(const ct_stage_follow *f, ct_err *err)
{
    const ct_stage *st = ct_stage_find(f->next);
    if (st == NULL) {
        ct_fail(err, CT_EINVAL, "no stage for task kind %s", f->next);
        return NULL;
    }
    if (st->follow)
        return st->follow(f, err);
    const char *group =
        json_string_value(json_object_get(json_object_get(f->params, "inputs"), "group_id"));
    char key[CQ_KEY_MAX];
    snprintf(key, sizeof key, "%s:%s:%s", f->chain, group ? group : f->task_id, f->next);
    json_t *params =
        ct_stage_next_params(f->next, f->params, f->result, f->step_config, f->products_dir);
    return json_pack("{s:s, s:o, s:s, s:[s]}", "name", f->next, "params", params, "idempotency_key",
                     key, "depends_on", f->task_id);
}

ct_code ct_stage_run(MPI_Comm comm, const char *task_name, const json_t *params,
                     const ct_config *cfg, ct_stage_outcome *out, ct_err *err)
{
    memset(out, 0, sizeof *out);
    const ct_stage *st = ct_stage_find(task_name);
    ct_code rc;
    if (!json_is_object(params))
        rc = ct_fail(err, CT_EINVAL, "params must be a JSON object");
    else if (st == NULL)
        rc = ct_fail(err, CT_EINVAL, "no stage for task kind %s", task_name);
    else
        rc = st->run(comm, params, cfg, out, err);
    if (rc != CT_OK)
        ct_stage_outcome_free(out);
    return rc;
}
