#!/usr/bin/env bash
# bench/engine.sh -- the engine's own cost and one observation end to end.
#
#   bench/engine.sh [BUILD_DIR] [--tasks N] [--full] [--production] [--ranks N] [--times T]
#       [--no-peers] [--keep DIR]
#
# 1. Overhead: N no-op tasks (default 2000) drained through the whole engine
#    (claim, dispatch to a rank, outcome back, one commit transaction per task) on
#    1 rank (the coordinator runs them itself) and on 3 ranks (two workers, one task
#    each), next to the raw SQL rate of claim + complete one task at a time
#    (bench/queue_raw.sh, pgbench) on the same database. Overhead per task = engine
#    seconds / N, since the tasks themselves do nothing.
# 2. --full: one full-size observation (16 subbands x 48 channels, 96 antennas, 24
#    integrations: 1.7e8 visibilities) from its 16 files to a registered image:
#    ingest, then `mpirun --bind-to none -np 2 contimg run --drain` (one worker whose
#    threads use every core; --ranks N for more ranks) (convert; image 2048 x 2048 px
#    of 6 arcsec, Briggs 0.5, niter 500: bench/imaging's full-size settings; with
#    --production 4800 x 4800 px of 3 arcsec, min uv 1000 lambda, niter 1000), with the
#    per-stage breakdown from the tasks' results; and in the same
#    run the seed's tools on the same files: pyuvdata combining the 16 files into a
#    Measurement Set, then WSClean with the same image size, cell, weighting and
#    CLEAN settings (--no-peers skips them). Goals: <= 60 s (5 x faster than the
#    309 s cadence) and <= 0.5 x the seed's time. --times T simulates T integrations
#    instead of 24 (a fraction T/24 of the observation) for a quicker run.
#
# A private PostgreSQL under a temporary state directory is started and stopped here.
# --keep DIR keeps the simulated observation and the products (and reuses them).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build ntasks=2000 full=false peers=true keep="" times=24 production=false eranks=2
while [ $# -gt 0 ]; do
    case "$1" in
    --tasks) ntasks=$2; shift 2 ;;
    --full) full=true; shift ;;
    --no-peers) peers=false; shift ;;
    --times) times=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --production) production=true; full=true; shift ;;
    --ranks) eranks=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    -*) echo "engine.sh: unknown option '$1'" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
[[ "$ntasks" =~ ^[1-9][0-9]*$ ]] || { echo "engine.sh: --tasks must be a whole number" >&2; exit 2; }
contimg=$build/contimg
work=${keep:-$(mktemp -d /var/tmp/contimg-bench-engine.XXXXXX)}
mkdir -p "$work"
export CONTIMG_STATE_DIR=$work/state OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# mpirun's PMIx would try munge for 2.3 s where munged is not running (src/mpiutil.h).
munge -n >/dev/null 2>&1 || export PMIX_MCA_psec=${PMIX_MCA_psec:-^munge}
unset CONTIMG_DATABASE_URL ABSURD_DATABASE_URL CONTIMG_CHAINS_FILE
finish() {
    "$contimg" db stop >/dev/null 2>&1 || true
    [ -n "$keep" ] || rm -rf "$work"
}
trap finish EXIT
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
jget() {
    python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else (v.get(k) if isinstance(v, dict) else None)
print("null" if v is None else v)' "$1" "$2"
}
"$contimg" db start >/dev/null
"$contimg" db migrate --no-default-schedules >/dev/null
url=$("$contimg" db url)
sql() { psql "$url" -XAtq -c "$1"; }
echo "engine benchmark on $(nproc) cores; database $url"

