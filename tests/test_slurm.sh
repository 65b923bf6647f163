#!/usr/bin/env bash
# test_slurm.sh CONTIMG -- the engine under a real one-node Slurm (slurm/local-cluster.sh):
# `sbatch slurm/contimg.sbatch` ingests three observations and drains them into the
# tables; SIGUSR1 to a running observing allocation (slurm/contimg-observing.sbatch)
# drains it: exit 0 within the grace period, unfinished tasks pending again with their
# attempt counts unchanged, and a rerun completes them; USR2 (what its time limit sends)
# drains it and submits its successor, USR1 does not.
set -u
CONTIMG=${1:?usage: test_slurm.sh CONTIMG}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=engine_lib.sh
. "$HERE/engine_lib.sh"

export CONTIMG_SLURM_DIR=$T/slurm
stop_slurm() { bash "$REPO/slurm/local-cluster.sh" stop >/dev/null 2>&1; }
CLEANUP_HOOK=stop_slurm
if ! bash "$REPO/slurm/local-cluster.sh" start >"$T/slurm-start.log" 2>&1; then
    cat "$T/slurm-start.log" >&2
    echo "FAIL: the local Slurm cluster did not start" >&2
    exit 1
fi
# shellcheck source=/dev/null
. "$CONTIMG_SLURM_DIR/env.sh"
export CONTIMG_BIN=$CONTIMG

job_state() { # job_state JOBID -> "STATE EXITCODE" while Slurm remembers the job
    scontrol show job "$1" 2>/dev/null |
        sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p; s/.*[^a-zA-Z]ExitCode=\([0-9:]*\).*/\1/p' | paste -sd' '
}

# ---- batch: sbatch slurm/contimg.sbatch ingests and drains ---------------------------------
fresh sbatch
CONTIMG_INGEST_DIR=$T/obs3 sbatch --wait --ntasks=3 --output="$T/batch.out" \
    "$REPO/slurm/contimg.sbatch" >"$T/batch.submit" 2>&1
rc=$?
check "sbatch --wait slurm/contimg.sbatch exits 0" '[ $rc -eq 0 ] || { cat "$T/batch.submit" "$T/batch.out"; false; }'
check "the batch job ingested the three groups" 'grep -q "3 spawned" "$T/batch.out"'
check "its ranks came from srun (a coordinator and two workers)" \
    'grep -q "on 3 ranks" "$T/batch.out"'
# 3 convert, 3 imaging and 2 create-mosaic tasks (windows of 2 images overlapping by 1).
check "the worker id names the Slurm job" \
    '[ "$(q "SELECT count(*) FROM absurd.tasks WHERE worker_id ~ '"'"':[0-9]+:0$'"'"' AND worker_id LIKE '"'"'%:'"'"' || '"'"'$(sed -n "s/Submitted batch job //p" "$T/batch.submit")'"'"' || '"'"':0'"'"'")" = 8 ]'
check_complete "sbatch" 3

# ---- observing: SIGUSR1 drains the allocation ----------------------------------------------
fresh observing
"$CONTIMG" ingest "$T/obs3" >/dev/null
job=$(CONTIMG_DRAIN_GRACE_SEC=120 sbatch --parsable --ntasks=3 --output="$T/observing.out" \
    "$REPO/slurm/contimg-observing.sbatch")
if wait_for 120 "EXISTS (SELECT 1 FROM absurd.tasks WHERE task_name = 'imaging' AND status = 'claimed')"; then
    q "SELECT task_id, attempt FROM absurd.tasks WHERE status <> 'claimed' AND status <> 'completed' ORDER BY task_id" >"$T/before"
    scancel --signal=USR1 --batch "$job"
    signalled=$SECONDS
else
    bad "observing: no imaging task was ever claimed"
    signalled=$SECONDS
fi
while squeue -h -j "$job" 2>/dev/null | grep -q .; do
    [ $((SECONDS - signalled)) -gt 150 ] && break
    sleep 0.5
done
took=$((SECONDS - signalled))
state=$(job_state "$job")
check "the allocation ends on SIGUSR1, within its grace period ($took s)" '[ $took -le 130 ]'
check "and exits 0 (COMPLETED 0:0, got '$state')" '[ "$state" = "COMPLETED 0:0" ] || { cat "$T/observing.out"; false; }'
check "the engine says it drained on a signal" 'grep -q "drained on a signal" "$T/observing.out"'
check "the imaging task in flight was finished and committed, not abandoned" \
    '[ "$(q "SELECT count(*) FROM absurd.tasks WHERE task_name = '"'"'imaging'"'"' AND status = '"'"'completed'"'"'")" -ge 1 ]'
check "nothing is left claimed" '[ "$(q "SELECT count(*) FROM absurd.tasks WHERE status = '"'"'claimed'"'"'")" = 0 ]'
check "unfinished tasks are pending with the attempt counts they had" \
    '[ -s "$T/before" ] && [ "$(q "SELECT task_id, attempt FROM absurd.tasks WHERE status = '"'"'pending'"'"' ORDER BY task_id")" = "$(cat "$T/before")" ]'
"${MPIRUN[@]}" -np 3 "$CONTIMG" run --drain >"$T/rerun.log" 2>&1
rc=$?
check "a rerun exits 0" '[ $rc -eq 0 ] || { tail -20 "$T/rerun.log"; false; }'
check_complete "after the drain and a rerun" 3

# ---- observing: the time limit's USR2 drains and hands over to a successor ------------------
# observe SIGNAL OUT: an observing allocation (3 tasks, 10 minutes) logging to OUT, sent
# SIGNAL once its engine is up, waited out; sets job.
observe() {
    local started=$SECONDS
    job=$(sbatch --parsable --ntasks=3 --time=10 --output="$2" \
        "$REPO/slurm/contimg-observing.sbatch")
    until grep -q "until drained\|on 3 ranks" "$2" 2>/dev/null ||
        [ $((SECONDS - started)) -gt 60 ]; do
        sleep 0.2
    done
    scancel --signal="$1" --batch "$job"
    while squeue -h -j "$job" 2>/dev/null | grep -q .; do
        [ $((SECONDS - started)) -gt 200 ] && break
        sleep 0.5
    done
}
observe USR2 "$T/observing2.out"
next=$(sed -n 's/.*successor job \([0-9]*\) submitted.*/\1/p' "$T/observing2.out")
check "USR2 (the time limit): the allocation drains, exits 0 and submits its successor (job ${next:-none})" \
    '[ "$(job_state "$job")" = "COMPLETED 0:0" ] && [ -n "$next" ] || { cat "$T/observing2.out"; false; }'
info=$(scontrol show job "$next" 2>/dev/null)
check "the successor: the same script, name, tasks and time limit, after this job" \
    'grep -q "JobName=contimg-observing" <<<"$info" && grep -q "TimeLimit=00:10:00" <<<"$info" &&
     grep -q "NumTasks=3" <<<"$info" && grep -q "Command=$REPO/slurm/contimg-observing.sbatch" <<<"$info"'
scancel "$next" 2>/dev/null
observe USR1 "$T/observing3.out"
check "USR1 (an operator): the allocation drains and stops, no successor" \
    '! grep -q "successor" "$T/observing3.out" && [ "$(squeue -h -n contimg-observing | wc -l)" = 0 ]'

[ $failed -eq 0 ] && echo "all Slurm checks passed"
exit $((failed > 0))
