-- pgbench script: claim one task and complete it with complete_task, the
-- raw SQL of cq_claim(limit 1) + cq_complete. -M prepared, -D q=QUEUE.
-- An empty claim returns no row, which \gset rejects (see queue_raw_many.sql).
SELECT task_id, claim_token
  FROM absurd.claim_tasks(:q, 'pgbench-' || :client_id, 1, 300)
\gset
SELECT task_id AS done FROM absurd.complete_task(:task_id, :claim_token)
\gset
