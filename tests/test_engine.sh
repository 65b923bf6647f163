#!/usr/bin/env bash
# test_engine.sh CONTIMG -- the engine end to end, on a real private PostgreSQL and real
# MPI ranks: simulated observations ingested and drained by `mpirun contimg run --drain`
# into completed tasks, products rows and FITS files that pass QA; failure categories
# (corrupt input dead-lettered with its dependents cancelled, a transient failure
# retried after its backoff); kill -9 of a worker rank and of rank 0 mid-imaging, then a
# second run completes everything exactly once; a database outage mid-run whose commits
# are journaled and replayed.
set -u
CONTIMG=${1:?usage: test_engine.sh CONTIMG}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=engine_lib.sh
. "$HERE/engine_lib.sh"

# ---- three observations through ingest and mpirun -np 4 contimg run --drain -------------
fresh main
out=$("$CONTIMG" ingest "$T/obs3")
check "ingest spawns one convert task per complete group" '[[ $out == *"3 spawned, 0 already queued, 0 incomplete"* ]]'
out=$("$CONTIMG" ingest "$T/obs3")
check "ingesting again spawns nothing" '[[ $out == *"0 spawned, 3 already queued"* ]]'
check "the idempotency key is the group id" \
    '[ "$(q "SELECT string_agg(idempotency_key, '"'"','"'"' ORDER BY idempotency_key) FROM absurd.tasks")" = "2026-11-22T10:00:00,2026-11-22T10:05:09,2026-11-22T10:10:18" ]'
# One bad group does not stop ingestion: a group with a file outside the data roots, and
# one in a directory whose name is not UTF-8, are each skipped with a line on stderr while
# the good group beside them is spawned (exit 2: something was skipped); the same
# observation in another directory is said to be queued already.
Q2=ingest-skip
"$CONTIMG" queue create $Q2 >/dev/null
mkdir -p "$T/mixed" "$T/outside" "$T/"$'\xff'
for sb in $(seq -w 0 15); do
    cp "$T/obs3/2026-11-22T10:00:00_sb$sb.hdf5" "$T/mixed/2026-11-22T12:00:00_sb$sb.hdf5"
    cp "$T/obs3/2026-11-22T10:00:00_sb$sb.hdf5" "$T/mixed/2026-11-22T12:05:00_sb$sb.hdf5"
    cp "$T/obs3/2026-11-22T10:00:00_sb$sb.hdf5" "$T/"$'\xff'"/2026-11-22T12:10:00_sb$sb.hdf5"
done
mv "$T/mixed/2026-11-22T12:05:00_sb03.hdf5" "$T/outside/sb03.hdf5"
ln -s "$T/outside/sb03.hdf5" "$T/mixed/2026-11-22T12:05:00_sb03.hdf5"
ABSURD_QUEUE_NAME=$Q2 CONTIMG_DATA_ROOTS=$T/mixed "$CONTIMG" ingest "$T/mixed" >"$T/skip.out" 2>"$T/skip.err"
rc=$?
check "a group with a file outside the data roots is skipped, the good one spawned, exit 2" \
    '[ $rc -eq 2 ] && grep -q "skipped group 2026-11-22T12:05:00: .*outside the configured data roots" "$T/skip.err" &&
     grep -q "1 spawned, 0 already queued, 0 incomplete, 1 skipped" "$T/skip.out" &&
     [ "$(q "SELECT string_agg(idempotency_key, '"'"','"'"') FROM absurd.tasks WHERE queue_name = '"'"'$Q2'"'"'")" = 2026-11-22T12:00:00 ]'
ABSURD_QUEUE_NAME=$Q2 "$CONTIMG" ingest "$T/"$'\xff' >"$T/skip.out" 2>"$T/skip.err"
rc=$?
check "a group in a directory whose name is not UTF-8: skipped, said, never spawned with no files" \
    '[ $rc -eq 2 ] && grep -q "skipped group 2026-11-22T12:10:00: a file name is not valid UTF-8" "$T/skip.err" &&
     [ "$(q "SELECT count(*) FROM absurd.tasks WHERE queue_name = '"'"'$Q2'"'"'")" = 1 ]'
