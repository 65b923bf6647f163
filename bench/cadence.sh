#!/usr/bin/env bash
# bench/cadence.sh -- observations ingested at DSA-110's real cadence while one engine runs.
#
#   bench/cadence.sh [BUILD_DIR] [--observations N] [--cadence SECONDS] [--keep DIR]
#
# N full-size observations (default 3; 96 antennas, 768 channels, 24 integrations) are
# simulated first, then handed to `contimg ingest` CADENCE seconds apart (default 309, one
# observation's length) while `mpirun --bind-to none -np 2 contimg run` (one worker whose
# threads use every core) converts and images each at the production geometry (4800 x 4800
# px of 3 arcsec, Briggs 0.5, min uv 1000 lambda, niter 1000). Every 10 s the queue's depth
# (tasks pending or claimed) and the images made are logged; at the end, each task's
# times and the seconds from ingest to its image. Issue 12's goal: the queue does not grow
# (every image is made before the next observation arrives). A private PostgreSQL under the
# work directory is started and stopped here.
set -u
here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build nobs=3 cadence=309 keep=""
while [ $# -gt 0 ]; do
    case $1 in
    --observations) nobs=$2; shift 2 ;;
    --cadence) cadence=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "cadence.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
[[ "$nobs" =~ ^[1-9][0-9]*$ && "$cadence" =~ ^[1-9][0-9]*$ ]] ||
    { echo "cadence.sh: --observations and --cadence take whole numbers" >&2; exit 2; }
B=$build/contimg
W=${keep:-$(mktemp -d /var/tmp/contimg-bench-cadence.XXXXXX)}
rm -rf "$W/incoming" "$W/state"
mkdir -p "$W/incoming"
export CONTIMG_STATE_DIR=$W/state OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
munge -n >/dev/null 2>&1 || export PMIX_MCA_psec=${PMIX_MCA_psec:-^munge}
unset CONTIMG_DATABASE_URL ABSURD_DATABASE_URL
finish() {
    "$B" db stop >/dev/null 2>&1 || true
    [ -n "$keep" ] || rm -rf "$W"
}
trap finish EXIT
"$B" db start >/dev/null && "$B" db migrate --no-default-schedules >/dev/null || exit 1
url=$("$B" db url)
cat >"$W/chains.json" <<J
{"quick": ["convert-uvh5-to-ms",
           {"task": "imaging", "config": {"size": 4800, "cell_arcsec": 3, "weight": "briggs",
            "robust": 0.5, "niter": 1000, "min_uv_lambda": 1000}}]}
J
export CONTIMG_CHAINS_FILE=$W/chains.json
echo "simulating $nobs observations ..."
for ((k = 0; k < nobs; k++)); do
    start=$(date -u -d "2026-11-22T10:00:00Z + $((k * cadence)) seconds" +%Y-%m-%dT%H:%M:%S)
    [ -d "$W/sim$k" ] || "$B" simulate --out "$W/sim$k" --start "$start" --dec 55 --noise-jy 0.5 >/dev/null
done
mpirun -q --oversubscribe --bind-to none -np 2 "$B" run --quiet >"$W/engine.log" 2>&1 &
eng=$!
t0=$(date +%s)
q="SELECT count(*) FILTER (WHERE status IN ('pending', 'claimed')) || ' ' ||
          count(*) FILTER (WHERE status = 'completed' AND task_name = 'imaging') FROM absurd.tasks"
(while true; do echo "$(($(date +%s) - t0)) $(psql "$url" -XAtq -c "$q" 2>/dev/null)"; sleep 10; done) \
    >"$W/depth.log" &
mon=$!
for ((k = 0; k < nobs; k++)); do
    target=$((t0 + cadence * k)) now=$(date +%s)
    [ "$now" -lt "$target" ] && sleep $((target - now))
    cp -r "$W/sim$k/." "$W/incoming/"
    "$B" ingest "$W/incoming" >/dev/null
    echo "  observation $k ingested at $(($(date +%s) - t0)) s"
done
for _ in $(seq 1 120); do
    c=$(psql "$url" -XAtq -c "SELECT count(*) FROM absurd.tasks WHERE task_name = 'imaging' AND status = 'completed'")
    [ "$c" -ge "$nobs" ] && break
    sleep 5
done
kill -TERM "$eng"; wait "$eng"; kill "$mon"
echo "queue depth (tasks pending or claimed) and images made, every 10 s:"
awk '{ d = ($2 > d) ? $2 : d } END { print "  the deepest the queue got: " d " task(s)" }' "$W/depth.log"
echo "each observation, ingest to registered image:"
psql "$url" -XAtq -F ' ' -c "
  SELECT '  ' || (c.params->'inputs'->>'group_id'), round(extract(epoch FROM i.completed_at - c.created_at)::numeric, 1) || ' s'
    FROM absurd.tasks c JOIN absurd.tasks i ON i.task_name = 'imaging' AND i.status = 'completed'
     AND i.params->'inputs'->>'group_id' = c.params->'inputs'->>'group_id'
   WHERE c.task_name = 'convert-uvh5-to-ms' ORDER BY c.created_at"
echo "images made: $c of $nobs"
[ "$c" -ge "$nobs" ]
