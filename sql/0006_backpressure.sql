-- 0006: backpressure. A queue holds at most max_pending tasks waiting to be claimed
-- (pending or retrying; the seed's API backlog, 1000 by default; 0: no limit). A spawn
-- from outside (the queue client's cq_spawn and cq_spawn_many: the command line, ingest,
-- the HTTP API) that would pass it is refused with SQLSTATE CT007, "queue full", and
-- nothing is written; spawns the pipeline makes itself (the next step of a chain in
-- commit_task, the mosaic planner's) are work already admitted and always go in.

ALTER TABLE absurd.queues
    ADD COLUMN max_pending integer NOT NULL DEFAULT 1000 CHECK (max_pending >= 0);

-- Sets a queue's limit (0: none); returns it.
CREATE FUNCTION absurd.set_max_pending(p_queue text, p_max integer) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM absurd._require_queue(p_queue);
    IF p_max IS NULL OR p_max < 0 THEN
        RAISE EXCEPTION 'max pending must be >= 0 (0: no limit), got %', p_max
            USING ERRCODE = 'CT006';
    END IF;
    UPDATE absurd.queues SET max_pending = p_max WHERE queue_name = p_queue;
    RETURN p_max;
END $$;

-- The waiting tasks of a queue, counted up to p_most (the count is all the check needs).
CREATE FUNCTION absurd._waiting(p_queue text, p_most bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM (SELECT 1 FROM absurd.tasks t
                           WHERE t.queue_name = p_queue AND t.status IN ('pending', 'retrying')
                           LIMIT p_most) w
$$;

-- spawn_task behind the limit, exactly: racing clients cannot pass it between them, and
-- they do not take turns until it is near. Every admitted spawn holds a transaction-level
-- advisory lock on the queue until it commits: shared while the queue is far from its
-- limit (the waiting tasks plus twice max_connections -- every spawn that could be in
-- flight at once -- still below it), exclusive near it. An exclusive holder waits for the
-- shared ones in flight to commit and counts after them, so its count is exact; a shared
-- holder counts again once it has its lock, and a queue that came near meanwhile makes it
-- a serialization failure (SQLSTATE 40001), which the queue client retries, now on the
-- exclusive path. A key already taken is no new task and passes (spawn_task answers with
-- the task it names).
CREATE FUNCTION absurd.spawn_task_admitted(
    p_queue            text,
    p_task_name        text,
    p_params           jsonb            DEFAULT '{}',
    p_priority         integer          DEFAULT 0,
    p_max_retries      integer          DEFAULT 3,
    p_timeout_sec      integer          DEFAULT 3600,
    p_idempotency_key  text             DEFAULT NULL,
    p_depends_on       uuid[]           DEFAULT '{}',
    p_workflow_id      uuid             DEFAULT NULL,
    p_delay_sec        double precision DEFAULT 0,
    p_backoff_base_sec double precision DEFAULT 10,
    p_backoff_max_sec  double precision DEFAULT 900)
RETURNS TABLE (task_id uuid, created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_max    integer;
    v_margin bigint := 2 * current_setting('max_connections')::bigint;
    v_key    bigint := hashtext('absurd.admit:' || p_queue);
    v_n      bigint;
BEGIN
    SELECT q.max_pending INTO v_max FROM absurd.queues q WHERE q.queue_name = p_queue;
    IF v_max > 0 AND position('|' || p_queue || '|' IN
                             coalesce(current_setting('absurd.admitted', true), '')) > 0 THEN
        v_max := 0; /* the transaction's batch was admitted whole (admit_batch) */
    END IF;
    IF v_max > 0 AND NOT (p_idempotency_key IS NOT NULL AND EXISTS (
           SELECT 1 FROM absurd.tasks t
            WHERE t.origin_queue = p_queue AND t.idempotency_key = p_idempotency_key)) THEN
        IF absurd._waiting(p_queue, v_max) + v_margin < v_max THEN
            PERFORM pg_advisory_xact_lock_shared(v_key);
            IF absurd._waiting(p_queue, v_max) + v_margin >= v_max THEN
                RAISE EXCEPTION 'queue % came near its limit during the spawn; retry', p_queue
                    USING ERRCODE = '40001';
            END IF;
        ELSE
            PERFORM pg_advisory_xact_lock(v_key);
            v_n := absurd._waiting(p_queue, v_max);
            IF v_n >= v_max THEN
                RAISE EXCEPTION 'queue % is full: % tasks wait to be claimed, its limit is % '
                                '(contimg queue limit); try again once the engine has claimed some',
                                p_queue, v_n, v_max USING ERRCODE = 'CT007';
            END IF;
        END IF;
    END IF;
    RETURN QUERY SELECT * FROM absurd.spawn_task(
        p_queue, p_task_name, p_params, p_priority, p_max_retries, p_timeout_sec,
        p_idempotency_key, p_depends_on, p_workflow_id, p_delay_sec, p_backoff_base_sec,
        p_backoff_max_sec);
END $$;

-- A batch of p_n spawns into p_queue in one transaction (cq_spawn_many, a workflow): the
-- margin above assumes a transaction adds one task at a time, so a batch takes the
-- exclusive lock once, up front, and is admitted whole -- its spawns then skip the check
-- -- or refused whole (CT007) when p_n more would pass the limit. A batch's tasks whose
-- idempotency keys are taken count too: it may be refused where it would just fit.
CREATE FUNCTION absurd.admit_batch(p_queue text, p_n bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_max integer;
    v_n   bigint;
BEGIN
    PERFORM absurd._require_queue(p_queue);
    SELECT q.max_pending INTO v_max FROM absurd.queues q WHERE q.queue_name = p_queue;
    IF v_max = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('absurd.admit:' || p_queue));
    v_n := absurd._waiting(p_queue, v_max);
    IF v_n + p_n > v_max THEN
        RAISE EXCEPTION 'queue % is full: % tasks wait to be claimed, % more would pass its '
                        'limit of % (contimg queue limit); nothing spawned',
                        p_queue, v_n, p_n, v_max USING ERRCODE = 'CT007';
    END IF;
    PERFORM set_config('absurd.admitted',
                       coalesce(current_setting('absurd.admitted', true), '') || '|' || p_queue ||
                       '|', true);
END $$;