mkdir -p "$T/copy"
cp "$T/mixed/2026-11-22T12:00:00_sb"*.hdf5 "$T/copy/"
ABSURD_QUEUE_NAME=$Q2 "$CONTIMG" ingest "$T/copy" >"$T/skip.out" 2>"$T/skip.err"
rc=$?
check "the same observation in another directory: queued already, and said so" \
    '[ $rc -eq 0 ] && grep -q "group 2026-11-22T12:00:00 in $T/copy is already queued from another directory" "$T/skip.err"'
q "DELETE FROM absurd.tasks WHERE queue_name = '$Q2'"
# Inputs must lie in the data roots; outputs, planned under the products directory, are
# created by the run.
CONTIMG_DATA_ROOTS=$T/obs3:$CONTIMG_STATE_DIR \
    "${MPIRUN[@]}" -x CONTIMG_DATA_ROOTS -np 4 "$CONTIMG" run --drain >"$T/main.log" 2>&1
rc=$?
check "mpirun -np 4 contimg run --drain exits 0" '[ $rc -eq 0 ] || { tail -20 "$T/main.log"; false; }'
check_complete "mpirun -np 4" 3
check "tasks carry absolute paths" \
    '[ "$(q "SELECT count(*) FROM absurd.tasks WHERE params->'"'"'inputs'"'"'->'"'"'files'"'"'->>0 LIKE '"'"'/%'"'"'")" = 3 ]'
check "worker_id is host:pid:rank" \
    '[ "$(q "SELECT count(*) FROM absurd.tasks WHERE worker_id ~ '"'"'^[^:]+:[0-9]+:0$'"'"'")" = 8 ]'
# Mosaics: the chain's create-mosaic step runs the planner when an image commits; windows
# of 2 overlapping by 1 over 3 observations make 2 mosaics, each spawned once.
m1=quicklook_2026-11-22T10:00:00_2026-11-22T10:05:09
m2=quicklook_2026-11-22T10:05:09_2026-11-22T10:10:18
check "two create-mosaic tasks completed, keyed by their mosaic ids" \
    '[ "$(q "SELECT string_agg(idempotency_key || '"'"' '"'"' || status, '"'"','"'"' ORDER BY idempotency_key)
              FROM absurd.tasks WHERE task_name = '"'"'create-mosaic'"'"'")" = "$m1 completed,$m2 completed" ]'
check "two products.mosaics rows of 2 images each, written once, with their tiles" \
    '[ "$(q "SELECT string_agg(mosaic_id || '"'"' '"'"' || n_images || '"'"' '"'"' || n_writes || '"'"' '"'"' ||
                              (jsonb_array_length(tiles) > 1) || '"'"' '"'"' || (noise_jy > 0), '"'"','"'"'
                              ORDER BY mosaic_id) FROM products.mosaics")" = "$m1 2 1 true true,$m2 2 1 true true" ]'
while IFS='|' read -r path images; do
    [ -n "$path" ] || continue
    # shellcheck disable=SC2086
    check "mosaic $(basename "$path"): the linear-mosaic formula, evaluated with astropy and scipy, at the sources and elsewhere" \
        '/usr/bin/python3 "$HERE/check_mosaic.py" "$path" ${images//,/ } >/dev/null'
done <<<"$(q "SELECT path, array_to_string(images, ',') FROM products.mosaics")"
out=$("$CONTIMG" mosaic --plan --tier quicklook --per-mosaic 2 --overlap 1 --spawn)
check "contimg mosaic --plan lists both windows complete, and --spawn adds nothing" \
    '[[ $out == *"$m1"*yes*"$m2"*yes* && $out != *"spawned "* ]] &&
     [ "$(q "SELECT count(*) FROM absurd.tasks WHERE task_name = '"'"'create-mosaic'"'"'")" = 2 ]'
