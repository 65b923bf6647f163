-- 0001: the ABSURD task queue.
--
-- PostgreSQL is the only truth about tasks. Every transition is one stored
-- function, so the rules below hold for every client (the C library, psql,
-- an operator's ad-hoc script) and cannot be bypassed by a buggy worker.
--
-- Errors raised here carry SQLSTATEs in class CT so clients can tell them
-- apart without parsing messages:
--   CT001 task not found          CT004 transition not allowed from this state
--   CT002 lease expired           CT005 unknown queue
--   CT003 not the lease holder    CT006 invalid argument

CREATE SCHEMA IF NOT EXISTS absurd;

-- Queues are registered, so a typo in a queue name is an error rather than
-- a task nobody will ever claim. Each work queue has a dead-letter queue.
CREATE TABLE absurd.queues (
    queue_name  text PRIMARY KEY
                CHECK (queue_name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$'),
    dlq_name    text REFERENCES absurd.queues (queue_name),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE absurd.tasks (
    task_id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Creation order. created_at is the transaction's time, shared by every
    -- task of a batch spawn, and task_id is random: seq orders claims so a
    -- batch is worked in the order it was spawned and rows stay close on disk.
    seq                bigint GENERATED ALWAYS AS IDENTITY,
    queue_name         text NOT NULL REFERENCES absurd.queues (queue_name),
    -- The queue the task was spawned into; queue_name moves to the DLQ on
    -- dead-lettering and back on a manual retry. Idempotency keys are
    -- scoped by origin so a dead-lettered task still deduplicates.
    origin_queue       text NOT NULL REFERENCES absurd.queues (queue_name),
    task_name          text NOT NULL
                       CHECK (task_name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$'),
    params             jsonb NOT NULL DEFAULT '{}'
                       CHECK (jsonb_typeof(params) = 'object'),
    priority           integer NOT NULL DEFAULT 0
                       CHECK (priority BETWEEN 0 AND 1000000),
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'claimed', 'completed', 'failed',
                                         'cancelled', 'retrying')),
    worker_id          text CHECK (length(worker_id) <= 256),
    -- A fresh token per claim: completes, fails and heartbeats must present
    -- it, so a worker whose lease was reaped cannot touch the next holder's claim.
    claim_token        uuid,
    attempt            integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_retries        integer NOT NULL DEFAULT 3 CHECK (max_retries BETWEEN 0 AND 100),
    timeout_sec        integer NOT NULL DEFAULT 3600
                       CHECK (timeout_sec BETWEEN 1 AND 604800),
    backoff_base_sec   double precision NOT NULL DEFAULT 10
                       CHECK (backoff_base_sec >= 0 AND backoff_base_sec <= 86400),
    backoff_max_sec    double precision NOT NULL DEFAULT 900
                       CHECK (backoff_max_sec >= 0 AND backoff_max_sec <= 604800),
    idempotency_key    text CHECK (length(idempotency_key) BETWEEN 1 AND 256),
    depends_on         uuid[] NOT NULL DEFAULT '{}',
    workflow_id        uuid,
    result             jsonb,
    error              text,
    error_category     text
                       CHECK (error_category IN ('transient', 'timeout', 'lease_expired',
                                                 'permanent', 'corrupt_input', 'cancelled',
                                                 'dependency_failed')),
    -- The dead-lettered or cancelled task whose cascade cancelled this one;
    -- a manual retry of that task restores exactly these.
    cancelled_by       uuid,
    created_at         timestamptz NOT NULL DEFAULT now(),
    available_at       timestamptz NOT NULL DEFAULT now(),
    claimed_at         timestamptz,
    heartbeat_at       timestamptz,
    lease_expires_at   timestamptz,
    completed_at       timestamptz,
    dead_lettered_at   timestamptz,
    wait_time_sec      double precision,
    execution_time_sec double precision,
    CHECK ((status = 'claimed') = (claim_token IS NOT NULL)),
    CHECK (status <> 'claimed' OR lease_expires_at IS NOT NULL)
);

-- The claim path: walks runnable tasks of one queue in claim order.
CREATE INDEX tasks_claim_idx ON absurd.tasks (queue_name, priority DESC, seq)
    WHERE status IN ('pending', 'retrying');
CREATE UNIQUE INDEX tasks_idempotency_idx ON absurd.tasks (origin_queue, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Dependents of a task (cascades, wake-ups); only tasks that have any.
CREATE INDEX tasks_depends_on_idx ON absurd.tasks USING gin (depends_on)
    WHERE depends_on <> '{}';
CREATE INDEX tasks_lease_idx ON absurd.tasks (lease_expires_at) WHERE status = 'claimed';
CREATE INDEX tasks_queue_status_idx ON absurd.tasks (queue_name, status);
CREATE INDEX tasks_workflow_idx ON absurd.tasks (workflow_id) WHERE workflow_id IS NOT NULL;
-- What a manual retry restores.
CREATE INDEX tasks_cancelled_by_idx ON absurd.tasks (cancelled_by) WHERE cancelled_by IS NOT NULL;

-- ---------------------------------------------------------------------------
-- Queues

CREATE FUNCTION absurd.create_queue(p_queue text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF p_queue IS NULL OR p_queue ~ '-dlq$' OR length(p_queue) > 123
       OR p_queue !~ '^[A-Za-z0-9][A-Za-z0-9._-]*$' THEN
        RAISE EXCEPTION 'queue name "%" is not allowed: 1-123 characters of [A-Za-z0-9._-], '
                        'not ending in -dlq (reserved for dead-letter queues)', p_queue
            USING ERRCODE = 'CT006';
    END IF;
    INSERT INTO absurd.queues (queue_name) VALUES (p_queue || '-dlq') ON CONFLICT DO NOTHING;
    INSERT INTO absurd.queues (queue_name, dlq_name) VALUES (p_queue, p_queue || '-dlq')
        ON CONFLICT DO NOTHING;
    RETURN p_queue;
END $$;

SELECT absurd.create_queue('dsa110-pipeline');

CREATE FUNCTION absurd._require_queue(p_queue text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM absurd.queues q WHERE q.queue_name = p_queue) THEN
        RAISE EXCEPTION 'unknown queue "%"', p_queue USING ERRCODE = 'CT005';
    END IF;
END $$;

-- ---------------------------------------------------------------------------
-- Internal helpers

-- Locks and returns one task, or raises CT001.
CREATE FUNCTION absurd._lock_task(p_task_id uuid) RETURNS absurd.tasks
LANGUAGE plpgsql AS $$
DECLARE
    v absurd.tasks;
BEGIN
    SELECT * INTO v FROM absurd.tasks t WHERE t.task_id = p_task_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task % not found', p_task_id USING ERRCODE = 'CT001';
    END IF;
    RETURN v;
END $$;

-- Raises unless p_token holds a live lease on the (locked) task v.
CREATE FUNCTION absurd._require_holder(v absurd.tasks, p_token uuid) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF v.status <> 'claimed' OR v.claim_token IS DISTINCT FROM p_token THEN
        RAISE EXCEPTION 'task % is not held by this claim (status %, attempt %)',
            v.task_id, v.status, v.attempt USING ERRCODE = 'CT003';
    END IF;
    IF v.lease_expires_at < now() THEN
        RAISE EXCEPTION 'lease on task % expired at %', v.task_id, v.lease_expires_at
            USING ERRCODE = 'CT002';
    END IF;
END $$;

-- Cancels every pending or retrying task that depends, directly or through
-- other tasks, on p_start, recording p_cause (the task whose failure or
-- cancellation is the root of it) so a manual retry of p_cause can restore
-- them. Returns how many were cancelled.
--
-- The walk repeats until a pass cancels nothing: a spawn that locked one of
-- the dependencies FOR SHARE before this transaction reached it commits
-- while we wait on that row, after the walk's snapshot was taken; the next
-- pass (a new statement, so a new snapshot) sees it. Later spawns wait on
-- our row locks and then see the cancellation themselves.
CREATE FUNCTION absurd._cascade_cancel(p_start uuid, p_cause uuid, p_reason text)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n     integer;
    total integer := 0;
BEGIN
    LOOP
        WITH RECURSIVE roots(task_id) AS (
            SELECT p_start
            UNION
            SELECT t.task_id FROM absurd.tasks t
             WHERE t.cancelled_by = p_cause AND t.status = 'cancelled'
        ), dependents(task_id) AS (
            SELECT t.task_id FROM absurd.tasks t JOIN roots r ON t.depends_on @> ARRAY[r.task_id]
             WHERE t.depends_on <> '{}' AND t.status IN ('pending', 'retrying')
            UNION
            SELECT t.task_id FROM absurd.tasks t JOIN dependents d ON t.depends_on @> ARRAY[d.task_id]
             WHERE t.depends_on <> '{}' AND t.status IN ('pending', 'retrying')
        )
        UPDATE absurd.tasks t
           SET status = 'cancelled', cancelled_by = p_cause, error = p_reason,
               error_category = 'dependency_failed', completed_at = now()
          FROM dependents d
         WHERE t.task_id = d.task_id AND t.status IN ('pending', 'retrying');
        GET DIAGNOSTICS n = ROW_COUNT;
        total := total + n;
        EXIT WHEN n = 0;
    END LOOP;
    RETURN total;
END $$;

-- Moves a task to its queue's DLQ as failed and cancels its dependents.
CREATE FUNCTION absurd._dead_letter(v absurd.tasks, p_error text, p_category text)
RETURNS absurd.tasks
LANGUAGE plpgsql AS $$
DECLARE
    r absurd.tasks;
BEGIN
    UPDATE absurd.tasks t
       SET status = 'failed',
           queue_name = coalesce((SELECT q.dlq_name FROM absurd.queues q
                                   WHERE q.queue_name = t.origin_queue), t.queue_name),
           claim_token = NULL, lease_expires_at = NULL,
           error = p_error, error_category = p_category,
           completed_at = now(), dead_lettered_at = now(),
           execution_time_sec = CASE WHEN t.claimed_at IS NULL THEN NULL
                                     ELSE extract(epoch FROM now() - t.claimed_at) END
     WHERE t.task_id = v.task_id
    RETURNING t.* INTO r;
    PERFORM absurd._cascade_cancel(v.task_id, v.task_id,
                                   format('dependency %s failed', v.task_id));
    RETURN r;
END $$;

-- Retry-or-dead-letter after a failed attempt of category p_category.
CREATE FUNCTION absurd._after_failure(v absurd.tasks, p_error text, p_category text)
RETURNS absurd.tasks
LANGUAGE plpgsql AS $$
DECLARE
    r absurd.tasks;
    delay double precision;
BEGIN
    IF p_category IN ('transient', 'timeout', 'lease_expired') AND v.attempt <= v.max_retries THEN
        -- Exponential backoff: base * 2^(attempt-1), capped. attempt >= 1 here.
        delay := least(v.backoff_base_sec * power(2, least(v.attempt - 1, 30)), v.backoff_max_sec);
        UPDATE absurd.tasks t
           SET status = 'retrying', claim_token = NULL, lease_expires_at = NULL,
               error = p_error, error_category = p_category,
               available_at = now() + delay * interval '1 second',
               execution_time_sec = extract(epoch FROM now() - t.claimed_at)
         WHERE t.task_id = v.task_id
        RETURNING t.* INTO r;
        RETURN r;
    END IF;
    RETURN absurd._dead_letter(v, p_error, p_category);
END $$;

CREATE FUNCTION absurd._check_category(p_category text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_category IS NULL OR p_category NOT IN ('transient', 'timeout', 'permanent', 'corrupt_input') THEN
        RAISE EXCEPTION 'unknown error category "%" (transient, timeout, permanent, corrupt_input)',
            p_category USING ERRCODE = 'CT006';
    END IF;
END $$;

-- ---------------------------------------------------------------------------
-- Spawn

-- Returns the new task, or the existing one when the idempotency key is
-- already taken in this queue (created = false).
CREATE FUNCTION absurd.spawn_task(
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
    v_id     uuid;
    v_dead   absurd.tasks;
    v_deps   uuid[] := coalesce(p_depends_on, '{}');
    v_status text := 'pending';
BEGIN
    PERFORM absurd._require_queue(p_queue);
    IF p_queue ~ '-dlq$' THEN
        RAISE EXCEPTION 'tasks cannot be spawned into a dead-letter queue (%)', p_queue
            USING ERRCODE = 'CT006';
    END IF;
    IF p_idempotency_key IS NOT NULL THEN
        SELECT t.task_id INTO v_id FROM absurd.tasks t
         WHERE t.origin_queue = p_queue AND t.idempotency_key = p_idempotency_key;
        IF FOUND THEN
            RETURN QUERY SELECT v_id, false;
            RETURN;
        END IF;
    END IF;
    IF p_delay_sec IS NULL OR p_delay_sec < 0 THEN
        RAISE EXCEPTION 'delay must be >= 0 seconds' USING ERRCODE = 'CT006';
    END IF;
    IF cardinality(v_deps) > 0 THEN
        SELECT d INTO v_id FROM unnest(v_deps) d
         WHERE NOT EXISTS (SELECT 1 FROM absurd.tasks t WHERE t.task_id = d) LIMIT 1;
        IF v_id IS NOT NULL THEN
            RAISE EXCEPTION 'dependency % does not exist', v_id USING ERRCODE = 'CT006';
        END IF;
        -- Lock the dependencies in key order so a concurrent dead-letter either
        -- sees this task (and cancels it) or is seen here.
        PERFORM 1 FROM absurd.tasks t WHERE t.task_id = ANY (v_deps)
          ORDER BY t.task_id FOR SHARE;
        SELECT * INTO v_dead FROM absurd.tasks t
         WHERE t.task_id = ANY (v_deps) AND t.status IN ('failed', 'cancelled') LIMIT 1;
        IF FOUND THEN
            v_status := 'cancelled';
        END IF;
    END IF;

    INSERT INTO absurd.tasks AS t
        (queue_name, origin_queue, task_name, params, priority, max_retries, timeout_sec,
         idempotency_key, depends_on, workflow_id, available_at, backoff_base_sec,
         backoff_max_sec, status, cancelled_by, error, error_category, completed_at)
    VALUES
        (p_queue, p_queue, p_task_name, coalesce(p_params, '{}'), p_priority, p_max_retries,
         p_timeout_sec, p_idempotency_key, v_deps, p_workflow_id,
         now() + p_delay_sec * interval '1 second', p_backoff_base_sec, p_backoff_max_sec,
         v_status,
         coalesce(v_dead.cancelled_by, v_dead.task_id),
         CASE WHEN v_status = 'cancelled' THEN format('dependency %s %s', v_dead.task_id, v_dead.status) END,
         CASE WHEN v_status = 'cancelled' THEN 'dependency_failed' END,
         CASE WHEN v_status = 'cancelled' THEN now() END)
    ON CONFLICT (origin_queue, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING t.task_id INTO v_id;

    IF v_id IS NULL THEN
        -- A concurrent spawn with the same key won the insert.
        SELECT t.task_id INTO v_id FROM absurd.tasks t
         WHERE t.origin_queue = p_queue AND t.idempotency_key = p_idempotency_key;
        RETURN QUERY SELECT v_id, false;
        RETURN;
    END IF;
    IF v_status = 'pending' AND p_delay_sec = 0 AND NOT EXISTS (
           SELECT 1 FROM absurd.tasks t WHERE t.task_id = ANY (v_deps) AND t.status <> 'completed') THEN
        PERFORM pg_notify('absurd_tasks', p_queue);
    END IF;
    RETURN QUERY SELECT v_id, true;
END $$;

-- ---------------------------------------------------------------------------
-- Claim, heartbeat, complete, fail, release

-- Claims up to p_limit runnable tasks: highest priority first, then oldest;
-- skips tasks that are not yet available, whose dependencies have not all
-- completed, or that another claimer has locked.
CREATE FUNCTION absurd.claim_tasks(
    p_queue      text,
    p_worker_id  text,
    p_limit      integer          DEFAULT 1,
    p_lease_sec  double precision DEFAULT 90,
    p_task_names text[]           DEFAULT NULL)
RETURNS SETOF absurd.tasks
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM absurd._require_queue(p_queue);
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION 'claim limit must be 1..10000, got %', p_limit USING ERRCODE = 'CT006';
    END IF;
    IF p_lease_sec IS NULL OR p_lease_sec <= 0 OR p_lease_sec > 86400 THEN
        RAISE EXCEPTION 'lease must be in (0, 86400] seconds, got %', p_lease_sec
            USING ERRCODE = 'CT006';
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT t.task_id FROM absurd.tasks t
         WHERE t.queue_name = p_queue
           AND t.status IN ('pending', 'retrying')
           AND t.available_at <= now()
           AND (p_task_names IS NULL OR t.task_name = ANY (p_task_names))
           AND (t.depends_on = '{}' OR NOT EXISTS (
                   SELECT 1 FROM absurd.tasks d
                    WHERE d.task_id = ANY (t.depends_on) AND d.status <> 'completed'))
         ORDER BY t.priority DESC, t.seq
         LIMIT p_limit
         FOR UPDATE OF t SKIP LOCKED
    )
    UPDATE absurd.tasks t
       SET status = 'claimed', worker_id = p_worker_id, claim_token = gen_random_uuid(),
           attempt = t.attempt + 1, claimed_at = now(), heartbeat_at = now(),
           lease_expires_at = now() + p_lease_sec * interval '1 second',
           wait_time_sec = extract(epoch FROM now() - t.created_at)
      FROM picked
     WHERE t.task_id = picked.task_id
    RETURNING t.*;
END $$;

-- Extends the leases of many claimed tasks in one call. Returns the tasks
-- whose leases were extended; a task missing from the result has been lost
-- (expired, reaped, or claimed by someone else) and its work must stop.
CREATE FUNCTION absurd.heartbeat_tasks(p_task_ids uuid[], p_tokens uuid[],
                                       p_lease_sec double precision DEFAULT 90)
RETURNS TABLE (task_id uuid, lease_expires_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF cardinality(p_task_ids) IS DISTINCT FROM cardinality(p_tokens) THEN
        RAISE EXCEPTION 'task ids and claim tokens differ in number' USING ERRCODE = 'CT006';
    END IF;
    IF p_lease_sec IS NULL OR p_lease_sec <= 0 OR p_lease_sec > 86400 THEN
        RAISE EXCEPTION 'lease must be in (0, 86400] seconds, got %', p_lease_sec
            USING ERRCODE = 'CT006';
    END IF;
    RETURN QUERY
    UPDATE absurd.tasks t
       SET heartbeat_at = now(), lease_expires_at = now() + p_lease_sec * interval '1 second'
      FROM unnest(p_task_ids, p_tokens) AS h(id, token)
     WHERE t.task_id = h.id AND t.status = 'claimed' AND t.claim_token = h.token
       AND t.lease_expires_at >= now()
    RETURNING t.task_id, t.lease_expires_at;
END $$;

CREATE FUNCTION absurd.complete_task(p_task_id uuid, p_token uuid, p_result jsonb DEFAULT NULL)
RETURNS absurd.tasks
LANGUAGE plpgsql AS $$
DECLARE
    v absurd.tasks;
BEGIN
    v := absurd._lock_task(p_task_id);
    PERFORM absurd._require_holder(v, p_token);
    UPDATE absurd.tasks t
       SET status = 'completed', result = p_result, completed_at = now(),
           claim_token = NULL, lease_expires_at = NULL, error = NULL, error_category = NULL,
           execution_time_sec = extract(epoch FROM now() - t.claimed_at)
     WHERE t.task_id = p_task_id
    RETURNING t.* INTO v;
    PERFORM pg_notify('absurd_tasks', q.queue_name)
       FROM (SELECT DISTINCT t.queue_name FROM absurd.tasks t
              WHERE t.depends_on @> ARRAY[p_task_id] AND t.depends_on <> '{}'
                AND t.status = 'pending') q;
    RETURN v;
END $$;

-- Completes many tasks at once. Unlike complete_task it does not raise for
-- a task it cannot complete: each row's outcome says what happened, so one
-- stale claim does not undo the others. Rows come back in input order.
CREATE FUNCTION absurd.complete_tasks(p_task_ids uuid[], p_tokens uuid[], p_results jsonb[] DEFAULT NULL)
RETURNS TABLE (task_id uuid, outcome text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF cardinality(p_task_ids) IS DISTINCT FROM cardinality(p_tokens)
       OR (p_results IS NOT NULL AND cardinality(p_results) <> cardinality(p_task_ids)) THEN
        RAISE EXCEPTION 'task ids, claim tokens and results differ in number' USING ERRCODE = 'CT006';
    END IF;
    RETURN QUERY
    WITH input AS (
        SELECT u.id, u.token, u.ord, p_results[u.ord] AS res
          FROM unnest(p_task_ids, p_tokens) WITH ORDINALITY AS u(id, token, ord)
    ), done AS (
        UPDATE absurd.tasks t
           SET status = 'completed', result = i.res, completed_at = now(),
               claim_token = NULL, lease_expires_at = NULL, error = NULL, error_category = NULL,
               execution_time_sec = extract(epoch FROM now() - t.claimed_at)
          FROM input i
         WHERE t.task_id = i.id AND t.status = 'claimed' AND t.claim_token = i.token
           AND t.lease_expires_at >= now()
        RETURNING t.task_id
    )
    SELECT i.id,
           CASE WHEN d.task_id IS NOT NULL THEN 'completed'
                WHEN t.task_id IS NULL THEN 'not_found'
                WHEN t.status = 'claimed' AND t.claim_token = i.token THEN 'lease_expired'
                ELSE 'not_holder' END
      FROM input i
      LEFT JOIN done d ON d.task_id = i.id
      LEFT JOIN absurd.tasks t ON t.task_id = i.id
     ORDER BY i.ord;
    -- Wake claimers of any queue where a completed task unblocked a dependent.
    PERFORM pg_notify('absurd_tasks', q.queue_name)
       FROM (SELECT DISTINCT t.queue_name FROM absurd.tasks t
              WHERE t.depends_on && p_task_ids AND t.depends_on <> '{}'
                AND t.status = 'pending') q;
END $$;

-- Records a failed attempt. Transient and timeout failures are retried with
-- exponential backoff while attempt <= max_retries; then, or at once for
-- permanent and corrupt_input, the task is dead-lettered.
CREATE FUNCTION absurd.fail_task(p_task_id uuid, p_token uuid, p_error text,
                                 p_category text DEFAULT 'transient')
RETURNS absurd.tasks
LANGUAGE plpgsql AS $$
DECLARE
    v absurd.tasks;
BEGIN
    PERFORM absurd._check_category(p_category);
    v := absurd._lock_task(p_task_id);
    PERFORM absurd._require_holder(v, p_token);
    RETURN absurd._after_failure(v, left(coalesce(p_error, ''), 8000), p_category);
END $$;

-- Gives a claimed task back without spending an attempt (graceful drain).
-- Allowed while the token still matches, even past lease expiry: the holder
-- is giving the task up, which is what the reaper would do anyway.
CREATE FUNCTION absurd.release_task(p_task_id uuid, p_token uuid) RETURNS absurd.tasks
LANGUAGE plpgsql AS $$
DECLARE
    v absurd.tasks;
BEGIN
    v := absurd._lock_task(p_task_id);
    IF v.status <> 'claimed' OR v.claim_token IS DISTINCT FROM p_token THEN
        RAISE EXCEPTION 'task % is not held by this claim (status %)', v.task_id, v.status
            USING ERRCODE = 'CT003';
    END IF;
    UPDATE absurd.tasks t
       SET status = CASE WHEN t.attempt > 1 THEN 'retrying' ELSE 'pending' END,
           attempt = t.attempt - 1, worker_id = NULL, claim_token = NULL,
           claimed_at = NULL, heartbeat_at = NULL, lease_expires_at = NULL,
           available_at = now()
     WHERE t.task_id = p_task_id
    RETURNING t.* INTO v;
    PERFORM pg_notify('absurd_tasks', v.queue_name);
    RETURN v;
END $$;

-- ---------------------------------------------------------------------------
-- Operator actions

-- Cancels a pending or retrying task and, transitively, its dependents.
-- A claimed task is refused: its worker must finish, fail or release it.
CREATE FUNCTION absurd.cancel_task(p_task_id uuid, p_reason text DEFAULT 'cancelled by operator')
RETURNS absurd.tasks
LANGUAGE plpgsql AS $$
DECLARE
    v absurd.tasks;
BEGIN
    v := absurd._lock_task(p_task_id);
    IF v.status = 'cancelled' THEN
        RETURN v;
    END IF;
    IF v.status NOT IN ('pending', 'retrying') THEN
        RAISE EXCEPTION 'task % is %; only pending or retrying tasks can be cancelled',
            v.task_id, v.status USING ERRCODE = 'CT004';
    END IF;
    UPDATE absurd.tasks t
       SET status = 'cancelled', error = left(coalesce(p_reason, 'cancelled'), 8000),
           error_category = 'cancelled', completed_at = now(), cancelled_by = NULL
     WHERE t.task_id = p_task_id
    RETURNING t.* INTO v;
    PERFORM absurd._cascade_cancel(p_task_id, p_task_id,
                                   format('dependency %s cancelled', p_task_id));
    RETURN v;
END $$;

-- Manual retry of a failed (dead-lettered) or cancelled task: back to its
-- own queue, pending, with a fresh attempt budget. Dependents that its
-- failure cancelled are restored too, unless another dependency of theirs
-- is still failed or cancelled.
CREATE FUNCTION absurd.retry_task(p_task_id uuid) RETURNS absurd.tasks
LANGUAGE plpgsql AS $$
DECLARE
    v          absurd.tasks;
    bad        uuid;
    v_restored uuid[];
    c          record;
BEGIN
    v := absurd._lock_task(p_task_id);
    IF v.status NOT IN ('failed', 'cancelled') THEN
        RAISE EXCEPTION 'task % is %; only failed or cancelled tasks can be retried',
            v.task_id, v.status USING ERRCODE = 'CT004';
    END IF;
    SELECT t.task_id INTO bad FROM absurd.tasks t
     WHERE t.task_id = ANY (v.depends_on) AND t.status IN ('failed', 'cancelled') LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'task % depends on % which is not runnable; retry that one first',
            v.task_id, bad USING ERRCODE = 'CT004';
    END IF;
    UPDATE absurd.tasks t
       SET status = 'pending', queue_name = t.origin_queue, attempt = 0, worker_id = NULL,
           claim_token = NULL, claimed_at = NULL, heartbeat_at = NULL, lease_expires_at = NULL,
           completed_at = NULL, dead_lettered_at = NULL, cancelled_by = NULL, result = NULL,
           available_at = now()
     WHERE t.task_id = p_task_id
    RETURNING t.* INTO v;
    -- Restore what this task's failure or cancellation cascaded to...
    WITH restored AS (
        UPDATE absurd.tasks t
           SET status = 'pending', attempt = 0, completed_at = NULL, cancelled_by = NULL,
               error = NULL, error_category = NULL, available_at = now()
         WHERE t.cancelled_by = p_task_id AND t.status = 'cancelled'
        RETURNING t.task_id)
    SELECT coalesce(array_agg(restored.task_id), '{}') INTO v_restored FROM restored;
    -- ...then cancel again those that still have another dead dependency,
    -- recording that one's root cause. The dependencies are locked first (in
    -- key order, as spawn does) so a concurrent cancel or dead-letter of one
    -- of them either finishes before this check or sees the restored tasks.
    PERFORM 1 FROM absurd.tasks d
     WHERE d.task_id IN (SELECT unnest(t.depends_on) FROM absurd.tasks t
                          WHERE t.task_id = ANY (v_restored))
     ORDER BY d.task_id FOR SHARE;
    FOR c IN
        SELECT t.task_id, dead.task_id AS dead_id, dead.status AS dead_status,
               coalesce(dead.cancelled_by, dead.task_id) AS cause
          FROM absurd.tasks t
          CROSS JOIN LATERAL (SELECT d.task_id, d.status, d.cancelled_by FROM absurd.tasks d
                               WHERE d.task_id = ANY (t.depends_on)
                                 AND d.status IN ('failed', 'cancelled')
                               ORDER BY d.task_id LIMIT 1) dead
         WHERE t.task_id = ANY (v_restored)
    LOOP
        UPDATE absurd.tasks t
           SET status = 'cancelled', cancelled_by = c.cause, completed_at = now(),
               error = format('dependency %s %s', c.dead_id, c.dead_status),
               error_category = 'dependency_failed'
         WHERE t.task_id = c.task_id AND t.status = 'pending';
        PERFORM absurd._cascade_cancel(c.task_id, c.cause,
                                       format('dependency %s %s', c.dead_id, c.dead_status));
    END LOOP;
    PERFORM pg_notify('absurd_tasks', v.queue_name);
    RETURN v;
END $$;

-- Returns claimed tasks whose holder vanished: an expired lease goes back to
-- pending with its attempt count kept (or is dead-lettered when no attempt
-- is left); a task running past timeout_sec fails with category timeout.
CREATE FUNCTION absurd.reap_tasks(p_queue text DEFAULT NULL)
RETURNS TABLE (task_id uuid, action text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v absurd.tasks;
    r absurd.tasks;
BEGIN
    IF p_queue IS NOT NULL THEN
        PERFORM absurd._require_queue(p_queue);
    END IF;
    FOR v IN
        SELECT * FROM absurd.tasks t
         WHERE t.status = 'claimed'
           AND (t.lease_expires_at < now()
                OR t.claimed_at + t.timeout_sec * interval '1 second' < now())
           AND (p_queue IS NULL OR t.queue_name = p_queue)
         ORDER BY t.task_id
         FOR UPDATE SKIP LOCKED
    LOOP
        IF v.claimed_at + v.timeout_sec * interval '1 second' < now() THEN
            r := absurd._after_failure(v,
                     format('timed out after %s s on worker %s', v.timeout_sec, v.worker_id),
                     'timeout');
        ELSIF v.attempt <= v.max_retries THEN
            UPDATE absurd.tasks t
               SET status = CASE WHEN t.attempt > 1 THEN 'retrying' ELSE 'pending' END,
                   claim_token = NULL, lease_expires_at = NULL, available_at = now(),
                   error = format('lease expired at %s (worker %s)', t.lease_expires_at, t.worker_id),
                   error_category = 'lease_expired'
             WHERE t.task_id = v.task_id
            RETURNING t.* INTO r;
        ELSE
            r := absurd._dead_letter(v,
                     format('lease expired at %s (worker %s); no attempts left',
                            v.lease_expires_at, v.worker_id),
                     'lease_expired');
        END IF;
        task_id := r.task_id;
        action := CASE r.status WHEN 'failed' THEN 'dead_lettered'
                                WHEN 'retrying' THEN 'retrying'
                                ELSE 'requeued' END;
        PERFORM pg_notify('absurd_tasks', r.queue_name);
        RETURN NEXT;
    END LOOP;
END $$;

-- ---------------------------------------------------------------------------
-- Stats

CREATE FUNCTION absurd.queue_stats(p_queue text DEFAULT NULL)
RETURNS TABLE (queue_name text, pending bigint, claimed bigint, retrying bigint,
               completed bigint, failed bigint, cancelled bigint, total bigint,
               oldest_pending_sec double precision, avg_wait_sec double precision,
               avg_execution_sec double precision)
LANGUAGE plpgsql STABLE AS $$
#variable_conflict use_column
BEGIN
    IF p_queue IS NOT NULL THEN
        PERFORM absurd._require_queue(p_queue);
    END IF;
    RETURN QUERY
    SELECT q.queue_name,
           count(t.task_id) FILTER (WHERE t.status = 'pending'),
           count(t.task_id) FILTER (WHERE t.status = 'claimed'),
           count(t.task_id) FILTER (WHERE t.status = 'retrying'),
           count(t.task_id) FILTER (WHERE t.status = 'completed'),
           count(t.task_id) FILTER (WHERE t.status = 'failed'),
           count(t.task_id) FILTER (WHERE t.status = 'cancelled'),
           count(t.task_id),
           extract(epoch FROM now() - min(t.created_at) FILTER (WHERE t.status = 'pending'))::double precision,
           avg(t.wait_time_sec),
           avg(t.execution_time_sec) FILTER (WHERE t.status = 'completed')
      FROM absurd.queues q
      LEFT JOIN absurd.tasks t ON t.queue_name = q.queue_name
     WHERE p_queue IS NULL OR q.queue_name = p_queue
     GROUP BY q.queue_name
     ORDER BY q.queue_name;
END $$;
