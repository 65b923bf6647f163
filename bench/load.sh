#!/usr/bin/env bash
# bench/load.sh [BUILD_DIR] [--tasks N] [--ranks R] [--keep DIR] -- the queue and the engine
# under load (issue 17), on a private PostgreSQL:
#   1. spawning in bulk on a table never analysed: N no-op tasks (default 100,000) in
#      transactions of 10,000, each timed -- linear when the last is as fast as the first --
#      and 20,000 more in a single transaction;
#   2. draining them all with `mpirun -np R contimg run --drain` (default R 3, the default
#      ranks per task): every 5 s the tasks completed and rank 0's resident memory, so the
#      claim rate can be seen to hold as completed rows pile up, and rank 0's memory to
#      stay flat (its peak at the end within 10 % of that after the first tenth).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build ntasks=100000 ranks=3 keep=""
while [ $# -gt 0 ]; do
    case "$1" in
    --tasks) ntasks=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) echo "load.sh: unknown option '$1'" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
[[ "$ntasks" =~ ^[1-9][0-9]*$ ]] || { echo "load.sh: --tasks must be a whole number" >&2; exit 2; }
contimg=$build/contimg
work=${keep:-$(mktemp -d /var/tmp/contimg-bench-load.XXXXXX)}
mkdir -p "$work"
export CONTIMG_STATE_DIR=$work/state OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
munge -n >/dev/null 2>&1 || export PMIX_MCA_psec=${PMIX_MCA_psec:-^munge}
unset CONTIMG_DATABASE_URL ABSURD_DATABASE_URL CONTIMG_CHAINS_FILE
engine=
finish() {
    [ -n "$engine" ] && kill "$engine" 2>/dev/null
    "$contimg" db stop >/dev/null 2>&1 || true
    [ -n "$keep" ] || rm -rf "$work"
}
trap finish EXIT
source "$here/bench_lib.sh"
"$contimg" db start >/dev/null
"$contimg" db migrate --no-default-schedules >/dev/null
url=$("$contimg" db url)
sql() { psql "$url" -XAtq -c "$1"; }
q=dsa110-pipeline
"$contimg" queue create $q >/dev/null
"$contimg" queue limit $q 0 >/dev/null # no backpressure: the load is the point
echo "load benchmark on $(nproc) cores; database $url"

# ---- 1. spawning in bulk -------------------------------------------------------------------
echo
echo "spawning $ntasks no-op tasks, 10,000 per transaction, on a table never analysed:"
printf "  %-12s %10s %12s\n" "tasks so far" "seconds" "tasks/s"
left=$ntasks done_n=0 first="" last=""
while [ "$left" -gt 0 ]; do
    n=$((left < 10000 ? left : 10000))
    t0=$(now)
    sql "SELECT count(*) FROM generate_series(1, $n) g,
                LATERAL absurd.spawn_task('$q', 'noop', jsonb_build_object('i', g))" >/dev/null
    s=$(since "$t0")
    left=$((left - n))
    done_n=$((done_n + n))
    rate=$(calc "%.0f" "$n / $s")
    [ -z "$first" ] && first=$rate
    last=$rate
    printf "  %-12s %10s %12s\n" "$done_n" "$s" "$rate"
done
echo "  the last transaction at $(calc "%.0f" "100 * $last / $first") % of the first's rate"
sql "CREATE DATABASE bulk_one" >/dev/null
oneurl=${url/\/\/\/contimg?/\/\/\/bulk_one?}
CONTIMG_DATABASE_URL=$oneurl "$contimg" db migrate --no-default-schedules >/dev/null
CONTIMG_DATABASE_URL=$oneurl "$contimg" queue create $q >/dev/null
CONTIMG_DATABASE_URL=$oneurl "$contimg" queue limit $q 0 >/dev/null
t0=$(now)
psql "$oneurl" -XAtq -c "SELECT count(*) FROM generate_series(1, 20000) g,
                         LATERAL absurd.spawn_task('$q', 'noop', jsonb_build_object('i', g))" >/dev/null
echo "  20,000 in one transaction on a fresh table: $(since "$t0") s"

# ---- 2. draining them ----------------------------------------------------------------------
echo
echo "draining $ntasks no-op tasks: mpirun -np $ranks contimg run --drain (default ranks per task)"
vacuums() { sql "SELECT autovacuum_count + vacuum_count FROM pg_stat_user_tables
                  WHERE schemaname = 'absurd' AND relname = 'tasks'"; }
vac0=$(vacuums)
mpirun -q --allow-run-as-root --oversubscribe -np "$ranks" "$contimg" run --drain --quiet --json \
    >"$work/drain.json" 2>"$work/drain.err" &
engine=$!
rank0_rss() { # resident kB of rank 0 of this job, or nothing
    local p
    for p in $(pgrep -x -P "$engine" contimg); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=0"; then
            awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null
            return
        fi
    done
}
printf "  %-8s %12s %12s %14s\n" "seconds" "completed" "tasks/s" "rank 0 RSS kB"
t0=$(now) prev=0 prevt=0 rss_tenth="" rss_last="" ts=() cs=()
while kill -0 "$engine" 2>/dev/null; do
    sleep 5
    kill -0 "$engine" 2>/dev/null || break
    t=$(since "$t0")
    c=$(sql "SELECT count(*) FROM absurd.tasks WHERE status = 'completed'")
    r=$(rank0_rss)
    rate=$(calc "%.0f" "($c - $prev) / ($t - $prevt)")
    ts+=("$t") cs+=("$c")
    printf "  %-8s %12s %12s %14s\n" "$t" "$c" "$rate" "${r:--}"
    [ -z "$rss_tenth" ] && [ "$c" -ge $((ntasks / 10)) ] && rss_tenth=$r
    [ -n "$r" ] && rss_last=$r
    prev=$c prevt=$t
done
wait "$engine" || { echo "the drain failed: $(tail -3 "$work/drain.err")" >&2; exit 1; }
engine=
completed=$(jget "$work/drain.json" completed)
secs=$(jget "$work/drain.json" seconds)
peak=$(jget "$work/drain.json" peak_rss_kb)
heap=$(jget "$work/drain.json" heap_bytes)
echo "  drained $completed tasks in $secs s: $(calc "%.0f" "$completed / $secs") tasks/s"
# The claim rate over the first and the last fifth of the samples: flat when the table's
# growing tail of completed rows costs the claim nothing (single 5 s samples are noisy).
n=${#ts[@]}
if [ "$n" -ge 5 ]; then
    k=$((n / 5)) a=$((n - 1 - n / 5))
    first=$(calc "%.0f" "${cs[$((k - 1))]} / ${ts[$((k - 1))]}")
    last=$(calc "%.0f" "(${cs[$((n - 1))]} - ${cs[$a]}) / (${ts[$((n - 1))]} - ${ts[$a]})")
    echo "  claim rate, first fifth / last fifth of the drain: $first / $last tasks/s" \
        "($(calc "%.0f" "100 * $last / $first") %)"
fi
echo "  vacuums of absurd.tasks during the drain: $(($(vacuums) - vac0))"
echo "  rank 0: RSS $rss_tenth kB after the first tenth, $rss_last kB at the last sample," \
    "peak $peak kB; heap in use at the end $heap bytes"
[ -n "$rss_tenth" ] && echo "  peak against the first tenth: $(calc "%+.1f" "100 * ($peak - $rss_tenth) / $rss_tenth") %"
