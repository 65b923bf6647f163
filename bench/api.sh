#!/usr/bin/env bash
# bench/api.sh -- `contimg serve` on localhost: spawns and reads over HTTP (wrk, Debian's),
# side by side with the same spawns through the queue's C client directly (bench_queue,
# the path the command line takes), in the same run on the same database.
#
#   bench/api.sh [BUILD_DIR] [--seconds S] [--connections LIST] [--threads N]
#
# For each number of connections C in LIST (default 1,2,4,16): POST /absurd/tasks (a new
# task each, with params) into a queue with the default backpressure limit (1000 waiting)
# and into one without, GET /absurd/tasks/{id} and GET /absurd/health, each for S seconds
# (default 5) with wrk's latency distribution (p50, p99: wrk corrects for coordinated
# omission) and requests per second; then bench_queue's cq_spawn rate with C client
# processes. The server runs with N request threads and as many database connections
# (default 16). A loop removes the spawned tasks every 50 ms, as an engine claiming them
# keeps a queue far below its limit. Goal (issue 16): spawn p99 <= 5 ms and >= 1000
# requests/s on 2 cores. The database: a private cluster in a temporary state directory
# (or CONTIMG_DATABASE_URL), everything on queues named bench-api-PID*, deleted at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build seconds=5 conns=1,2,4,16 threads=16
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "api.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
build=$(cd "$build" && pwd)
contimg=$build/contimg bq=$build/bench/bench_queue
[ -x "$bq" ] || { echo "api.sh: build first ($bq is missing)" >&2; exit 2; }
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing Debian's wrk ..."
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
    else
        echo "api.sh: wrk is missing (apt-get install wrk)" >&2
        exit 2
    fi
fi
tmp=$(mktemp -d)
tag=bench-api-$$ started=false server="" drainer=""
if [ -z "${CONTIMG_DATABASE_URL:-}${ABSURD_DATABASE_URL:-}" ]; then
    export CONTIMG_STATE_DIR=$tmp/state
    mkdir -p "$CONTIMG_STATE_DIR"
    chmod 755 "$tmp" "$CONTIMG_STATE_DIR"
fi
finish() {
    set +e
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    [ -n "$drainer" ] && kill "$drainer" 2>/dev/null && wait "$drainer" 2>/dev/null
    "$bq" --tag "$tag" cleanup >/dev/null 2>&1
    $started && "$contimg" db stop >/dev/null
    rm -rf "$tmp"
}
trap finish EXIT
if [ -n "${CONTIMG_STATE_DIR:-}" ] && ! "$contimg" db status >/dev/null 2>&1; then
    "$contimg" db start >/dev/null
    started=true
fi
"$contimg" db migrate --no-default-schedules >/dev/null
Q=$tag-http
"$contimg" queue create "$Q" >/dev/null
# Backpressure as deployed: the default limit (1000 waiting), each spawn paying for its
# check; and, beside it, a queue without a limit. An engine keeps a queue far below its
# limit by claiming; here one psql session removes the spawned tasks every 50 ms instead
# (far cheaper than claiming, so the server keeps the cores; only tasks older than 20 ms,
# so a spawn's own read-back still finds its task).
"$contimg" queue limit "$Q" 1000 >/dev/null
Q0=$tag-nolimit
"$contimg" queue create "$Q0" >/dev/null
"$contimg" queue limit "$Q0" 0 >/dev/null
dburl=$("$contimg" db url)
(while :; do
    echo "DELETE FROM absurd.tasks WHERE queue_name IN ('$Q', '$Q0') AND task_name = 'bench'
            AND created_at < now() - interval '20 milliseconds'; SELECT pg_sleep(0.05);"
done | psql -XAtq "$dburl" >/dev/null 2>&1) &
drainer=$!
export ABSURD_QUEUE_NAME=$Q CONTIMG_API_TOKEN=bench-$$
"$contimg" serve --listen 127.0.0.1:0 --threads "$threads" >"$tmp/serve.out" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$tmp/serve.out" && break; sleep 0.05; done
port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$tmp/serve.out")
[ -n "$port" ] || { echo "api.sh: the server did not start: $(cat "$tmp/serve.out")" >&2; exit 1; }
B=http://127.0.0.1:$port
for which in limit nolimit; do
    queue=$Q
    [ $which = nolimit ] && queue=$Q0
    cat >"$tmp/spawn-$which.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"task_name": "bench", "queue_name": "$queue", "params": {"inputs": {"group_id": "2026-12-07T00:00:00"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $CONTIMG_API_TOKEN"
LUA
done
id=$(curl -s -X POST -H "Authorization: Bearer $CONTIMG_API_TOKEN" \
    --data-binary '{"task_name": "probe"}' "$B/absurd/tasks" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["task_id"])')

# wrk_run C PATH [SCRIPT]: "p50_ms p99_ms requests_per_s"
wrk_run() {
    local c=$1 path=$2 script=${3:-}
    wrk -t"$((c < 2 ? 1 : 2))" -c"$c" -d"${seconds}s" --latency ${script:+-s "$script"} "$B$path" \
        >"$tmp/wrk.out" 2>&1
    python3 - "$tmp/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(pct):
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, t, re.M)
    v, u = float(m.group(1)), m.group(2)
    return v / 1000 if u == "us" else v * 1000 if u == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print("%.2f %.2f %.0f%s" % (ms(50), ms(99), rps, " (%s non-2xx!)" % bad.group(1) if bad else ""))
PY
}

echo "contimg serve on $(nproc) CPUs, $threads request threads, $seconds s per run," \
    "PostgreSQL $(psql -XAtc 'SHOW server_version' "$("$contimg" db url)" | cut -d' ' -f1)"
printf "  %-5s %-28s %10s %10s %12s\n" conns what "p50 ms" "p99 ms" "requests/s"
for c in ${conns//,/ }; do
    read -r p50 p99 rps rest < <(wrk_run "$c" /absurd/tasks "$tmp/spawn-limit.lua")
    printf "  %-5s %-28s %10s %10s %12s %s\n" "$c" "spawn, limit 1000" "$p50" "$p99" \
        "$rps" "$rest"
    read -r p50 p99 rps rest < <(wrk_run "$c" /absurd/tasks "$tmp/spawn-nolimit.lua")
    printf "  %-5s %-28s %10s %10s %12s %s\n" "$c" "spawn, no limit" "$p50" "$p99" \
        "$rps" "$rest"
    read -r p50 p99 rps rest < <(wrk_run "$c" "/absurd/tasks/$id")
    printf "  %-5s %-28s %10s %10s %12s %s\n" "$c" "GET /absurd/tasks/{id}" "$p50" "$p99" "$rps" \
        "$rest"
    read -r p50 p99 rps rest < <(wrk_run "$c" /absurd/health)
    printf "  %-5s %-28s %10s %10s %12s %s\n" "$c" "GET /absurd/health" "$p50" "$p99" "$rps" \
        "$rest"
    direct=$("$bq" --tag "$tag-c$c" --seconds "$seconds" --clients "$c" spawn 2>&1 |
        sed -n 's/.*cq_spawn (1 per call) *\([0-9]*\) tasks\/s.*/\1/p')
    printf "  %-5s %-28s %10s %10s %12s\n" "$c" "cq_spawn, the C client" "" "" "$direct"
done
echo "goal: spawn p99 <= 5 ms and >= 1000 requests/s"