check "the planner refuses a window larger than its tier" \
    '! "$CONTIMG" mosaic --plan --tier quicklook --per-mosaic 11 2>/dev/null'
# contimg products reads every products table through the products client (products.h):
# the same rows as SQL, a group's mosaics being those that cover it.
rows_of() { # rows_of FIELD...: "f1 f2,f1 f2,..." of the JSON rows on stdin, sorted
    /usr/bin/python3 -c 'import json, sys
rows = json.load(sys.stdin)
text = lambda v: str(v).lower() if isinstance(v, bool) else str(v)
print(",".join(sorted(" ".join(text(r[f]) for f in sys.argv[1:]) for r in rows)))' "$@"
}
vis_cli=$("$CONTIMG" products --kind visibilities --json | rows_of group_id qa_passed)
vis_sql=$(q "SELECT string_agg(group_id || ' ' || qa_passed, ',' ORDER BY group_id) FROM products.visibilities")
check "contimg products --kind visibilities: the converted groups, as SQL has them" \
    '[ -n "$vis_sql" ] && [ "$vis_cli" = "$vis_sql" ]'
mos_g=$("$CONTIMG" products --kind mosaics --group 2026-11-22T10:00:00 --json | rows_of mosaic_id)
mos_all=$("$CONTIMG" products --kind mosaics --json | rows_of mosaic_id)
check "contimg products --kind mosaics: both, and of the first group only the one covering it" \
    '[ "$mos_g" = "$m1" ] && [ "$mos_all" = "$m1,$m2" ]'
cal_cli=$("$CONTIMG" products --kind caltables --json --limit 1000000 | rows_of path)
cal_sql=$(q "SELECT coalesce(string_agg(path, ',' ORDER BY path), '') FROM products.caltables")
"$CONTIMG" products --kind bogus >/dev/null 2>&1
bogus=$?
check "contimg products --kind caltables: the registry's rows as SQL has them; a bogus kind exits 2" \
    '[ "$cal_cli" = "$cal_sql" ] && [ $bogus -eq 2 ]'

check "imaging tasks were spawned by the commit of their convert task, which they depend on" \
    '[ "$(q "SELECT count(*) FROM absurd.tasks i JOIN absurd.tasks c ON i.depends_on = ARRAY[c.task_id]
              WHERE i.task_name = '"'"'imaging'"'"' AND c.task_name = '"'"'convert-uvh5-to-ms'"'"'
                AND i.idempotency_key = '"'"'quick:'"'"' || c.idempotency_key || '"'"':imaging'"'"'
                AND i.params->'"'"'config'"'"'->>'"'"'size'"'"' = '"'"'256'"'"'")" = 3 ]'

# ---- corrupt input, a transient failure, dependents of a dead-lettered task ----------------
fresh failures
mkdir -p "$T/bad"
simulate "$T/bad" 2026-11-22T11:00:00
simulate "$T/bad" 2026-11-22T11:05:09
head -c 4096 /dev/urandom >"$T/bad/2026-11-22T11:00:00_sb05.hdf5" # damaged on disk
# A subband file damaged where HDF5 1.10 itself crashes decoding it (found by fuzz_uvh5):
# the coordinator's probe fails the task as corrupt input; before, every rank died.
mkdir -p "$T/bad2"
simulate "$T/bad2" 2026-11-22T11:10:18
cp "$HERE/fuzz/hdf5-crashers/shared-message-crashes-hdf5.hdf5" "$T/bad2/2026-11-22T11:10:18_sb09.hdf5"
ABSURD_RETRY_BACKOFF_BASE=3 "$CONTIMG" ingest "$T/bad" >/dev/null
"$CONTIMG" ingest "$T/bad2" >/dev/null
corrupt=$(q "SELECT task_id FROM absurd.tasks WHERE idempotency_key = '2026-11-22T11:00:00'")
crasher=$(q "SELECT task_id FROM absurd.tasks WHERE idempotency_key = '2026-11-22T11:10:18'")
dependent=$("$CONTIMG" task spawn --name imaging --no-check --depends-on "$corrupt" --params '{}')
# A task whose outcome the database refuses at commit (a group id the products table's
# check rejects; spawned unchecked, as any database client could): failed, permanent, with
# the database's reason -- not left claimed to be redone until its cause is lost.
files=$(printf '"%s",' "$T"/bad/2026-11-22T11:05:09_sb*.hdf5)
refused=$("$CONTIMG" task spawn --name convert-uvh5-to-ms --no-check --params \
    "{\"inputs\": {\"group_id\": \"not-a-time\", \"files\": [${files%,}]},
      \"outputs\": {\"vis_path\": \"$CONTIMG_STATE_DIR/products/vis/refused.hdf5\"}}")
