-- 0007: schedules. A schedule spawns one task each time its cron expression comes due
-- (src/core/cron.h computes the times; the database only compares them). Whoever ticks --
-- `contimg serve`, a long-running engine, `contimg schedule tick` from cron -- fires a due
-- schedule through absurd.fire_schedule, which moves next_run_at on with a compare-and-set
-- on the schedule's row and spawns in the same transaction, with the idempotency key
-- schedule:NAME:DUE: however many tickers race, each due time spawns exactly one task.

CREATE TABLE absurd.schedules (
    schedule_name text PRIMARY KEY
                  CHECK (schedule_name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$'),
    cron          text NOT NULL CHECK (length(cron) BETWEEN 1 AND 200),
    queue_name    text NOT NULL REFERENCES absurd.queues (queue_name),
    task_name     text NOT NULL CHECK (task_name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,126}$'),
    params        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(params) = 'object'),
    enabled       boolean NOT NULL DEFAULT true,
    next_run_at   timestamptz NOT NULL,
    last_run_at   timestamptz,
    last_task_id  uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due_idx ON absurd.schedules (next_run_at) WHERE enabled;

-- Adds or replaces a schedule; p_next (from the cron expression) is its first due time.
CREATE FUNCTION absurd.put_schedule(p_name text, p_cron text, p_queue text, p_task_name text,
                                    p_params jsonb, p_next timestamptz, p_enabled boolean)
RETURNS absurd.schedules LANGUAGE plpgsql AS $$
DECLARE
    v absurd.schedules;
BEGIN
    PERFORM absurd._require_queue(p_queue);
    IF p_queue ~ '-dlq$' THEN
        RAISE EXCEPTION 'a schedule cannot spawn into a dead-letter queue (%)', p_queue
            USING ERRCODE = 'CT006';
    END IF;
    INSERT INTO absurd.schedules AS s
        (schedule_name, cron, queue_name, task_name, params, enabled, next_run_at)
    VALUES (p_name, p_cron, p_queue, p_task_name, coalesce(p_params, '{}'),
            coalesce(p_enabled, true), p_next)
    ON CONFLICT (schedule_name) DO UPDATE
       SET cron = EXCLUDED.cron, queue_name = EXCLUDED.queue_name,
           task_name = EXCLUDED.task_name, params = EXCLUDED.params,
           enabled = EXCLUDED.enabled, next_run_at = EXCLUDED.next_run_at, updated_at = now()
    RETURNING s.* INTO v;
    RETURN v;
END $$;

-- Fires one due schedule: exactly once per due time (CT007 when its queue is full: nothing
-- fired, the schedule still due). Returns the spawned task, or NULL when
-- another ticker fired it first (its next_run_at no longer p_due) or it was disabled.
CREATE FUNCTION absurd.fire_schedule(p_name text, p_due timestamptz, p_next timestamptz)
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE
    v    absurd.schedules;
    v_id uuid;
BEGIN
    UPDATE absurd.schedules s
       SET next_run_at = p_next, last_run_at = p_due, updated_at = now()
     WHERE s.schedule_name = p_name AND s.next_run_at = p_due AND s.enabled
    RETURNING s.* INTO v;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- Behind the queue's limit: a full queue rolls the fire back, and a later tick retries.
    SELECT t.task_id INTO v_id FROM absurd.spawn_task_admitted(
        v.queue_name, v.task_name,
        v.params || jsonb_build_object('schedule', jsonb_build_object(
            'name', p_name, 'due', to_char(p_due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))),
        p_idempotency_key => 'schedule:' || p_name || ':' ||
                             to_char(p_due AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) t;
    UPDATE absurd.schedules SET last_task_id = v_id WHERE schedule_name = p_name;
    RETURN v_id;
END $$;
