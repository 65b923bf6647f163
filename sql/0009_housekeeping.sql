-- 0009: housekeeping. Retention marks the products rows whose files it removed (expired_at,
-- expired_reason) and keeps them, so what was made stays known; a row whose file vanished
-- by other means is removed. The engine's housekeeping task (mpi/stages.c) asks
-- products.retention_plan what to look at, removes files itself (the database never
-- touches the products disk), and commits what it did as products of kind "retention"
-- through commit_task, in the task's one transaction.

ALTER TABLE products.visibilities ADD COLUMN expired_at timestamptz, ADD COLUMN expired_reason text;
ALTER TABLE products.images ADD COLUMN expired_at timestamptz, ADD COLUMN expired_reason text;
ALTER TABLE products.mosaics ADD COLUMN expired_at timestamptz, ADD COLUMN expired_reason text;
ALTER TABLE products.caltables ADD COLUMN expired_at timestamptz, ADD COLUMN expired_reason text;

-- What housekeeping looks at, as of now(): every row not yet expired, with its files and
-- whether retention says it is past its time (p_days: {"visibilities": d, "images": d}, 0 or
-- absent = kept for ever; mosaics and caltables are kept). A row an unfinished task still
-- reads (its inputs name the file) is never past its time: a backlog does not lose its
-- inputs. {"as_of", "rows": [{"kind", "key", "path", "updated_at", "expired"}]}; the
-- updated_at is the row's as read, so a row rewritten since is left alone at commit.
CREATE FUNCTION products.retention_plan(p_days jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH live AS (
        SELECT t.params->'inputs' AS inputs FROM absurd.tasks t
         WHERE t.status IN ('pending', 'claimed', 'retrying')
    ), d AS (
        SELECT coalesce((p_days->>'visibilities')::float8, 0) AS vis,
               coalesce((p_days->>'images')::float8, 0) AS img
    ), rows AS (
        SELECT 'visibilities' AS kind, v.group_id AS key, v.path, v.updated_at,
               d.vis > 0 AND v.updated_at < now() - make_interval(secs => d.vis * 86400)
               AND NOT EXISTS (SELECT 1 FROM live WHERE live.inputs->>'vis_path' = v.path)
                   AS expired
          FROM products.visibilities v, d WHERE v.expired_at IS NULL
        UNION ALL
        SELECT 'images', i.image_path, i.image_path, i.updated_at,
               d.img > 0 AND i.updated_at < now() - make_interval(secs => d.img * 86400)
               AND NOT EXISTS (SELECT 1 FROM live
                                WHERE coalesce(live.inputs->'images', '[]') ? i.image_path)
          FROM products.images i, d WHERE i.expired_at IS NULL
        UNION ALL
        SELECT 'mosaics', m.mosaic_id, m.path, m.updated_at, false
          FROM products.mosaics m WHERE m.expired_at IS NULL
        UNION ALL
        SELECT 'caltables', c.path, c.path, c.updated_at, false
          FROM products.caltables c WHERE c.expired_at IS NULL
    )
    SELECT jsonb_build_object(
        'as_of', extract(epoch FROM now()),
        'rows', coalesce(jsonb_agg(jsonb_build_object(
                    'kind', kind, 'key', key, 'path', path,
                    'updated_at', to_jsonb(updated_at), 'expired', expired)
                    ORDER BY kind, key), '[]'))
      FROM rows;
$$;

-- One thing housekeeping did, {"kind", "key", "updated_at", "action", "reason"}: "expire"
-- (its files removed by retention: the row marked) or "forget" (its file gone: the row
-- removed). Either only while the row is as the plan read it.
CREATE FUNCTION products._retention(p jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    k    text := p->>'kind';
    key  text := p->>'key';
    at   timestamptz := (p->>'updated_at')::timestamptz;
    col  text;
BEGIN
    col := CASE k WHEN 'visibilities' THEN 'group_id' WHEN 'images' THEN 'image_path'
                  WHEN 'mosaics' THEN 'mosaic_id' WHEN 'caltables' THEN 'path' END;
    IF col IS NULL OR key IS NULL OR at IS NULL THEN
        RAISE EXCEPTION 'retention entry needs kind, key and updated_at: %', p
            USING ERRCODE = 'CT006';
    END IF;
    IF p->>'action' = 'expire' THEN
        EXECUTE format('UPDATE products.%I SET expired_at = now(), expired_reason = $3 '
                       'WHERE %I = $1 AND updated_at = $2 AND expired_at IS NULL', k, col)
            USING key, at, coalesce(p->>'reason', 'retention');
    ELSIF p->>'action' = 'forget' THEN
        EXECUTE format('DELETE FROM products.%I WHERE %I = $1 AND updated_at = $2 '
                       'AND expired_at IS NULL', k, col)
            USING key, at;
    ELSE
        RAISE EXCEPTION 'retention action must be expire or forget: %', p
            USING ERRCODE = 'CT006';
    END IF;
END $$;

-- The kinds commit_task takes: the one list, beside products._upsert's cases.
CREATE FUNCTION products.kinds() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['visibilities', 'images', 'mosaics', 'caltables', 'retention'];
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
    ELSE RAISE EXCEPTION 'unknown product kind "%"', k USING ERRCODE = 'CT006';
    END CASE;
END $$;

-- commit_task as in 0004, its kinds now products.kinds().
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
        IF k <> ALL (products.kinds()) THEN
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
