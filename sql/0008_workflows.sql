-- 0008: workflows. A workflow is a DAG of tasks spawned in one transaction, all or none:
-- each task names the tasks it depends on by their keys within the workflow, and they share
-- one workflow_id (absurd.tasks.workflow_id). Spawned from outside, so behind the queue's
-- backpressure limit, admitted or refused whole (absurd.admit_batch).
--
-- p_tasks: [{"key": K, "task_name": N, "params"?: {...}, "depends_on"?: [K, ...],
--            "priority"?, "max_retries"?, "timeout_sec"?}, ...], each key once, every
-- dependency a key listed before it (so the graph has no cycle). Returns
-- {"workflow_id", "tasks": [{"key", "task_id"}, ...]}.
CREATE FUNCTION absurd.spawn_workflow(p_queue text, p_tasks jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_wf   uuid := gen_random_uuid();
    v_ids  jsonb := '{}';
    v_out  jsonb := '[]';
    t      jsonb;
    d      text;
    v_deps uuid[];
    v_id   uuid;
    v_key  text;
BEGIN
    IF jsonb_typeof(p_tasks) IS DISTINCT FROM 'array' OR jsonb_array_length(p_tasks) = 0 THEN
        RAISE EXCEPTION 'a workflow needs a non-empty array of tasks' USING ERRCODE = 'CT006';
    END IF;
    PERFORM absurd.admit_batch(p_queue, jsonb_array_length(p_tasks)); -- whole or not at all
    FOR t IN SELECT * FROM jsonb_array_elements(p_tasks) LOOP
        v_key := t->>'key';
        IF v_key IS NULL OR t->>'task_name' IS NULL THEN
            RAISE EXCEPTION 'every workflow task needs a key and a task_name' USING ERRCODE = 'CT006';
        END IF;
        IF v_ids ? v_key THEN
            RAISE EXCEPTION 'workflow key "%" appears twice', v_key USING ERRCODE = 'CT006';
        END IF;
        v_deps := '{}';
        FOR d IN SELECT * FROM jsonb_array_elements_text(coalesce(t->'depends_on', '[]')) LOOP
            IF NOT v_ids ? d THEN
                RAISE EXCEPTION 'workflow task "%" depends on "%", which is not listed before it',
                    v_key, d USING ERRCODE = 'CT006';
            END IF;
            v_deps := v_deps || (v_ids->>d)::uuid;
        END LOOP;
        SELECT s.task_id INTO v_id FROM absurd.spawn_task_admitted(
            p_queue, t->>'task_name', coalesce(t->'params', '{}'),
            coalesce((t->>'priority')::int, 0), coalesce((t->>'max_retries')::int, 3),
            coalesce((t->>'timeout_sec')::int, 3600), NULL, v_deps, v_wf) s;
        v_ids := v_ids || jsonb_build_object(v_key, v_id);
        v_out := v_out || jsonb_build_object('key', v_key, 'task_id', v_id);
    END LOOP;
    RETURN jsonb_build_object('workflow_id', v_wf, 'tasks', v_out);
END $$;

-- The workflows, newest first: their ids, queue, task counts by status, first spawn.
CREATE FUNCTION absurd.workflows(p_limit integer DEFAULT 100) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(w ORDER BY w.created_at DESC), '[]') FROM (
        SELECT t.workflow_id, min(t.origin_queue) AS queue_name, count(*) AS total,
               count(*) FILTER (WHERE t.status = 'completed') AS completed,
               count(*) FILTER (WHERE t.status IN ('pending', 'retrying', 'claimed')) AS open,
               count(*) FILTER (WHERE t.status IN ('failed', 'cancelled')) AS failed,
               min(t.created_at) AS created_at
          FROM absurd.tasks t WHERE t.workflow_id IS NOT NULL
         GROUP BY t.workflow_id ORDER BY min(t.created_at) DESC
         LIMIT greatest(1, least(coalesce(p_limit, 100), 1000))) w
$$;
