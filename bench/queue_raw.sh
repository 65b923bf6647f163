#!/usr/bin/env bash
# queue_raw.sh -- the raw SQL limit of claim+complete: the same two statements
# bench_queue sends through the C client (claim_tasks, then complete_tasks or
# complete_task), driven by pgbench -M prepared with no client library.
#
#   queue_raw.sh --url URL --queue Q --batch B [--mode many|one]
#                [--seconds S] [--clients N] [--pool]
#
# Each run: VACUUM ANALYZE absurd.tasks and CHECKPOINT (as bench_queue does
# before its runs), then pgbench -M prepared for S seconds with N clients (one
# connection and one thread each). A client whose queue runs dry stops early
# (see queue_raw_many.sql). The rate is the tasks actually completed (counted
# in the database) over the time pgbench ran; pgbench -r gives the mean
# latency of each of the two statements.
#
# With --pool, Q already holds the tasks: run_queue_bench.sh has bench_queue
# and pgbench drain one pool in turn, so both sides work on the same tasks.
# Without it, Q is created here, warmed up on a small pool, and filled to the
# warm-up rate times S with half again to spare. Tasks are spawned with SQL
# (absurd.spawn_task), 1000 per transaction like bench_queue's cq_spawn_many
# pools: tasks of one transaction share created_at, the claim order among them
# is task_id (a random UUID), and that decides how scattered a claimed batch
# is on disk, so both sides must build their pools the same way.
#
# Prints one line of progress on stderr and one JSON object on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
url="" queue="" batch="" mode=many seconds=5 clients=1 pool=false
while [ $# -gt 0 ]; do
    case "$1" in
    --url) url=$2; shift 2 ;;
    --queue) queue=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --pool) pool=true; shift ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "queue_raw.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if [ -z "$url" ] || [ -z "$queue" ] || [ -z "$batch" ]; then
    echo "queue_raw.sh: --url, --queue and --batch are required" >&2
    exit 2
fi
[[ "$batch" =~ ^[1-9][0-9]*$ ]] || { echo "queue_raw.sh: bad --batch" >&2; exit 2; }
[[ "$clients" =~ ^[1-9][0-9]*$ ]] || { echo "queue_raw.sh: bad --clients" >&2; exit 2; }
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || {
    echo "queue_raw.sh: --seconds must be a whole number (pgbench -T)" >&2; exit 2; }
case "$mode" in
many) script=$here/queue_raw_many.sql ;;
one) script=$here/queue_raw_one.sql; [ "$batch" = 1 ] || {
        echo "queue_raw.sh: --mode one is for batch 1" >&2; exit 2; } ;;
*) echo "queue_raw.sh: --mode is many or one" >&2; exit 2 ;;
esac

sql() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$url" "$@"; }
spawn() { # spawn N tasks into the queue, 1000 per transaction (as bench_queue does)
    local n=$1 k
    while [ "$n" -gt 0 ]; do
        k=$(( n < 1000 ? n : 1000 ))
        echo "SELECT count(*) FROM (SELECT absurd.spawn_task(:'q', 'bench')
              FROM generate_series(1, $k)) s;"
        n=$(( n - k ))
    done | sql -v q="$queue" >/dev/null
}
count() { # tasks of the queue in status $1
    sql -v q="$queue" -v st="$1" <<'EOF'
SELECT count(*) FROM absurd.tasks WHERE queue_name = :'q' AND status = :'st';
EOF
}
run_pgbench() { # run_pgbench OUTFILE PGBENCH-ARGS...; 0, or 2 when a client ran dry
    local out=$1 rc=0
    shift
    pgbench -n -M prepared -c "$clients" -j "$clients" -f "$script" \
        -D q="$queue" -D batch="$batch" "$@" "$url" >"$out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] && ! { [ "$rc" -eq 2 ] && grep -q 'expected one row, got 0' "$out"; }; then
        echo "queue_raw.sh: pgbench failed (exit $rc):" >&2
        cat "$out" >&2
        exit 1
    fi
    return 0
}
field() { # field FILE 'regex with one group'
    sed -n "s/$2/\1/p" "$1" | head -n 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! $pool; then
    sql -v q="$queue" >/dev/null <<'EOF'
SELECT absurd.create_queue(:'q');
EOF
    # Warm-up on a small pool: half of it, so it cannot run dry.
    size=$(( 200 * batch * clients ))
    [ "$size" -ge 1000 ] || size=1000
    spawn "$size"
    per_client=$(( size / (2 * batch * clients) ))
    [ "$per_client" -ge 1 ] || per_client=1
    run_pgbench "$tmp/warm" -t "$per_client"
    tps=$(field "$tmp/warm" '^tps = \([0-9.]*\) .*')
    want=$(awk -v t="$tps" -v b="$batch" -v s="$seconds" -v c="$clients" \
        'BEGIN { printf "%d", t * b * s * 1.5 + 2 * b * c }')
    pending=$(count pending)
    [ "$want" -le "$pending" ] || spawn $(( want - pending ))
fi
sql -c 'VACUUM (ANALYZE) absurd.tasks'
sql -c 'CHECKPOINT' 2>/dev/null || true # as bench_queue: same full-page-write debt

before=$(count completed)
run_pgbench "$tmp/run" -r -T "$seconds"
after=$(count completed)
txns=$(field "$tmp/run" '^number of transactions actually processed: \([0-9]*\).*')
tps=$(field "$tmp/run" '^tps = \([0-9.]*\) .*')
dry=false
grep -q 'expected one row, got 0' "$tmp/run" && dry=true
tasks=$(( after - before ))
# pgbench -r: mean latency of each statement (claim, then complete), in ms
read -r claim_ms complete_ms < <(sed -n '/^statement latencies/,$p' "$tmp/run" |
    awk 'NR > 1 && $1 ~ /^[0-9.]+$/ { v[n++] = $1 } END { printf "%s %s\n", v[0] + 0, v[1] + 0 }')
read -r elapsed rate < <(awk -v n="$txns" -v t="$tps" -v k="$tasks" \
    'BEGIN { e = (t > 0 ? n / t : 0); printf "%.3f %.1f\n", e, (e > 0 ? k / e : 0) }')
complete=$([ "$mode" = one ] && echo complete_task || echo complete_tasks)

printf 'raw      batch %-3s + %-16s     %9.0f tasks/s  (%s tasks, %s s, %s client%s%s; per round: claim %.3f ms, complete %.3f ms)\n' \
    "$batch" "$complete" "$rate" "$tasks" "$elapsed" "$clients" \
    "$([ "$clients" = 1 ] || echo s)" "$([ "$dry" = false ] || echo ', queue ran dry')" \
    "$claim_ms" "$complete_ms" >&2
printf '{"measure":"raw","batch":%s,"complete":"%s","clients":%s,"tasks":%s,"seconds":%s,"tasks_per_sec":%s,"dry":%s,"claim_ms":%s,"complete_ms":%s,"queue":"%s"}\n' \
    "$batch" "$complete" "$clients" "$tasks" "$elapsed" "$rate" "$dry" "$claim_ms" "$complete_ms" "$queue"
