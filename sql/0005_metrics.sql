-- 0005: what the operator surfaces read in one round trip: the queue's figures for the
-- Prometheus metrics of `contimg serve` (src/api/metrics.c).

-- One JSON document, every figure labelled by queue (and task name where it has one); a
-- few passes over absurd.tasks, whatever the number of queues and task names:
--   tasks       per (origin queue, task name): spawned (every row), the sums and counts of
--               wait and execution times over all rows, and their 0.5/0.95/0.99 quantiles
--               over the tasks claimed (wait) or completed (execution) in the last
--               p_window_sec seconds (null when none)
--   current     per (queue, task name, status): rows now
--   failures    per (origin queue, task name, category): tasks dead-lettered
--   queues      per registered queue: depth (pending + retrying), the age of the oldest
--               pending and of the oldest claimed task, tasks completed in the last 5
--               minutes, completed and dead-lettered in the window, the age of the newest
--               claim (null where none)
--   caltable_age_sec  seconds since the newest active caltable's observation ended (null
--               when there is none)
CREATE FUNCTION absurd.metrics_snapshot(p_window_sec double precision DEFAULT 3600)
RETURNS jsonb LANGUAGE sql STABLE AS $$
WITH win AS (SELECT now() - make_interval(secs => p_window_sec) AS since)
SELECT jsonb_build_object(
    'tasks', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'queue', g.q, 'task_name', g.n, 'spawned', g.spawned,
                   'wait_sum', g.wait_sum, 'wait_count', g.wait_count,
                   'exec_sum', g.exec_sum, 'exec_count', g.exec_count,
                   'wait_q', to_jsonb(g.wait_q), 'exec_q', to_jsonb(g.exec_q))
                   ORDER BY g.q, g.n)
          FROM (SELECT t.origin_queue AS q, t.task_name AS n, count(*) AS spawned,
                       coalesce(sum(t.wait_time_sec), 0) AS wait_sum,
                       count(t.wait_time_sec) AS wait_count,
                       coalesce(sum(t.execution_time_sec), 0) AS exec_sum,
                       count(t.execution_time_sec) AS exec_count,
                       percentile_cont(ARRAY[0.5, 0.95, 0.99]::float8[])
                           WITHIN GROUP (ORDER BY t.wait_time_sec)
                           FILTER (WHERE t.claimed_at >= win.since) AS wait_q,
                       percentile_cont(ARRAY[0.5, 0.95, 0.99]::float8[])
                           WITHIN GROUP (ORDER BY t.execution_time_sec)
                           FILTER (WHERE t.completed_at >= win.since) AS exec_q
                  FROM absurd.tasks t, win
                 GROUP BY t.origin_queue, t.task_name) g), '[]'::jsonb),
    'current', coalesce((
        SELECT jsonb_agg(jsonb_build_object('queue', c.queue_name, 'task_name', c.task_name,
                                            'status', c.status, 'n', c.n)
                         ORDER BY c.queue_name, c.task_name, c.status)
          FROM (SELECT queue_name, task_name, status, count(*) AS n
                  FROM absurd.tasks GROUP BY 1, 2, 3) c), '[]'::jsonb),
    'failures', coalesce((
        SELECT jsonb_agg(jsonb_build_object('queue', f.origin_queue, 'task_name', f.task_name,
                                            'category', f.category, 'n', f.n)
                         ORDER BY f.origin_queue, f.task_name, f.category)
          FROM (SELECT origin_queue, task_name,
                       coalesce(error_category, 'unknown') AS category, count(*) AS n
                  FROM absurd.tasks WHERE status = 'failed' GROUP BY 1, 2, 3) f),
        '[]'::jsonb),
    'queues', coalesce((
        SELECT jsonb_agg(jsonb_build_object(
                   'queue', q.queue_name, 'depth', coalesce(a.depth, 0),
                   'oldest_pending_age_sec', a.oldest_pending,
                   'oldest_claimed_age_sec', a.oldest_claimed,
                   'completed_5m', coalesce(b.c5, 0), 'completed_window', coalesce(b.cw, 0),
                   'failed_window', coalesce(b.fw, 0), 'last_claim_age_sec', b.last_claim)
                   ORDER BY q.queue_name)
          FROM absurd.queues q
          LEFT JOIN (SELECT queue_name,
                            count(*) FILTER (WHERE status IN ('pending', 'retrying')) AS depth,
                            extract(epoch FROM now() - min(created_at)
                                FILTER (WHERE status IN ('pending', 'retrying'))) AS oldest_pending,
                            extract(epoch FROM now() - min(claimed_at)
                                FILTER (WHERE status = 'claimed')) AS oldest_claimed
                       FROM absurd.tasks GROUP BY queue_name) a
                 ON a.queue_name = q.queue_name
          LEFT JOIN (SELECT t.origin_queue,
                            count(*) FILTER (WHERE t.status = 'completed' AND
                                             t.completed_at >= now() - interval '5 minutes') AS c5,
                            count(*) FILTER (WHERE t.status = 'completed' AND
                                             t.completed_at >= win.since) AS cw,
                            count(*) FILTER (WHERE t.status = 'failed' AND
                                             t.dead_lettered_at >= win.since) AS fw,
                            extract(epoch FROM now() - max(t.claimed_at)) AS last_claim
                       FROM absurd.tasks t, win GROUP BY t.origin_queue) b
                 ON b.origin_queue = q.queue_name), '[]'::jsonb),
    'caltable_age_sec', (SELECT extract(epoch FROM now() - max(obs_end))
                           FROM products.caltables WHERE status = 'active'))
  FROM win
$$;
