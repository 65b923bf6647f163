-- 0010: what a draining engine waits for includes the tasks claimed by others. A task
-- whose holder died (mpirun killed by SIGTERM, a node lost) stays claimed until its lease
-- runs out; a `contimg run --drain` started meanwhile saw nothing pending and exited 0,
-- leaving it behind. Now it waits: for the holder to finish, or for the lease to run out,
-- when its own reaper takes the task back and it runs it.

CREATE OR REPLACE FUNCTION absurd.outstanding(p_queue text, p_task_names text[] DEFAULT NULL)
RETURNS TABLE (n_outstanding bigint, next_available_sec double precision)
LANGUAGE sql STABLE AS $$
    SELECT count(*),
           greatest(0, extract(epoch FROM min(CASE WHEN t.status = 'claimed'
                                                   THEN t.lease_expires_at
                                                   ELSE t.available_at END) - now()))::float8
      FROM absurd.tasks t
     WHERE t.queue_name = p_queue AND t.status IN ('pending', 'retrying', 'claimed')
       AND (p_task_names IS NULL OR t.task_name = ANY (p_task_names))
       -- A task waiting on one that nobody here works would be waited for forever.
       AND NOT EXISTS (SELECT 1 FROM absurd.tasks d
                        WHERE t.depends_on <> '{}' AND d.task_id = ANY (t.depends_on)
                          AND d.status <> 'completed'
                          AND (d.status NOT IN ('pending', 'retrying', 'claimed')
                               OR (p_task_names IS NOT NULL
                                   AND NOT d.task_name = ANY (p_task_names))));
$$;