# Outputs that name a file outside the products directory: refused before anything is
# written (any database client can write params; the engine runs as whoever started it).
echo precious >"$T/victim.txt"
victim=$("$CONTIMG" task spawn --name convert-uvh5-to-ms --no-check --params \
    "{\"inputs\": {\"group_id\": \"2026-11-22T11:05:09\", \"files\": [${files%,}]},
      \"outputs\": {\"vis_path\": \"$T/victim.txt\"}}")
# The second group's images cannot be written at first: a file stands where their
# directory must be (a disk not mounted yet). That is transient and retried.
mkdir -p "$CONTIMG_STATE_DIR/products"
echo "not a directory" >"$CONTIMG_STATE_DIR/products/images"
"${MPIRUN[@]}" -np 3 "$CONTIMG" run --drain >"$T/failures.log" 2>&1 &
engine=$!
BACKGROUND+=($engine)
if wait_for 120 "EXISTS (SELECT 1 FROM absurd.tasks WHERE task_name = 'imaging' AND status = 'retrying')"; then
    rm -f "$CONTIMG_STATE_DIR/products/images" # the disk is back before the retry is due
else
    bad "the imaging task blocked by the disk never went to retrying"
fi
wait $engine
rc=$?
check "the drain waits for the retry and exits 0" '[ $rc -eq 0 ] || { tail -20 "$T/failures.log"; false; }'
check "corrupt input fails as corrupt_input on its first attempt, dead-lettered, not retried" \
    '[ "$(q "SELECT status || '"'"' '"'"' || error_category || '"'"' '"'"' || attempt || '"'"' '"'"' || queue_name
              FROM absurd.tasks WHERE task_id = '"'"'$corrupt'"'"'")" = "failed corrupt_input 1 dsa110-pipeline-dlq" ]'
check "the error names the damaged file" \
    '[[ "$(q "SELECT error FROM absurd.tasks WHERE task_id = '"'"'$corrupt'"'"'")" == *sb05* ]]'
check "a file that crashes HDF5 fails its task as corrupt_input, first attempt, naming it" \
    '[ "$(q "SELECT status || '"'"' '"'"' || error_category || '"'"' '"'"' || attempt
              FROM absurd.tasks WHERE task_id = '"'"'$crasher'"'"'")" = "failed corrupt_input 1" ] &&
     [[ "$(q "SELECT error FROM absurd.tasks WHERE task_id = '"'"'$crasher'"'"'")" == *sb09*"crashed reading it"* ]]'
check "a commit the database refuses fails the task, permanent, first attempt, with the reason" \
    '[ "$(q "SELECT status || '"'"' '"'"' || error_category || '"'"' '"'"' || attempt
              FROM absurd.tasks WHERE task_id = '"'"'$refused'"'"'")" = "failed permanent 1" ] &&
     [[ "$(q "SELECT error FROM absurd.tasks WHERE task_id = '"'"'$refused'"'"'")" == *"refused the task'"'"'s commit"*"SQLSTATE 23514"* ]]'
check "an output outside the products directory: failed, permanent, first attempt; the file untouched" \
    '[ "$(q "SELECT status || '"'"' '"'"' || error_category || '"'"' '"'"' || attempt
              FROM absurd.tasks WHERE task_id = '"'"'$victim'"'"'")" = "failed permanent 1" ] &&
     [ "$(cat "$T/victim.txt")" = precious ] &&
     [[ "$(q "SELECT error FROM absurd.tasks WHERE task_id = '"'"'$victim'"'"'")" == *"outside the products directory"* ]]'
check "its dependent is cancelled as dependency_failed" \
    '[ "$(q "SELECT status || '"'"' '"'"' || error_category FROM absurd.tasks WHERE task_id = '"'"'$dependent'"'"'")" = "cancelled dependency_failed" ]'
check "the transient failure was retried after its backoff and completed on attempt 2" \
    '[ "$(q "SELECT status || '"'"' '"'"' || attempt FROM absurd.tasks
              WHERE task_name = '"'"'imaging'"'"' AND params->'"'"'inputs'"'"' ? '"'"'vis_path'"'"'")" = "completed 2" ]'
