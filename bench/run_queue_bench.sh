#!/usr/bin/env bash
# run_queue_bench.sh -- the queue benchmark in one command: the C client's
# spawn rates, claim+complete rates and NOTIFY latency (bench_queue), and in
# the same run the raw SQL limit of the same claim+complete (queue_raw.sh,
# pgbench), side by side. See bench/README.md.
#
#   bench/run_queue_bench.sh [BUILD_DIR] [--seconds S] [--clients N]
#                            [--batches 1,10,100] [--json FILE] [--async-commit]
#
# BUILD_DIR holds the built `contimg` and bench/bench_queue (default ./build).
# S: seconds per timed run (default 3; each claim figure is 2 runs). --json
# keeps every measurement as JSON lines in FILE. --async-commit runs every
# session with synchronous_commit=off, so that commit flushes do not hide the
# client's own cost (the figures are then not those of a durable setup).
# The database is the one contimg is configured for: CONTIMG_DATABASE_URL, or
# else the private cluster under CONTIMG_STATE_DIR (default: a fresh temporary
# directory). A private cluster that is not running is started (and migrated)
# here and stopped at the end; one that was already running is left running.
# Everything runs on queues named bench-PID-*, deleted at the end.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=./build seconds=3 clients=1 batches=1,10,100 json_out="" async=false
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --json) json_out=$2; shift 2 ;;
    --async-commit) async=true; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "run_queue_bench.sh: unknown option '$1'" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || {
    echo "run_queue_bench.sh: --seconds must be a whole number (pgbench -T)" >&2; exit 2; }
[[ "$clients" =~ ^[1-9][0-9]*$ ]] || { echo "run_queue_bench.sh: bad --clients" >&2; exit 2; }
[[ "$batches" =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "run_queue_bench.sh: bad --batches" >&2; exit 2; }

contimg=$build/contimg
bq=$build/bench/bench_queue
for f in "$contimg" "$bq"; do
    [ -x "$f" ] || {
        echo "run_queue_bench.sh: $f not found; build first:" \
             "cmake --build $build --target contimg bench_queue" >&2; exit 2; }
done
for t in psql pgbench; do
    command -v "$t" >/dev/null || { echo "run_queue_bench.sh: $t not found" >&2; exit 2; }
done

external=false
[ -n "${CONTIMG_DATABASE_URL:-}${ABSURD_DATABASE_URL:-}" ] && external=true
made_state="" started=false tag=bench-$$
tmp=$(mktemp -d)
if ! $external && [ -z "${CONTIMG_STATE_DIR:-}" ]; then
    made_state=$(mktemp -d /tmp/contimg-bench.XXXXXX)
    chmod 755 "$made_state" # the server may run as another OS user
    export CONTIMG_STATE_DIR=$made_state
fi

finish() {
    local rc=$?
    set +e
    if [ -n "${url:-}" ]; then
        "$bq" --tag "$tag" cleanup >/dev/null 2>&1 ||
            echo "run_queue_bench.sh: could not delete the $tag-* queues" >&2
    fi
    if $started; then
        "$contimg" db stop >/dev/null || echo "run_queue_bench.sh: db stop failed" >&2
    fi
    [ -z "$made_state" ] || rm -rf "$made_state"
    rm -rf "$tmp"
    exit $rc
}
trap finish EXIT
trap 'exit 130' INT TERM

if $async; then
    export PGOPTIONS="${PGOPTIONS:-} -c synchronous_commit=off"
fi
t_start=$(date +%s)
if ! $external; then
    if ! "$contimg" db status >/dev/null 2>&1; then
        "$contimg" db start >/dev/null
        started=true
    fi
    "$contimg" db migrate --no-default-schedules >/dev/null
fi
url=$("$contimg" db url)
results=$tmp/results.jsonl

plural() { [ "$1" = 1 ] || echo s; }
jget() { # jget KEY < one JSON line of bench_queue or queue_raw.sh (flat, no nesting)
    sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}
sync=$(psql -X -A -t -c 'SHOW synchronous_commit' "$url")
echo "contimg queue benchmark: $seconds s per run, $clients client$(plural "$clients")," \
     "$(nproc) CPUs, PostgreSQL $(psql -X -A -t -c 'SHOW server_version' "$url" | cut -d' ' -f1)" \
     "(synchronous_commit=$sync), database $url"
echo
common=(--json --keep --tag "$tag" --seconds "$seconds" --clients "$clients")
"$bq" "${common[@]}" spawn latency >>"$results"

# Claim + complete: one pool of tasks per row, drained in turn by the client
# and by pgbench in the order client, raw, raw, client, each run preceded by a
# top-up of the pool, VACUUM ANALYZE and CHECKPOINT; a drift in the machine's
# speed then hits both sides alike, and both work on the same tasks.
IFS=, read -r -a batch_list <<<"$batches"
rows=()
for b in "${batch_list[@]}"; do
    rows+=("$b many cq_complete_many complete_tasks")
    [ "$b" != 1 ] || rows+=("1 one cq_complete complete_task")
done
for row in "${rows[@]}"; do
    read -r b mode _ _ <<<"$row"
    q=$tag-b$b-$mode
    echo >&2
    rate=0 # before each run the pool is topped up for the fastest rate seen so far
    for side in client raw raw client; do
        "$bq" "${common[@]}" --queue "$q" --batches "$b" --complete "$mode" --rate "$rate" pool
        if [ "$side" = client ]; then
            "$bq" "${common[@]}" --queue "$q" --batches "$b" --complete "$mode" claim
        else
            "$here/queue_raw.sh" --pool --url "$url" --queue "$q" --batch "$b" --mode "$mode" \
                --seconds "$seconds" --clients "$clients"
        fi >"$tmp/last"
        cat "$tmp/last" >>"$results"
        rate=$(jget tasks_per_sec <"$tmp/last" | awk -v r="$rate" '{ print ($1 > r ? $1 : r) }')
    done
done
[ -z "$json_out" ] || cp "$results" "$json_out"

# --- The summary ---------------------------------------------------------------
total() { # total MEASURE BATCH COMPLETE -> "tasks/s dry" over every run of that row
    grep "\"measure\":\"$1\"" "$results" | grep "\"batch\":$2," | grep "\"complete\":\"$3\"" |
        awk '{
            t = $0; sub(/.*"tasks":/, "", t); sub(/,.*/, "", t)
            s = $0; sub(/.*"seconds":/, "", s); sub(/,.*/, "", s)
            tasks += t; secs += s; n++
            if ($0 ~ /"dry":true/) dry = 1
        } END { if (n && secs > 0) printf "%.0f %d %d\n", tasks / secs, dry, n; else print "- 0 0" }'
}
mean_of() { # mean_of FIELD MEASURE BATCH COMPLETE -> the mean of FIELD over the row's runs
    grep "\"measure\":\"$2\"" "$results" | grep "\"batch\":$3," | grep "\"complete\":\"$4\"" |
        awk -v f="\"$1\":" '{ v = $0; sub(".*" f, "", v); sub(/,.*/, "", v); sum += v; n++ }
            END { if (n) printf "%.2f", sum / n; else print "-" }'
}

