-- 0004: the caltables registry (docs/calibration.md). Each caltable with the
-- calibrator observation it was solved on, the time its solutions hold until,
-- and its status; the fallback chain that picks the caltable for an
-- observation; and commit_task taking caltables rows like the other products.

ALTER TABLE products.caltables
    ADD COLUMN source      text,
    ADD COLUMN obs_start   timestamptz,
    ADD COLUMN obs_end     timestamptz,
    ADD COLUMN valid_until timestamptz,
    ADD COLUMN status      text NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'retired')),
    ADD CONSTRAINT caltables_window CHECK (obs_start IS NULL OR obs_end IS NULL OR
                                           (obs_start <= obs_end AND
                                            (valid_until IS NULL OR valid_until >= obs_end)));
CREATE INDEX caltables_obs_end ON products.caltables (obs_end);

CREATE FUNCTION products._upsert_caltable(p jsonb, p_task uuid) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO products.caltables AS x
        (path, group_id, kind, qa, source, obs_start, obs_end, valid_until, status, task_id)
    VALUES (p->>'path', p->>'group_id', coalesce(p->>'kind', 'bandpass'), coalesce(p->'qa', '{}'),
            p->>'source', (p->>'obs_start')::timestamptz, (p->>'obs_end')::timestamptz,
            (p->>'valid_until')::timestamptz, coalesce(p->>'status', 'active'), p_task)
    ON CONFLICT (path) DO UPDATE
       SET group_id = EXCLUDED.group_id, kind = EXCLUDED.kind, qa = EXCLUDED.qa,
           source = EXCLUDED.source, obs_start = EXCLUDED.obs_start, obs_end = EXCLUDED.obs_end,
           valid_until = EXCLUDED.valid_until, status = EXCLUDED.status,
           task_id = EXCLUDED.task_id, updated_at = now(), n_writes = x.n_writes + 1;
$$;

-- One products row of kind k: the one place a new kind is added (commit_task
-- below calls it for every kind it accepts).
CREATE FUNCTION products._upsert(k text, p jsonb, p_task uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    CASE k
    WHEN 'visibilities' THEN PERFORM products._upsert_visibility(p, p_task);
    WHEN 'images' THEN PERFORM products._upsert_image(p, p_task);
    WHEN 'mosaics' THEN PERFORM products._upsert_mosaic(p, p_task);
    WHEN 'caltables' THEN PERFORM products._upsert_caltable(p, p_task);
    ELSE RAISE EXCEPTION 'unknown product kind "%"', k USING ERRCODE = 'CT006';
    END CASE;
END $$;

-- A caltable solved outside a task (contimg calibrate solve --register): the
-- same upsert on its path; returns the row.
CREATE FUNCTION products.register_caltable(p jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    IF jsonb_typeof(p) <> 'object' OR coalesce(p->>'path', '') = '' OR
       coalesce(p->>'group_id', '') = '' OR p->>'obs_start' IS NULL OR p->>'obs_end' IS NULL OR
       p->>'valid_until' IS NULL THEN
        RAISE EXCEPTION 'a caltable needs path, group_id, obs_start, obs_end and valid_until'
            USING ERRCODE = 'CT006';
    END IF;
    PERFORM products._upsert_caltable(p, NULL);
    RETURN (SELECT row_to_json(c)::jsonb FROM products.caltables c WHERE c.path = p->>'path');
END $$;

-- The fallback chain for an observation at p_time: the caltable to apply and
-- the rung that chose it, or NULL when there is none.
--   active   the observation lies in a caltable's window [obs_start, valid_until]
--            (the newest such);
--   nearest  the calibrator observation nearest in time, within p_stale_hours on
--            either side (CONTIMG_CALIBRATOR_STALENESS_HOURS, default 6);
--   stale    the newest calibrator observation before p_time, however old, with a
--            warning saying how old.
-- Retired caltables are never chosen. age_hours is p_time less the calibrator
-- observation's middle.
CREATE FUNCTION products.find_caltable(p_time timestamptz, p_stale_hours float8 DEFAULT 6)
RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r    products.caltables;
    rung text;
    age  float8;
BEGIN
    IF p_time IS NULL OR p_stale_hours IS NULL OR p_stale_hours < 0 THEN
        RAISE EXCEPTION 'find_caltable needs a time and a staleness of 0 hours or more'
            USING ERRCODE = 'CT006';
    END IF;
    SELECT * INTO r FROM products.caltables c
     WHERE c.status = 'active' AND p_time BETWEEN c.obs_start AND c.valid_until
     ORDER BY c.obs_end DESC, c.path LIMIT 1;
    rung := 'active';
    IF NOT FOUND THEN
        SELECT * INTO r FROM products.caltables c
         WHERE c.status = 'active' AND c.obs_start IS NOT NULL AND
               abs(extract(epoch FROM p_time - (c.obs_start + (c.obs_end - c.obs_start) / 2)))
                   <= p_stale_hours * 3600
         ORDER BY abs(extract(epoch FROM p_time - (c.obs_start + (c.obs_end - c.obs_start) / 2))),
                  c.obs_end DESC, c.path
         LIMIT 1;
        rung := 'nearest';
    END IF;
    IF NOT FOUND THEN
        SELECT * INTO r FROM products.caltables c
         WHERE c.status = 'active' AND c.obs_end <= p_time
         ORDER BY c.obs_end DESC, c.path LIMIT 1;
        rung := 'stale';
    END IF;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    age := extract(epoch FROM p_time - (r.obs_start + (r.obs_end - r.obs_start) / 2)) / 3600;
    RETURN jsonb_build_object(
        'path', r.path, 'rung', rung, 'age_hours', age, 'source', r.source,
        'group_id', r.group_id, 'obs_start', r.obs_start, 'obs_end', r.obs_end,
        'valid_until', r.valid_until,
        'warning', CASE WHEN rung = 'stale'
                        THEN format('the newest solutions are %s h old (staleness limit %s h)',
                                    round(age::numeric, 1), p_stale_hours)
                   END);
END $$;

-- commit_task as in 0003, its products rows now through products._upsert, which
-- knows every kind (caltables added).
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
        IF k NOT IN ('visibilities', 'images', 'mosaics', 'caltables') THEN
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

    FOR k IN SELECT jsonb_object_keys(p_products) LOOP
        FOR p IN SELECT * FROM jsonb_array_elements(coalesce(p_products->k, '[]')) LOOP
            PERFORM products._upsert(k, p, p_task_id);
        END LOOP;
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