check "the log shows the transient failure with its retry" \
    'grep -q "failed    imaging .* transient: .*retried in" "$T/failures.log"'
check "no products row for the corrupt group" \
    '[ "$(q "SELECT count(*) FROM products.visibilities WHERE group_id = '"'"'2026-11-22T11:00:00'"'"'")" = 0 ]'

# ---- kill -9 mid-imaging: a worker rank, then rank 0 ---------------------------------------
# Observations big enough that imaging one takes about 2 s (obs3's take a third of a
# second, so all three could finish before the kill lands).
for start in 2026-11-22T10:00:00 2026-11-22T10:05:09 2026-11-22T10:10:18; do
    "$CONTIMG" simulate --out "$T/obsk" --start $start --dec 55 --antennas 96 --times 8 \
        --channels-per-subband 1 --noise-jy 0.05 >/dev/null || bad "simulate $start"
done
# Short leases, so the second run need not wait long for the first run's claims.
for victim in worker coordinator; do
    fresh "kill-$victim"
    "$CONTIMG" ingest "$T/obsk" >/dev/null
    ABSURD_HEARTBEAT_INTERVAL=0.5 ABSURD_LEASE_SEC=3 \
        "${MPIRUN[@]}" -np 3 "$CONTIMG" run --drain >"$T/kill-$victim.log" 2>&1 &
    engine=$!
BACKGROUND+=($engine)
    if wait_for 120 "EXISTS (SELECT 1 FROM absurd.tasks WHERE task_name = 'imaging' AND status = 'claimed')"; then
        sleep 0.5 # into the imaging
        rank0=$(q "SELECT split_part(worker_id, ':', 2) FROM absurd.tasks WHERE status = 'claimed' LIMIT 1")
        if [ $victim = coordinator ]; then
            pid=$rank0
        else
            # A rank of this run's mpirun, not any contimg on the machine.
            pid=$(pgrep -x -P "$engine" contimg | grep -vx "$rank0" | head -1)
        fi
        kill -9 "$pid" 2>/dev/null || bad "kill -9 $victim (pid '$pid')"
    else
        bad "$victim: no imaging task was ever claimed"
    fi
    wait $engine
    rc=$?
    check "kill -9 of the $victim ends the first run with a failure status" '[ $rc -ne 0 ]'
    check "$victim: the killed run left imaging unfinished" \
        '[ "$(q "SELECT count(*) FROM absurd.tasks WHERE task_name = '"'"'imaging'"'"' AND status = '"'"'completed'"'"'")" -lt 3 ]'
    sleep 3.5 # the lease runs out
    "${MPIRUN[@]}" -np 3 "$CONTIMG" run --drain >"$T/rerun-$victim.log" 2>&1
    rc=$?
    check "$victim: a second contimg run --drain exits 0" '[ $rc -eq 0 ] || { tail -20 "$T/rerun-$victim.log"; false; }'
    check "$victim: the second run reaped the dead run's claim" 'grep -q "reaped" "$T/rerun-$victim.log"'
    check_complete "after kill -9 of the $victim" 3
done

