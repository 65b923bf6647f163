-- 0012: the queue at scale (issue 17, load).
--
-- Spawning in bulk was quadratic on a table the planner had no statistics for: 20,000
-- spawns in one transaction took 19.8 s, against 1.6 s after an ANALYZE. PL/pgSQL keeps
-- a generic plan per statement after a function's first calls, made while the table was
-- small: a sequential scan for `task_id = ANY (v_deps)` (the readiness check every spawn
-- makes, dependencies or not), kept while the table grows inside the transaction, where
-- neither ANALYZE nor autovacuum can refresh it. Planned with each call's values and the
-- table's size at that moment, every statement keeps its index: 5,000 / 20,000 / 40,000
-- spawns in one transaction take 0.79 / 3.26 / 6.69 s, and a chain of 8,000 dependent
-- tasks 1.9 s (7.7 s before), on a never-analysed table (bench/README.md, "Load"). The
-- planning costs about 80 us a spawn, against the round trip and commit of one.
ALTER FUNCTION absurd.spawn_task(text, text, jsonb, integer, integer, integer, text, uuid[],
                                 uuid, double precision, double precision, double precision)
    SET plan_cache_mode = force_custom_plan;

-- Every task row is updated several times in its life (claim, heartbeats, complete), so
-- the table makes dead rows at the rate tasks run. Vacuumed and analysed at 5 % and 2 %
-- of its rows changed (the defaults are 20 % and 10 %), the claim's index scans stay short
-- and its statistics current as it grows toward millions of rows.
ALTER TABLE absurd.tasks SET (autovacuum_vacuum_scale_factor = 0.05,
                              autovacuum_analyze_scale_factor = 0.02);