echo
echo "claim + complete, tasks/s ($clients client$(plural "$clients"); each figure: 2 runs of" \
     "$seconds s on a shared pool, order client-raw-raw-client;" \
     "raw = pgbench -M prepared, same SQL)"
printf '%6s  %-34s %15s %16s %11s\n' batch "completed with (client / raw)" "client tasks/s" \
    "raw SQL tasks/s" "client/raw"
goal=met short=""
any_dry=false
for row in "${rows[@]}"; do
    read -r b mode cc rc <<<"$row"
    read -r c cdry _ < <(total claim "$b" "$cc")
    read -r r rdry _ < <(total raw "$b" "$rc")
    pct=$(awk -v c="$c" -v r="$r" 'BEGIN { if (r > 0) printf "%.0f", 100 * c / r; else print "-" }')
    [ "$cdry$rdry" = 00 ] || any_dry=true
    printf '%6s  %-34s %15s %16s %10s%%\n' "$b" "$cc / $rc" "$c$([ "$cdry" = 0 ] || echo '*')" \
        "$r$([ "$rdry" = 0 ] || echo '*')" "$pct"
    if [ "$pct" = - ] || [ "$pct" -lt 80 ]; then
        goal="NOT met"
        short="$short $b$([ "$mode" = many ] || echo " ($cc)")"
    fi
done
$any_dry && echo "        * a run found its queue empty before the deadline; its rate is over the time it lasted"
echo
echo "where a round's time goes: mean ms per call (a round is one claim and its completion)"
printf '%6s  %-18s %14s %9s %12s %9s\n' batch "completed with" "client: claim" complete \
    "raw: claim" complete
for row in "${rows[@]}"; do
    read -r b mode cc rc <<<"$row"
    printf '%6s  %-18s %14s %9s %12s %9s\n' "$b" "$cc" "$(mean_of claim_ms claim "$b" "$cc")" \
        "$(mean_of complete_ms claim "$b" "$cc")" "$(mean_of claim_ms raw "$b" "$rc")" \
        "$(mean_of complete_ms raw "$b" "$rc")"
done
echo
sp=$(grep '"call":"cq_spawn"' "$results" | head -n 1)
sm=$(grep '"call":"cq_spawn_many"' "$results" | head -n 1)
printf 'spawn rate:   cq_spawn %.0f tasks/s (one task per call); cq_spawn_many %.0f tasks/s (%s per call)\n' \
    "$(jget tasks_per_sec <<<"$sp")" "$(jget tasks_per_sec <<<"$sm")" "$(jget batch <<<"$sm")"
lat=$(grep '"measure":"latency"' "$results")
printf 'NOTIFY spawn-to-claim latency: p50 %.2f ms, p99 %.2f ms (max %.2f ms; %s samples, one spawn every %.0f ms)\n' \
    "$(jget p50_ms <<<"$lat")" "$(jget p99_ms <<<"$lat")" "$(jget max_ms <<<"$lat")" \
    "$(jget samples <<<"$lat")" "$(jget interval_ms <<<"$lat")"
echo
if [ "$goal" = met ]; then
    echo "goal: client >= 80% of the raw SQL rate at every batch size: met"
else
    echo "goal: client >= 80% of the raw SQL rate at every batch size: NOT met at batch$short"
fi
echo "total time: $(( $(date +%s) - t_start )) s"