# ---- the database goes away mid-run: commits are journaled and replayed -------------------
fresh outage
"$CONTIMG" ingest "$T/obs3" >/dev/null
"${MPIRUN[@]}" -np 3 "$CONTIMG" run --drain >"$T/outage.log" 2>&1 &
engine=$!
BACKGROUND+=($engine)
if wait_for 120 "EXISTS (SELECT 1 FROM absurd.tasks WHERE task_name = 'imaging' AND status = 'claimed')"; then
    "$CONTIMG" db stop >/dev/null || bad "db stop"
    until grep -q "journaled" "$T/outage.log" || ! kill -0 $engine 2>/dev/null; do sleep 0.2; done
    "$CONTIMG" db start >/dev/null || bad "db start"
else
    bad "outage: no imaging task was ever claimed"
fi
wait $engine
rc=$?
check "the engine rides out the outage and exits 0" '[ $rc -eq 0 ] || { tail -30 "$T/outage.log"; false; }'
check "a commit made while the database was down was journaled" 'grep -q "journaled" "$T/outage.log"'
check "and replayed when it came back" 'grep -q "replayed from the journal" "$T/outage.log"'
check "the journal is empty afterwards" '[ -z "$(ls -A "$CONTIMG_STATE_DIR/journal")" ]'
check_complete "after the outage" 3

# ---- the disk guard: no claims while the disk is full, then on once there is room ----------
fresh diskguard
"$CONTIMG" ingest "$T/obs3" >/dev/null
CONTIMG_DISK_GUARD=0.0001 timeout 8 "${MPIRUN[@]}" -x CONTIMG_DISK_GUARD -np 2 "$CONTIMG" run \
    --drain >"$T/guard.log" 2>&1
check "a guard below the disk's use: the engine says so and claims nothing" \
    'grep -q "disk guard: .* full (CONTIMG_DISK_GUARD 0 %): not claiming" "$T/guard.log" &&
     [ "$(q "SELECT count(*) FROM absurd.tasks WHERE attempt > 0")" = 0 ] &&
     [ "$(q "SELECT count(*) FROM absurd.tasks WHERE status = '"'"'pending'"'"'")" = 3 ] ||
     { tail -5 "$T/guard.log"; false; }'
"${MPIRUN[@]}" -np 3 "$CONTIMG" run --drain >"$T/guard2.log" 2>&1
check_complete "with the default guard (95 %)" 3

# ---- a drain started while a dead job's claim is still leased waits for it -----------------
# (mpirun killed outright -- SIGTERM to mpirun, a node lost -- leaves its task claimed until
# the lease runs out; `run --drain` used to exit 0 at once and leave it behind.)
fresh deadclaim
"$CONTIMG" queue create dsa110-pipeline >/dev/null
dead=$("$CONTIMG" task spawn --name noop --params '{"config": {"sleep_sec": 4}}')
ABSURD_HEARTBEAT_INTERVAL=0.5 ABSURD_LEASE_SEC=3 "${MPIRUN[@]}" -x ABSURD_HEARTBEAT_INTERVAL \
    -x ABSURD_LEASE_SEC -np 2 "$CONTIMG" run --drain >"$T/dead1.log" 2>&1 &
engine=$!
BACKGROUND+=($engine)
if wait_for 60 "EXISTS (SELECT 1 FROM absurd.tasks WHERE task_id = '$dead' AND status = 'claimed')"; then
    pkill -9 -x -P "$engine" contimg # this job's ranks, all at once: nobody releases
    wait $engine 2>/dev/null
else
    bad "the no-op task was never claimed: $(tail -3 "$T/dead1.log")"
fi
"${MPIRUN[@]}" -np 2 "$CONTIMG" run --drain >"$T/dead2.log" 2>&1
rc=$?
check "a drain waits out the dead job's lease, takes the task back and runs it (attempt 2)" \
    '[ $rc -eq 0 ] && [ "$(q "SELECT status || '"'"' '"'"' || attempt FROM absurd.tasks WHERE task_id = '"'"'$dead'"'"'")" = "completed 2" ] ||
     { tail -5 "$T/dead2.log"; false; }'

