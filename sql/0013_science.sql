-- 0013: the science products after imaging (issue 18): each image's sources, its
-- validation against the reference catalogue, the crossmatch, forced photometry and the
-- light curves' variability.
--
-- Keys, as everywhere in products: what a row is, never who made it. A catalogue is keyed
-- by its image; a source by its image and its place in the catalogue (brightest first); a
-- validation by its image; a photometry point by the catalogue source and the image; a
-- variability row by the catalogue source. A task run twice rewrites the same rows: an
-- image's sources and photometry points are replaced as a set, in the commit's one
-- transaction, so a rerun with a different outcome leaves no row of the first.

CREATE TABLE products.catalogs (
    image_path      text PRIMARY KEY,
    group_id        text NOT NULL,
    catalog_path    text,
    n_sources       integer NOT NULL,
    n_islands       integer,
    rms_jy          double precision,
    beam_maj_arcsec double precision,
    beam_min_arcsec double precision,
    beam_pa_deg     double precision,
    options         jsonb NOT NULL DEFAULT '{}',
    seconds         double precision,
    task_id         uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    n_writes        integer NOT NULL DEFAULT 1
);
CREATE INDEX catalogs_group_idx ON products.catalogs (group_id);

CREATE TABLE products.sources (
    image_path     text NOT NULL REFERENCES products.catalogs ON DELETE CASCADE,
    idx            integer NOT NULL,
    ra_deg         double precision NOT NULL,
    dec_deg        double precision NOT NULL,
    ra_err_arcsec  double precision,
    dec_err_arcsec double precision,
    peak_jy        double precision NOT NULL,
    peak_err_jy    double precision,
    int_jy         double precision,
    int_err_jy     double precision,
    maj_arcsec     double precision,
    min_arcsec     double precision,
    pa_deg         double precision,
    rms_jy         double precision,
    snr            double precision,
    flags          integer NOT NULL DEFAULT 0,
    ref_id         text,             -- the crossmatch: the catalogue source, if any
    ref_sep_arcsec double precision,
    PRIMARY KEY (image_path, idx)
);
CREATE INDEX sources_ref_idx ON products.sources (ref_id) WHERE ref_id IS NOT NULL;

CREATE TABLE products.validations (
    image_path         text PRIMARY KEY,
    group_id           text NOT NULL,
    status             text NOT NULL
                       CHECK (status IN ('passed', 'failed', 'insufficient', 'no_catalog')),
    reason             text NOT NULL DEFAULT '',
    catalog            text,
    n_sources          integer,
    n_matches          integer,
    n_astrometry       integer,
    offset_ra_arcsec   double precision,
    offset_dec_arcsec  double precision,
    offset_arcsec      double precision,
    scatter_arcsec     double precision,
    flux_ratio         double precision,
    flux_ratio_scatter double precision,
    n_ref_in_field     integer,
    n_expected         integer,
    n_expected_found   integer,
    completeness       double precision,
    thresholds         jsonb NOT NULL DEFAULT '{}',
    task_id            uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    n_writes           integer NOT NULL DEFAULT 1
);
CREATE INDEX validations_status_idx ON products.validations (status);

-- One image's forced photometry: the flux-scale factor it was normalized by.
CREATE TABLE products.photometry_images (
    image_path  text PRIMARY KEY,
    group_id    text NOT NULL,
    mjd         double precision NOT NULL,
    factor      double precision NOT NULL,
    factor_err  double precision,
    n_refs      integer,
    normalized  boolean NOT NULL,
    n_points    integer NOT NULL,
    task_id     uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    n_writes    integer NOT NULL DEFAULT 1
);

-- The light curves: one point per catalogue source per image.
CREATE TABLE products.photometry (
    ref_id       text NOT NULL,
    image_path   text NOT NULL REFERENCES products.photometry_images ON DELETE CASCADE,
    mjd          double precision NOT NULL,
    ra_deg       double precision,
    dec_deg      double precision,
    peak_jy      double precision NOT NULL,
    rms_jy       double precision NOT NULL,
    pb           double precision,
    flux_jy      double precision NOT NULL,
    flux_err_jy  double precision NOT NULL,
    norm_flux_jy double precision NOT NULL,
    norm_err_jy  double precision NOT NULL CHECK (norm_err_jy > 0),
    snr          double precision,
    PRIMARY KEY (ref_id, image_path)
);
CREATE INDEX photometry_image_idx ON products.photometry (image_path);

