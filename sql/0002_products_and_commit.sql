-- 0002: the products tables and the engine's one-transaction commit.
--
-- A product row is keyed by what it is, never by who made it: a
-- visibility file by its observation group, an image by its path. A task
-- that is run twice (a crash after the files were renamed but before the
-- commit, a retry) therefore upserts the same rows, and n_writes says how
-- often that happened.

CREATE SCHEMA IF NOT EXISTS products;

-- One combined observation (the seed's "ms_index"): 16 subbands in one file.
CREATE TABLE products.visibilities (
    group_id         text PRIMARY KEY CHECK (group_id ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$'),
    path             text NOT NULL UNIQUE,
    n_subbands       integer,
    nblts            integer,
    nfreqs           integer,
    npols            integer,
    n_samples        bigint,
    fraction_flagged double precision,
    qa_passed        boolean NOT NULL,
    qa               jsonb NOT NULL DEFAULT '{}',
    task_id          uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    n_writes         integer NOT NULL DEFAULT 1
);

-- One restored image (its primary-beam-corrected twin is pb_path).
CREATE TABLE products.images (
    image_path        text PRIMARY KEY,
    group_id          text NOT NULL,
    vis_path          text,
    pb_path           text,
    nx                integer,
    ny                integer,
    cell_arcsec       double precision,
    ra_deg            double precision,
    dec_deg           double precision,
    freq_hz           double precision,
    bandwidth_hz      double precision,
    date_obs          text,
    n_vis             bigint,
    rms_jy            double precision,
    peak_jy           double precision,
    dynamic_range     double precision,
    beam_major_arcsec double precision,
    beam_minor_arcsec double precision,
    beam_pa_deg       double precision,
    n_components      integer,
    qa_passed         boolean NOT NULL,
    qa                jsonb NOT NULL DEFAULT '{}',
    task_id           uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    n_writes          integer NOT NULL DEFAULT 1
);
CREATE INDEX images_group_idx ON products.images (group_id);

-- Room for the calibration and mosaic stages: the keys they will upsert on.
CREATE TABLE products.caltables (
    path       text PRIMARY KEY,
    group_id   text NOT NULL,
    kind       text NOT NULL,
    qa         jsonb NOT NULL DEFAULT '{}',
    task_id    uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    n_writes   integer NOT NULL DEFAULT 1
);

CREATE TABLE products.mosaics (
    mosaic_id  text PRIMARY KEY,
    path       text NOT NULL,
    tier       text,
    n_images   integer,
    start_time timestamptz,
    end_time   timestamptz,
    noise_jy   double precision,
    method     text,
    tiles      jsonb NOT NULL DEFAULT '[]',
    task_id    uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    n_writes   integer NOT NULL DEFAULT 1
);

CREATE FUNCTION products._upsert_visibility(p jsonb, p_task uuid) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO products.visibilities AS v
        (group_id, path, n_subbands, nblts, nfreqs, npols, n_samples, fraction_flagged,
         qa_passed, qa, task_id)
    VALUES (p->>'group_id', p->>'path', (p->>'n_subbands')::int, (p->>'nblts')::int,
            (p->>'nfreqs')::int, (p->>'npols')::int, (p->>'n_samples')::bigint,
            (p->>'fraction_flagged')::float8, (p->>'qa_passed')::boolean,
            coalesce(p->'qa', '{}'), p_task)
    ON CONFLICT (group_id) DO UPDATE
       SET path = EXCLUDED.path, n_subbands = EXCLUDED.n_subbands, nblts = EXCLUDED.nblts,
           nfreqs = EXCLUDED.nfreqs, npols = EXCLUDED.npols, n_samples = EXCLUDED.n_samples,
           fraction_flagged = EXCLUDED.fraction_flagged, qa_passed = EXCLUDED.qa_passed,
           qa = EXCLUDED.qa, task_id = EXCLUDED.task_id, updated_at = now(),
           n_writes = v.n_writes + 1;
$$;

CREATE FUNCTION products._upsert_image(p jsonb, p_task uuid) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO products.images AS i
        (image_path, group_id, vis_path, pb_path, nx, ny, cell_arcsec, ra_deg, dec_deg, freq_hz,
         bandwidth_hz, date_obs, n_vis, rms_jy, peak_jy, dynamic_range, beam_major_arcsec,
         beam_minor_arcsec, beam_pa_deg, n_components, qa_passed, qa, task_id)
    VALUES (p->>'image_path', p->>'group_id', p->>'vis_path', p->>'pb_path', (p->>'nx')::int,
            (p->>'ny')::int, (p->>'cell_arcsec')::float8, (p->>'ra_deg')::float8,
            (p->>'dec_deg')::float8, (p->>'freq_hz')::float8, (p->>'bandwidth_hz')::float8,
            p->>'date_obs', (p->>'n_vis')::bigint, (p->>'rms_jy')::float8,
            (p->>'peak_jy')::float8, (p->>'dynamic_range')::float8,
            (p->>'beam_major_arcsec')::float8, (p->>'beam_minor_arcsec')::float8,
            (p->>'beam_pa_deg')::float8, (p->>'n_components')::int, (p->>'qa_passed')::boolean,
            coalesce(p->'qa', '{}'), p_task)
    ON CONFLICT (image_path) DO UPDATE
       SET group_id = EXCLUDED.group_id, vis_path = EXCLUDED.vis_path,
           pb_path = EXCLUDED.pb_path, nx = EXCLUDED.nx, ny = EXCLUDED.ny,
           cell_arcsec = EXCLUDED.cell_arcsec, ra_deg = EXCLUDED.ra_deg,
           dec_deg = EXCLUDED.dec_deg, freq_hz = EXCLUDED.freq_hz,
           bandwidth_hz = EXCLUDED.bandwidth_hz, date_obs = EXCLUDED.date_obs,
           n_vis = EXCLUDED.n_vis, rms_jy = EXCLUDED.rms_jy, peak_jy = EXCLUDED.peak_jy,
           dynamic_range = EXCLUDED.dynamic_range,
           beam_major_arcsec = EXCLUDED.beam_major_arcsec,
           beam_minor_arcsec = EXCLUDED.beam_minor_arcsec, beam_pa_deg = EXCLUDED.beam_pa_deg,
           n_components = EXCLUDED.n_components, qa_passed = EXCLUDED.qa_passed,
           qa = EXCLUDED.qa, task_id = EXCLUDED.task_id, updated_at = now(),
           n_writes = i.n_writes + 1;
$$;

-- Completes a task, upserts the products it made and spawns the next tasks
-- of its chain, all in the caller's one transaction (a function call is
-- one): either every effect is there or none is.
--
-- p_products: {"visibilities": [row, ...], "images": [row, ...]} (either
-- key optional). p_spawns: [{"queue", "name", "params", "priority",
-- "max_retries", "timeout_sec", "idempotency_key", "depends_on",
-- "workflow_id", "backoff_base_sec", "backoff_max_sec"}, ...] with only
-- "name" required; the queue defaults to the task's origin queue.
--
-- p_allow_expired: accept a lease that ran out as long as the claim token
-- still matches (nobody reaped or re-claimed the task). The engine replays
-- its journal this way after a database outage: the work is done, and
-- redoing it would be the only alternative.
--
-- Returns the spawned tasks: {"spawned": [{"name", "task_id", "created"}]}.
CREATE FUNCTION absurd.commit_task(p_task_id uuid, p_token uuid, p_result jsonb,
                                   p_products jsonb DEFAULT '{}', p_spawns jsonb DEFAULT '[]',
                                   p_allow_expired boolean DEFAULT false)
RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v       absurd.tasks;
    p       jsonb;
    k       text;
    s       jsonb;
    sp      record;
    spawned jsonb := '[]';
BEGIN
    p_products := coalesce(p_products, '{}');
    p_spawns := coalesce(p_spawns, '[]');
    IF jsonb_typeof(p_products) <> 'object' OR jsonb_typeof(p_spawns) <> 'array' THEN
        RAISE EXCEPTION 'products must be an object and spawns an array' USING ERRCODE = 'CT006';
    END IF;
    FOR k IN SELECT jsonb_object_keys(p_products) LOOP
        IF k NOT IN ('visibilities', 'images') THEN
            RAISE EXCEPTION 'unknown product kind "%"', k USING ERRCODE = 'CT006';
        END IF;
    END LOOP;

    v := absurd._lock_task(p_task_id);
    IF p_allow_expired AND v.status = 'claimed' AND v.claim_token = p_token
       AND v.lease_expires_at < now() THEN
        -- Still ours: extend the lease just long enough to complete it.
        UPDATE absurd.tasks t SET lease_expires_at = now() + interval '1 minute'
         WHERE t.task_id = p_task_id;
    END IF;
    PERFORM absurd.complete_task(p_task_id, p_token, p_result);

    FOR p IN SELECT * FROM jsonb_array_elements(coalesce(p_products->'visibilities', '[]')) LOOP
        PERFORM products._upsert_visibility(p, p_task_id);
    END LOOP;
    FOR p IN SELECT * FROM jsonb_array_elements(coalesce(p_products->'images', '[]')) LOOP
        PERFORM products._upsert_image(p, p_task_id);
    END LOOP;

    FOR s IN SELECT * FROM jsonb_array_elements(p_spawns) LOOP
        SELECT * INTO sp FROM absurd.spawn_task(
            coalesce(s->>'queue', v.origin_queue),
            s->>'name',
            coalesce(s->'params', '{}'),
            coalesce((s->>'priority')::int, v.priority),
            coalesce((s->>'max_retries')::int, v.max_retries),
            coalesce((s->>'timeout_sec')::int, v.timeout_sec),
            s->>'idempotency_key',
            coalesce(ARRAY(SELECT jsonb_array_elements_text(s->'depends_on'))::uuid[], '{}'),
            coalesce((s->>'workflow_id')::uuid, v.workflow_id),
            0,
            coalesce((s->>'backoff_base_sec')::float8, v.backoff_base_sec),
            coalesce((s->>'backoff_max_sec')::float8, v.backoff_max_sec));
        spawned := spawned || jsonb_build_object('name', s->>'name', 'task_id', sp.task_id,
                                                 'created', sp.created);
    END LOOP;
    RETURN jsonb_build_object('spawned', spawned);
END $$;

-- What a draining engine still has to wait for: runnable or backing-off
-- tasks of the kinds it works (not counting those blocked on a task of a
-- kind it does not work), and when the next of them becomes available.
CREATE FUNCTION absurd.outstanding(p_queue text, p_task_names text[] DEFAULT NULL)
RETURNS TABLE (n_outstanding bigint, next_available_sec double precision)
LANGUAGE sql STABLE AS $$
    SELECT count(*),
           greatest(0, extract(epoch FROM min(t.available_at) - now()))::float8
      FROM absurd.tasks t
     WHERE t.queue_name = p_queue AND t.status IN ('pending', 'retrying')
       AND (p_task_names IS NULL OR t.task_name = ANY (p_task_names))
       -- A task waiting on one that nobody here works would be waited for forever.
       AND NOT EXISTS (SELECT 1 FROM absurd.tasks d
                        WHERE t.depends_on <> '{}' AND d.task_id = ANY (t.depends_on)
                          AND d.status <> 'completed'
                          AND (d.status NOT IN ('pending', 'retrying', 'claimed')
                               OR (p_task_names IS NOT NULL
                                   AND NOT d.task_name = ANY (p_task_names))));
$$;