# ---- short tasks side by side: ranks short of a whole group take the one-rank kinds ----------
# (-np 3 is two workers, one group of two: two no-ops ran one after the other.)
fresh sidebyside
"$CONTIMG" queue create dsa110-pipeline >/dev/null
for i in 1 2; do
    "$CONTIMG" task spawn --name noop --params '{"config": {"sleep_sec": 2}}' >/dev/null
done
"${MPIRUN[@]}" -np 3 "$CONTIMG" run --drain >"$T/side.log" 2>&1 || bad "side by side: $(tail -3 "$T/side.log")"
check "two no-ops on -np 3 run at the same time, one rank each" \
    '[ "$(q "SELECT count(*) = 2 AND max(claimed_at) < min(completed_at) FROM absurd.tasks WHERE status = '"'"'completed'"'"'")" = t ] ||
     { q "SELECT claimed_at, completed_at FROM absurd.tasks"; false; }'

# ---- least privilege: the engine needs no ownership of the schema ---------------------------
fresh roles
q "CREATE ROLE engine1 LOGIN IN ROLE contimg_engine; CREATE ROLE viewer1 LOGIN IN ROLE contimg_reader"
ENGINE_URL=${URL/user=contimg/user=engine1}
CONTIMG_DATABASE_URL=$ENGINE_URL "$CONTIMG" ingest "$T/obs3" >/dev/null || bad "ingest as engine1"
CONTIMG_DATABASE_URL=$ENGINE_URL "${MPIRUN[@]}" -x CONTIMG_DATABASE_URL -np 3 "$CONTIMG" run \
    --drain >"$T/roles.log" 2>&1 || bad "run as engine1: $(tail -3 "$T/roles.log")"
check_complete "as a member of contimg_engine, not the owner" 3
check "the engine's role cannot drop, alter or create in the schema" \
    '! psql "$ENGINE_URL" -XAtq -c "DROP TABLE absurd.tasks" 2>/dev/null &&
     ! psql "$ENGINE_URL" -XAtq -c "ALTER TABLE products.images ADD COLUMN x int" 2>/dev/null &&
     ! psql "$ENGINE_URL" -XAtq -c "CREATE TABLE absurd.x (i int)" 2>/dev/null &&
     ! psql "$ENGINE_URL" -XAtq -c "COPY absurd.tasks TO PROGRAM '"'"'true'"'"'" 2>/dev/null'
check "a reader reads, and changes nothing" \
    '[ "$(psql "${URL/user=contimg/user=viewer1}" -XAtq -c "SELECT count(*) FROM products.images")" = 3 ] &&
     ! psql "${URL/user=contimg/user=viewer1}" -XAtq -c "DELETE FROM products.images" 2>/dev/null'

# ---- rank 0's memory does not grow with the tasks it has run ---------------------------------
# 300 no-op tasks, then 3000: the heap rank 0 holds at the end is the same (it leaked about
# 220 bytes a task, 600 kB over these 2700, before take_result gave back its {}).
fresh memory
"$CONTIMG" queue create dsa110-pipeline >/dev/null
heap_after() { # heap_after N: spawn N no-op tasks, drain them; rank 0's heap in bytes
    q "SELECT count(*) FROM generate_series(1, $1) g,
              LATERAL absurd.spawn_task('dsa110-pipeline', 'noop', jsonb_build_object('i', g))" >/dev/null
    "${MPIRUN[@]}" -np 2 "$CONTIMG" run --drain --quiet --json 2>/dev/null |
        /usr/bin/python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["completed"], d["heap_bytes"])'
}
read -r n1 h1 <<<"$(heap_after 300)"
read -r n2 h2 <<<"$(heap_after 3000)"
check "rank 0's heap after 3000 tasks is that after 300, within 64 kB ($h1 -> $h2 bytes)" \
    '[ "$n1" = 300 ] && [ "$n2" = 3000 ] && [ $((h2 - h1)) -lt 65536 ]'

[ $failed -eq 0 ] && echo "all engine checks passed"
exit $((failed > 0))