-- Per catalogue source, over its light curve (normalized fluxes f_i, errors e_i, weights
-- w_i = 1 / e_i^2, n points):
--   wmean  sum w f / sum w;            v    std(f) / mean(f) (the coefficient of variation);
--   eta    sum w (f - wmean)^2 / (n - 1) (the reduced chi-squared about the weighted mean);
--   chi2   (n - 1) eta;                m    sqrt(max(var(f) - mean(e^2), 0)) / mean(f), the
--          modulation beyond what the errors explain;
--   z      chi2's significance, in sigma of a normal (Wilson and Hilferty's cube root: chi2 / k
--          with k = n - 1 degrees of freedom is close to normal after the cube root);
--   is_variable  n >= 3, z > z_min (3.09: p < 0.001 for a constant source) and m >= m_min
--          (0.05): significant, and more than a few per cent.
CREATE TABLE products.variability (
    ref_id      text PRIMARY KEY,
    ra_deg      double precision,
    dec_deg     double precision,
    n           integer NOT NULL,
    mean_jy     double precision,
    wmean_jy    double precision,
    std_jy      double precision,
    v           double precision,
    eta         double precision,
    chi2        double precision,
    m           double precision,
    z           double precision,
    is_variable boolean NOT NULL,
    first_mjd   double precision,
    last_mjd    double precision,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX variability_flagged_idx ON products.variability (z DESC) WHERE is_variable;

-- The thresholds is_variable uses (one row; an operator may change them, then call
-- products.refresh_variability(NULL) to apply them to every source).
CREATE TABLE products.variability_settings (
    one   boolean PRIMARY KEY DEFAULT true CHECK (one),
    z_min double precision NOT NULL DEFAULT 3.09 CHECK (z_min > 0),
    m_min double precision NOT NULL DEFAULT 0.05 CHECK (m_min >= 0)
);
INSERT INTO products.variability_settings DEFAULT VALUES;

-- Recomputes the variability rows of p_refs (NULL: every source with photometry).
CREATE FUNCTION products.refresh_variability(p_refs text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    s  products.variability_settings;
    nr integer;
BEGIN
    SELECT * INTO s FROM products.variability_settings;
    WITH agg AS (
        SELECT p.ref_id, count(*) AS n, avg(p.ra_deg) AS ra, avg(p.dec_deg) AS dec,
               avg(p.norm_flux_jy) AS mean, stddev_samp(p.norm_flux_jy) AS std,
               var_samp(p.norm_flux_jy) AS var, avg(p.norm_err_jy ^ 2) AS e2,
               sum(p.norm_flux_jy / p.norm_err_jy ^ 2) / sum(1 / p.norm_err_jy ^ 2) AS wmean,
               min(p.mjd) AS first_mjd, max(p.mjd) AS last_mjd
          FROM products.photometry p
         WHERE p_refs IS NULL OR p.ref_id = ANY (p_refs)
         GROUP BY p.ref_id
    ), stat AS (
        SELECT a.*, (SELECT sum((p.norm_flux_jy - a.wmean) ^ 2 / p.norm_err_jy ^ 2)
                       FROM products.photometry p WHERE p.ref_id = a.ref_id) AS chi2
          FROM agg a
    ), full_ AS (
        SELECT st.*,
               CASE WHEN st.n > 1 THEN st.chi2 / (st.n - 1) END AS eta,
               CASE WHEN st.mean <> 0 THEN st.std / st.mean END AS v,
               CASE WHEN st.mean <> 0 THEN sqrt(greatest(st.var - st.e2, 0)) / st.mean END AS m,
               CASE WHEN st.n > 1 THEN
                   ((st.chi2 / (st.n - 1)) ^ (1.0 / 3) - (1 - 2.0 / (9 * (st.n - 1))))
                   / sqrt(2.0 / (9 * (st.n - 1)))
               END AS z
          FROM stat st
    )
    INSERT INTO products.variability AS v
        (ref_id, ra_deg, dec_deg, n, mean_jy, wmean_jy, std_jy, v, eta, chi2, m, z,
         is_variable, first_mjd, last_mjd)
    SELECT f.ref_id, f.ra, f.dec, f.n, f.mean, f.wmean, f.std, f.v, f.eta, f.chi2, f.m, f.z,
           coalesce(f.n >= 3 AND f.z > s.z_min AND f.m >= s.m_min, false), f.first_mjd,
           f.last_mjd
      FROM full_ f
    ON CONFLICT (ref_id) DO UPDATE
       SET ra_deg = EXCLUDED.ra_deg, dec_deg = EXCLUDED.dec_deg, n = EXCLUDED.n,
           mean_jy = EXCLUDED.mean_jy, wmean_jy = EXCLUDED.wmean_jy, std_jy = EXCLUDED.std_jy,
           v = EXCLUDED.v, eta = EXCLUDED.eta, chi2 = EXCLUDED.chi2, m = EXCLUDED.m,
           z = EXCLUDED.z, is_variable = EXCLUDED.is_variable,
           first_mjd = EXCLUDED.first_mjd, last_mjd = EXCLUDED.last_mjd, updated_at = now();
    GET DIAGNOSTICS nr = ROW_COUNT;
    -- Sources whose every point went (an image's photometry replaced without them).
    DELETE FROM products.variability v
     WHERE (p_refs IS NULL OR v.ref_id = ANY (p_refs))
       AND NOT EXISTS (SELECT 1 FROM products.photometry p WHERE p.ref_id = v.ref_id);
    RETURN nr;
END $$;

-- p: {image_path, group_id, catalog_path, n_sources, n_islands, rms_jy, beam_maj_arcsec,
-- beam_min_arcsec, beam_pa_deg, options, seconds, sources: [{idx, ra_deg, ...}]}.
CREATE FUNCTION products._upsert_catalog(p jsonb, p_task uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO products.catalogs AS c
        (image_path, group_id, catalog_path, n_sources, n_islands, rms_jy, beam_maj_arcsec,
         beam_min_arcsec, beam_pa_deg, options, seconds, task_id)
    VALUES (p->>'image_path', p->>'group_id', p->>'catalog_path', (p->>'n_sources')::int,
            (p->>'n_islands')::int, (p->>'rms_jy')::float8, (p->>'beam_maj_arcsec')::float8,
            (p->>'beam_min_arcsec')::float8, (p->>'beam_pa_deg')::float8,
            coalesce(p->'options', '{}'), (p->>'seconds')::float8, p_task)
    ON CONFLICT (image_path) DO UPDATE
       SET group_id = EXCLUDED.group_id, catalog_path = EXCLUDED.catalog_path,
           n_sources = EXCLUDED.n_sources, n_islands = EXCLUDED.n_islands,
           rms_jy = EXCLUDED.rms_jy, beam_maj_arcsec = EXCLUDED.beam_maj_arcsec,
           beam_min_arcsec = EXCLUDED.beam_min_arcsec, beam_pa_deg = EXCLUDED.beam_pa_deg,
           options = EXCLUDED.options, seconds = EXCLUDED.seconds, task_id = EXCLUDED.task_id,
           updated_at = now(), n_writes = c.n_writes + 1;
    DELETE FROM products.sources s WHERE s.image_path = p->>'image_path';
    INSERT INTO products.sources
        (image_path, idx, ra_deg, dec_deg, ra_err_arcsec, dec_err_arcsec, peak_jy, peak_err_jy,
         int_jy, int_err_jy, maj_arcsec, min_arcsec, pa_deg, rms_jy, snr, flags)
    SELECT p->>'image_path', (e->>'idx')::int, (e->>'ra_deg')::float8, (e->>'dec_deg')::float8,
           (e->>'ra_err_arcsec')::float8, (e->>'dec_err_arcsec')::float8,
           (e->>'peak_jy')::float8, (e->>'peak_err_jy')::float8, (e->>'int_jy')::float8,
           (e->>'int_err_jy')::float8, (e->>'maj_arcsec')::float8, (e->>'min_arcsec')::float8,
           (e->>'pa_deg')::float8, (e->>'rms_jy')::float8, (e->>'snr')::float8,
           coalesce((e->>'flags')::int, 0)
      FROM jsonb_array_elements(coalesce(p->'sources', '[]')) e;
END $$;

CREATE FUNCTION products._upsert_validation(p jsonb, p_task uuid) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO products.validations AS v
        (image_path, group_id, status, reason, catalog, n_sources, n_matches, n_astrometry,
         offset_ra_arcsec, offset_dec_arcsec, offset_arcsec, scatter_arcsec, flux_ratio,
         flux_ratio_scatter, n_ref_in_field, n_expected, n_expected_found, completeness,
         thresholds, task_id)
    VALUES (p->>'image_path', p->>'group_id', p->>'status', coalesce(p->>'reason', ''),
            p->>'catalog', (p->>'n_sources')::int, (p->>'n_matches')::int,
            (p->>'n_astrometry')::int, (p->>'offset_ra_arcsec')::float8,
            (p->>'offset_dec_arcsec')::float8, (p->>'offset_arcsec')::float8,
            (p->>'scatter_arcsec')::float8, (p->>'flux_ratio')::float8,
            (p->>'flux_ratio_scatter')::float8, (p->>'n_ref_in_field')::int,
            (p->>'n_expected')::int, (p->>'n_expected_found')::int,
            (p->>'completeness')::float8, coalesce(p->'thresholds', '{}'), p_task)
    ON CONFLICT (image_path) DO UPDATE
       SET group_id = EXCLUDED.group_id, status = EXCLUDED.status, reason = EXCLUDED.reason,
           catalog = EXCLUDED.catalog, n_sources = EXCLUDED.n_sources,
           n_matches = EXCLUDED.n_matches, n_astrometry = EXCLUDED.n_astrometry,
           offset_ra_arcsec = EXCLUDED.offset_ra_arcsec,
           offset_dec_arcsec = EXCLUDED.offset_dec_arcsec, offset_arcsec = EXCLUDED.offset_arcsec,
           scatter_arcsec = EXCLUDED.scatter_arcsec, flux_ratio = EXCLUDED.flux_ratio,
           flux_ratio_scatter = EXCLUDED.flux_ratio_scatter,
           n_ref_in_field = EXCLUDED.n_ref_in_field, n_expected = EXCLUDED.n_expected,
           n_expected_found = EXCLUDED.n_expected_found, completeness = EXCLUDED.completeness,
           thresholds = EXCLUDED.thresholds, task_id = EXCLUDED.task_id, updated_at = now(),
           n_writes = v.n_writes + 1;
$$;

-- p: {image_path, matches: [{idx, ref_id, sep_arcsec}]}: the image's sources' ref_id set
-- from the matches, every other source's cleared.
CREATE FUNCTION products._upsert_crossmatch(p jsonb, p_task uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM products.catalogs c WHERE c.image_path = p->>'image_path') THEN
        RAISE EXCEPTION 'crossmatch of %: the image has no catalogue (run validation first)',
            p->>'image_path' USING ERRCODE = '23503';
    END IF;
    UPDATE products.sources s SET ref_id = NULL, ref_sep_arcsec = NULL
     WHERE s.image_path = p->>'image_path' AND s.ref_id IS NOT NULL;
    UPDATE products.sources s SET ref_id = e->>'ref_id', ref_sep_arcsec = (e->>'sep_arcsec')::float8
      FROM jsonb_array_elements(coalesce(p->'matches', '[]')) e
     WHERE s.image_path = p->>'image_path' AND s.idx = (e->>'idx')::int;
END $$;

-- p: {image_path, group_id, mjd, factor, factor_err, n_refs, normalized, points: [{ref_id,
-- ra_deg, dec_deg, peak_jy, rms_jy, pb, flux_jy, flux_err_jy, norm_flux_jy, norm_err_jy,
-- snr}]}: the image's points replaced, then the variability of every source it touched
-- (before or now) recomputed.
CREATE FUNCTION products._upsert_photometry(p jsonb, p_task uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    refs text[];
BEGIN
    SELECT array_agg(DISTINCT r) INTO refs FROM (
        SELECT ph.ref_id AS r FROM products.photometry ph WHERE ph.image_path = p->>'image_path'
        UNION
        SELECT e->>'ref_id' FROM jsonb_array_elements(coalesce(p->'points', '[]')) e) x;
    INSERT INTO products.photometry_images AS i
        (image_path, group_id, mjd, factor, factor_err, n_refs, normalized, n_points, task_id)
    VALUES (p->>'image_path', p->>'group_id', (p->>'mjd')::float8, (p->>'factor')::float8,
            (p->>'factor_err')::float8, (p->>'n_refs')::int, (p->>'normalized')::boolean,
            jsonb_array_length(coalesce(p->'points', '[]')), p_task)
    ON CONFLICT (image_path) DO UPDATE
       SET group_id = EXCLUDED.group_id, mjd = EXCLUDED.mjd, factor = EXCLUDED.factor,
           factor_err = EXCLUDED.factor_err, n_refs = EXCLUDED.n_refs,
           normalized = EXCLUDED.normalized, n_points = EXCLUDED.n_points,
           task_id = EXCLUDED.task_id, updated_at = now(), n_writes = i.n_writes + 1;
    DELETE FROM products.photometry ph WHERE ph.image_path = p->>'image_path';
    INSERT INTO products.photometry
        (ref_id, image_path, mjd, ra_deg, dec_deg, peak_jy, rms_jy, pb, flux_jy, flux_err_jy,
         norm_flux_jy, norm_err_jy, snr)
    SELECT e->>'ref_id', p->>'image_path', (p->>'mjd')::float8, (e->>'ra_deg')::float8,
           (e->>'dec_deg')::float8, (e->>'peak_jy')::float8, (e->>'rms_jy')::float8,
           (e->>'pb')::float8, (e->>'flux_jy')::float8, (e->>'flux_err_jy')::float8,
           (e->>'norm_flux_jy')::float8, (e->>'norm_err_jy')::float8, (e->>'snr')::float8
      FROM jsonb_array_elements(coalesce(p->'points', '[]')) e;
    -- Two engines committing images of one field at once: under READ COMMITTED each would
    -- recompute a source's statistics without the other's uncommitted points, and the last
    -- to write would lose the other's image. One transaction at a time per source instead:
    -- a lock per source, taken in sorted order (no deadlock) and held to commit, before the
    -- statement that recomputes (it starts after the other committed: it sees its points).
    PERFORM pg_advisory_xact_lock(hashtextextended('contimg.variability:' || x.r, 0))
       FROM (SELECT r FROM unnest(coalesce(refs, '{}')) r ORDER BY r) x;
    PERFORM products.refresh_variability(coalesce(refs, '{}'));
END $$;

CREATE OR REPLACE FUNCTION products.kinds() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['visibilities', 'images', 'mosaics', 'caltables', 'retention', 'catalogs',
                 'validations', 'crossmatches', 'photometry'];
$$;

CREATE OR REPLACE FUNCTION products._upsert(k text, p jsonb, p_task uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    CASE k
    WHEN 'visibilities' THEN PERFORM products._upsert_visibility(p, p_task);
    WHEN 'images' THEN PERFORM products._upsert_image(p, p_task);
    WHEN 'mosaics' THEN PERFORM products._upsert_mosaic(p, p_task);
    WHEN 'caltables' THEN PERFORM products._upsert_caltable(p, p_task);
    WHEN 'retention' THEN PERFORM products._retention(p);
    WHEN 'catalogs' THEN PERFORM products._upsert_catalog(p, p_task);
    WHEN 'validations' THEN PERFORM products._upsert_validation(p, p_task);
    WHEN 'crossmatches' THEN PERFORM products._upsert_crossmatch(p, p_task);
    WHEN 'photometry' THEN PERFORM products._upsert_photometry(p, p_task);
    ELSE RAISE EXCEPTION 'unknown product kind "%"', k USING ERRCODE = 'CT006';
    END CASE;
END $$;
