-- 0003: mosaics -- the planner over products.images, the products.mosaics row,
-- and create-mosaic tasks spawned by a chain once a mosaic's images are all in.

ALTER TABLE products.mosaics
    ADD COLUMN nx           integer,
    ADD COLUMN ny           integer,
    ADD COLUMN ra_deg       double precision,
    ADD COLUMN dec_deg      double precision,
    ADD COLUMN cell_arcsec  double precision,
    ADD COLUMN freq_hz      double precision,
    ADD COLUMN noise_path   text,
    ADD COLUMN weight_path  text,
    ADD COLUMN noise_min_jy double precision,
    ADD COLUMN groups       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN images       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN qa           jsonb NOT NULL DEFAULT '{}';

-- The most images a mosaic of each tier may combine.
CREATE FUNCTION products.mosaic_tier_max(p_tier text) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_tier WHEN 'quicklook' THEN 10 WHEN 'science' THEN 100 WHEN 'deep' THEN 1000 END
$$;

-- The planner. The registered images that passed QA, one per observation
-- group (the latest written), in time order (group ids are UTC timestamps),
-- are cut into windows of p_per_mosaic images (default: the tier's most) of
-- which neighbours share p_overlap. A window is complete once it holds all its
-- images; the last windows fill up as observations arrive. The mosaic id names
-- the tier and the first and last group, so a complete window keeps its id.
--
-- With p_queue, only the images before the horizon are planned: the earliest
-- group of p_queue whose conversion or imaging is still to settle (pending,
-- claimed, retrying). Images committed out of order -- ranks finish groups in
-- any order -- therefore wait until the groups before them are in, and no
-- window is made with a gap that a late image would have filled.
CREATE FUNCTION products.plan_mosaics(p_tier text DEFAULT 'quicklook',
                                      p_per_mosaic integer DEFAULT NULL,
                                      p_overlap integer DEFAULT 2,
                                      p_queue text DEFAULT NULL)
RETURNS TABLE (mosaic_id text, tier text, window_index integer, n_images integer,
               complete boolean, first_group text, last_group text, groups text[],
               images text[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_max    integer := products.mosaic_tier_max(p_tier);
    v_n      integer;
    v_stride integer;
BEGIN
    IF v_max IS NULL THEN
        RAISE EXCEPTION 'unknown mosaic tier "%" (quicklook, science or deep)', p_tier
            USING ERRCODE = 'CT006';
    END IF;
    v_n := coalesce(p_per_mosaic, v_max);
    IF v_n < 2 OR v_n > v_max THEN
        RAISE EXCEPTION 'a % mosaic combines 2..% images, not %', p_tier, v_max, v_n
            USING ERRCODE = 'CT006';
    END IF;
    IF p_overlap IS NULL OR p_overlap < 0 OR p_overlap >= v_n THEN
        RAISE EXCEPTION 'overlap % must be 0..% for % images per mosaic', p_overlap, v_n - 1, v_n
            USING ERRCODE = 'CT006';
    END IF;
    v_stride := v_n - p_overlap;
    RETURN QUERY
    WITH horizon AS (
        SELECT min(t.params->'inputs'->>'group_id') AS g
          FROM absurd.tasks t
         WHERE p_queue IS NOT NULL AND t.queue_name = p_queue
           AND t.status IN ('pending', 'claimed', 'retrying')
           AND t.task_name IN ('convert-uvh5-to-ms', 'imaging')),
    img AS (
        SELECT DISTINCT ON (i.group_id) i.group_id, i.image_path
          FROM products.images i
         WHERE i.qa_passed
           AND i.group_id < coalesce((SELECT g FROM horizon), 'infinity')
         ORDER BY i.group_id, i.updated_at DESC, i.image_path),
    seq AS (
        SELECT g.group_id, g.image_path, (row_number() OVER (ORDER BY g.group_id) - 1)::int AS k
          FROM img g),
    win AS (
        SELECT w::int AS w
          FROM generate_series(0, ((SELECT count(*) FROM seq)::int - 1) / v_stride) w)
    SELECT format('%s_%s_%s', p_tier, min(s.group_id), max(s.group_id)), p_tier, win.w,
           count(*)::int, count(*) = v_n, min(s.group_id), max(s.group_id),
           array_agg(s.group_id ORDER BY s.k), array_agg(s.image_path ORDER BY s.k)
      FROM win JOIN seq s ON s.k BETWEEN win.w * v_stride AND win.w * v_stride + v_n - 1
     GROUP BY win.w
     ORDER BY win.w;
END $$;

-- Spawns a create-mosaic task for every complete planned window of p_queue
-- that has none yet, keyed by the mosaic id: asking twice spawns nothing new
-- (p_only_groups, when given, narrows it to windows holding one of them). p_spec: {"name" (default create-mosaic),
-- "mosaic": {"tier", "per_mosaic", "overlap", "out_dir"}, "params":
-- {"chain", "config"}, "priority", "max_retries", "timeout_sec",
-- "workflow_id", "backoff_base_sec", "backoff_max_sec"}. The planner runs
-- under a transaction-scoped advisory lock: two imaging tasks committing the
-- last two images of a window at once cannot both miss it (the second to
-- take the lock sees the first's image).
CREATE FUNCTION absurd.spawn_mosaics(p_queue text, p_spec jsonb, p_only_groups text[] DEFAULT NULL)
RETURNS TABLE (mosaic_id text, task_id uuid, created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    m   jsonb := coalesce(p_spec->'mosaic', '{}');
    pm  record;
    sp  record;
BEGIN
    IF coalesce(m->>'out_dir', '') !~ '^/' THEN
        RAISE EXCEPTION 'a mosaic spawn needs an absolute out_dir' USING ERRCODE = 'CT006';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('contimg.mosaic-planner'));
    FOR pm IN SELECT * FROM products.plan_mosaics(coalesce(m->>'tier', 'quicklook'),
                                                  (m->>'per_mosaic')::int,
                                                  coalesce((m->>'overlap')::int, 2), p_queue) pl
               WHERE pl.complete AND (p_only_groups IS NULL OR pl.groups && p_only_groups)
                 AND NOT EXISTS (SELECT 1 FROM absurd.tasks x
                                  WHERE x.origin_queue = p_queue
                                    AND x.idempotency_key = pl.mosaic_id) LOOP
        SELECT * INTO sp FROM absurd.spawn_task(
            p_queue,
            coalesce(p_spec->>'name', 'create-mosaic'),
            jsonb_build_object(
                'chain', p_spec->'params'->'chain',
                'config', coalesce(p_spec->'params'->'config', '{}'),
                'inputs', jsonb_build_object('mosaic_id', pm.mosaic_id, 'tier', pm.tier,
                                             'groups', to_jsonb(pm.groups),
                                             'images', to_jsonb(pm.images)),
                'outputs', jsonb_build_object('prefix',
                                              rtrim(m->>'out_dir', '/') || '/' || pm.mosaic_id)),
            coalesce((p_spec->>'priority')::int, 0),
            coalesce((p_spec->>'max_retries')::int, 3),
            coalesce((p_spec->>'timeout_sec')::int, 3600),
            pm.mosaic_id,
            '{}',
            (p_spec->>'workflow_id')::uuid,
            0,
            coalesce((p_spec->>'backoff_base_sec')::float8, 10),
            coalesce((p_spec->>'backoff_max_sec')::float8, 900));
        mosaic_id := pm.mosaic_id;
        task_id := sp.task_id;
        created := sp.created;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION products._upsert_mosaic(p jsonb, p_task uuid) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO products.mosaics AS x
        (mosaic_id, path, tier, n_images, start_time, end_time, noise_jy, method, tiles, nx, ny,
         ra_deg, dec_deg, cell_arcsec, freq_hz, noise_path, weight_path, noise_min_jy, groups,
         images, qa, task_id)
    VALUES (p->>'mosaic_id', p->>'path', p->>'tier', (p->>'n_images')::int,
            nullif(p->>'start_time', '')::timestamp AT TIME ZONE 'UTC',
            nullif(p->>'end_time', '')::timestamp AT TIME ZONE 'UTC',
            (p->>'noise_jy')::float8, p->>'method', coalesce(p->'tiles', '[]'),
            (p->>'nx')::int, (p->>'ny')::int, (p->>'ra_deg')::float8, (p->>'dec_deg')::float8,
            (p->>'cell_arcsec')::float8, (p->>'freq_hz')::float8, p->>'noise_path',
            p->>'weight_path', (p->>'noise_min_jy')::float8,
            coalesce(ARRAY(SELECT jsonb_array_elements_text(p->'groups')), '{}'),
            coalesce(ARRAY(SELECT jsonb_array_elements_text(p->'images')), '{}'),
            coalesce(p->'qa', '{}'), p_task)
    ON CONFLICT (mosaic_id) DO UPDATE
       SET path = EXCLUDED.path, tier = EXCLUDED.tier, n_images = EXCLUDED.n_images,
           start_time = EXCLUDED.start_time, end_time = EXCLUDED.end_time,
           noise_jy = EXCLUDED.noise_jy, method = EXCLUDED.method, tiles = EXCLUDED.tiles,
           nx = EXCLUDED.nx, ny = EXCLUDED.ny, ra_deg = EXCLUDED.ra_deg,
           dec_deg = EXCLUDED.dec_deg, cell_arcsec = EXCLUDED.cell_arcsec,
           freq_hz = EXCLUDED.freq_hz, noise_path = EXCLUDED.noise_path,
           weight_path = EXCLUDED.weight_path, noise_min_jy = EXCLUDED.noise_min_jy,
           groups = EXCLUDED.groups, images = EXCLUDED.images, qa = EXCLUDED.qa,
           task_id = EXCLUDED.task_id, updated_at = now(), n_writes = x.n_writes + 1;
$$;

-- commit_task as in 0002, now also taking mosaics rows, and spawn entries
-- with a "mosaic" key: those go through absurd.spawn_mosaics, which spawns
-- every complete window that has no task yet (the new image may complete one
-- of its own windows, or lift the horizon off windows completed earlier).
CREATE OR REPLACE FUNCTION absurd.commit_task(p_task_id uuid, p_token uuid, p_result jsonb,
                                              p_products jsonb DEFAULT '{}',
                                              p_spawns jsonb DEFAULT '[]',
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
        IF k NOT IN ('visibilities', 'images', 'mosaics') THEN
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
    FOR p IN SELECT * FROM jsonb_array_elements(coalesce(p_products->'mosaics', '[]')) LOOP
        PERFORM products._upsert_mosaic(p, p_task_id);
    END LOOP;

    FOR s IN SELECT * FROM jsonb_array_elements(p_spawns) LOOP
        IF s ? 'mosaic' THEN
            -- The task's own settings, unless the entry says otherwise.
            s := jsonb_build_object('priority', v.priority, 'max_retries', v.max_retries,
                                    'timeout_sec', v.timeout_sec, 'workflow_id', v.workflow_id,
                                    'backoff_base_sec', v.backoff_base_sec,
                                    'backoff_max_sec', v.backoff_max_sec) || s;
            FOR sp IN SELECT * FROM absurd.spawn_mosaics(coalesce(s->>'queue', v.origin_queue),
                                                         s) LOOP
                spawned := spawned || jsonb_build_object('name', coalesce(s->>'name',
                                                                          'create-mosaic'),
                                                         'task_id', sp.task_id,
                                                         'created', sp.created,
                                                         'mosaic_id', sp.mosaic_id);
            END LOOP;
            CONTINUE;
        END IF;
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