# ---- 1. per-task overhead ---------------------------------------------------------------
spawn_noops() { # spawn_noops QUEUE N, 1000 per transaction (as bench/queue's pools)
    sql "SELECT absurd.create_queue('$1')" >/dev/null
    local left=$2
    while [ "$left" -gt 0 ]; do
        local n=$((left < 1000 ? left : 1000))
        sql "SELECT count(*) FROM (SELECT absurd.spawn_task('$1', 'noop') FROM generate_series(1, $n)) s" >/dev/null
        left=$((left - n))
    done
    sql "VACUUM ANALYZE absurd.tasks" >/dev/null
}
declare -A rate overhead
for ranks in 1 3; do
    q=bench-engine-$ranks
    spawn_noops "$q" "$ntasks"
    if [ "$ranks" -eq 1 ]; then
        ABSURD_QUEUE_NAME=$q "$contimg" run --drain --quiet --json >"$work/noop-$ranks.json"
    else
        ABSURD_QUEUE_NAME=$q mpirun -q --oversubscribe -np "$ranks" "$contimg" run --drain --quiet \
            --ranks-per-task 1 --json >"$work/noop-$ranks.json"
    fi
    done_n=$(jget "$work/noop-$ranks.json" completed)
    secs=$(jget "$work/noop-$ranks.json" seconds)
    [ "$done_n" -eq "$ntasks" ] || echo "  warning: $done_n of $ntasks completed on $ranks rank(s)"
    rate[$ranks]=$(awk -v n="$done_n" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
    overhead[$ranks]=$(awk -v n="$done_n" -v s="$secs" 'BEGIN { printf "%.3f", 1000 * s / n }')
done
rq=bench-engine-raw
sql "SELECT absurd.create_queue('$rq')" >/dev/null
"$here/queue_raw.sh" --url "$url" --queue "$rq" --batch 1 --mode one --seconds 3 \
    >"$work/raw.json" 2>/dev/null
raw_rate=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("%.0f" % d.get("tasks_per_sec", d.get("rate", 0)))' "$work/raw.json")
echo
echo "no-op tasks through the engine ($ntasks tasks, one commit transaction each):"
printf "  %-44s %10s %14s\n" "" "tasks/s" "ms per task"
printf "  %-44s %10s %14s\n" "contimg run, 1 rank (coordinator runs them)" "${rate[1]}" "${overhead[1]}"
printf "  %-44s %10s %14s\n" "mpirun -np 3 contimg run (2 workers)" "${rate[3]}" "${overhead[3]}"
printf "  %-44s %10s %14s\n" "raw SQL claim + complete, 1 task (pgbench)" "$raw_rate" \
    "$(awk -v r="$raw_rate" 'BEGIN { printf "%.3f", (r > 0) ? 1000 / r : 0 }')"
echo "  goal: <= 0.1 ms of engine overhead per task"

$full || exit 0

# ---- 2. one full-size observation end to end ----------------------------------------------
obs=$work/obs-$times start=2026-11-22T10:00:00
if [ "$(ls "$obs"/*_sb??.hdf5 2>/dev/null | wc -l)" -ne 16 ]; then
    echo
    echo "simulating one observation ($times of 24 integrations) into $obs ..."
    rm -rf "$obs"
    "$contimg" simulate --out "$obs" --start "$start" --dec 55 --noise-jy 0.5 \
        --times "$times" >/dev/null
fi
size=2048 cell=6 robust=0.5 niter=500 minuv=0
$production && size=4800 cell=3 niter=1000 minuv=1000
cat >"$work/chains.json" <<EOF
{"quick": ["convert-uvh5-to-ms",
           {"task": "imaging", "config": {"size": $size, "cell_arcsec": $cell,
                                          "weight": "briggs", "robust": $robust, "niter": $niter,
                                          "min_uv_lambda": $minuv}}]}
EOF
export CONTIMG_CHAINS_FILE=$work/chains.json
sql "DELETE FROM absurd.tasks WHERE queue_name LIKE 'dsa110-pipeline%'" >/dev/null
sql "DELETE FROM products.images" >/dev/null
sql "DELETE FROM products.visibilities" >/dev/null
echo
echo "one observation end to end: ingest, mpirun --bind-to none -np $eranks contimg run --drain ..."
rm -rf "$work/state/products"
t0=$(now)
"$contimg" ingest "$obs" >/dev/null
mpirun -q --oversubscribe --bind-to none -np "$eranks" "$contimg" run --drain >"$work/full.log" 2>&1 ||
    { tail -20 "$work/full.log"; exit 1; }
wall=$(since "$t0")
sql "SELECT json_agg(json_build_object('name', task_name, 'result', result) ORDER BY seq)
       FROM absurd.tasks WHERE queue_name = 'dsa110-pipeline'" >"$work/full.json"
sql "SELECT row_to_json(i) FROM products.images i LIMIT 1" >"$work/image.json"
python3 - "$work/full.json" "$wall" <<'PY'
import json, sys
tasks = json.load(open(sys.argv[1])); wall = float(sys.argv[2])
conv = next(t["result"] for t in tasks if t["name"] == "convert-uvh5-to-ms")
img = next(t["result"] for t in tasks if t["name"] == "imaging")
tm = img["metrics"]["timings"]
print("  %-34s %8.1f s" % ("convert (16 files -> 1 UVH5)", conv["metrics"]["seconds"]))
parts = ("read", "weights", "grid", "fft", "degrid", "clean", "write")
for k in parts:
    print("  %-34s %8.1f s" % ("imaging: " + k, tm[k]))
print("  %-34s %8.1f s" % ("imaging: PSF (%d px) and the rest" % img["metrics"].get("psf_size", 0),
                          tm["total"] - sum(tm[k] for k in parts)))
print("  %-34s %8.1f s" % ("imaging total", tm["total"]))
print("  %-34s %8.1f s" % ("engine and database (the rest)",
                          wall - conv["metrics"]["seconds"] - img["seconds"]))
print("  %-34s %8.1f s  (%d x %d px of %.2f arcsec, %d visibilities)" % (
    "wall, ingest to registered image", wall, img["metrics"]["nx"], img["metrics"]["ny"],
    img["metrics"]["cell_arcsec"], img["metrics"]["n_vis"]))
print("  real-time factor (309 s cadence): %.2f x; goal >= 5 x (<= 60 s)" % (309.0 / wall))
PY
$peers || exit 0

# The seed's way on the same 16 files: pyuvdata combines them into a Measurement Set
# (phased to contimg's image centre), WSClean images it with the same settings.
venv=$build/imaging-venv py=$venv/bin/python
if ! "$py" -c "import pyuvdata, casacore.tables" 2>/dev/null; then
    echo "making $venv (pyuvdata, python-casacore) ..."
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check ducc0 pyuvdata python-casacore
fi
command -v wsclean >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q wsclean >/dev/null
ra=$(jget "$work/image.json" ra_deg) dec=$(jget "$work/image.json" dec_deg)
nx=$(jget "$work/image.json" nx)
echo
echo "the seed's tools: pyuvdata (16 files -> MS), then WSClean -j $(nproc) ..."
t0=$(now)
"$py" "$here/imaging_peers.py" ms --uvh5 "$obs"/*_sb??.hdf5 --ra "$ra" --dec "$dec" \
    --out "$work/seed.ms" >"$work/seed-ms.json"
t_ms=$(since "$t0")
t1=$(now)
(cd "$work" && wsclean -size "$nx" "$nx" -scale "${cell}asec" -weight briggs "$robust" \
    -niter "$niter" -gain 0.1 -mgain 0.5 -pol I -no-update-model-required -use-wgridder \
    -wgridder-accuracy 1e-4 $([ "$minuv" != 0 ] && echo "-minuv-l $minuv") -j "$(nproc)" \
    -name "$work/seed" "$work/seed.ms" >"$work/seed-ws.log" 2>&1) ||
    { echo "  wsclean failed: see $work/seed-ws.log"; exit 1; }
t_ws=$(since "$t1")
seed=$(awk -v a="$t_ms" -v b="$t_ws" 'BEGIN { printf "%.1f", a + b }')
printf "  %-34s %8.1f s\n" "pyuvdata combine + write MS" "$t_ms" "WSClean image" "$t_ws"
printf "  %-34s %8.1f s\n" "seed total" "$seed"
echo "  contimg / seed: $(awk -v a="$wall" -v b="$seed" 'BEGIN { printf "%.2f", a / b }') (goal <= 0.5)"
