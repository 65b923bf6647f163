-- pgbench script: the raw SQL of one claim+complete round at batch :batch,
-- as bench_queue does it through cq_claim + cq_complete_many, with no
-- client library around it. Run with -M prepared (each :var becomes a bound
-- parameter) and -D q=QUEUE -D batch=B. Two statements, two round trips.
--
-- HAVING makes an empty claim return no row, which \gset rejects: a client
-- whose queue ran dry stops there, and queue_raw.sh reports the rate over
-- the time the run actually lasted.
SELECT array_agg(task_id) AS ids, array_agg(claim_token) AS toks
  FROM absurd.claim_tasks(:q, 'pgbench-' || :client_id, :batch, 300)
HAVING count(*) > 0
\gset
SELECT count(*) AS ncompleted FROM absurd.complete_tasks(:ids, :toks)
\gset
