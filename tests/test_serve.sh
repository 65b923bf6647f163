#!/usr/bin/env bash
# test_serve.sh -- `contimg serve` against the test database, through curl, promtool and a
# real Prometheus (Debian's).
#
#   bash tests/test_serve.sh /path/to/contimg
#
# 1. Every route's answer and its shape (docs/api.md): spawn (201, then 200 and the same
#    task for a taken idempotency key), show, list with filters and the total, cancel,
#    retry, queue stats, health; the rows in absurd.tasks are what the answers say.
# 2. Refusals, each a JSON body: no token or another token 401, a server without one 403,
#    bad JSON and unknown keys 400, unknown tasks, queues and routes 404, a route's wrong
#    method 405, a change the task's state does not allow 409.
# 3. 50 clients at once, each key spawned twice: 50 tasks, none lost, none twice.
#    Workflows: a DAG spawned in one transaction, its dependencies by key; a bad graph
#    spawns nothing. Schedules: two servers and two CLI tickers, three due times: three
#    tasks.
#    Backpressure: 20 clients race for the last place under a limit of 1000: one gets it,
#    19 get 503 (queue_full, Retry-After); the CLI exits 6; the engine's own spawns still go
#    in; ingest into a full queue waits, and spawns once there is room.
# 4. /metrics: `promtool check metrics` passes, the depth and counts are the table's; the
#    alert rules pass `promtool check rules` and `promtool test rules`; the Grafana
#    dashboard's queries parse and ask only for exported metrics; Prometheus scrapes the
#    server and a query returns the queue's series.
# 5. SIGTERM stops the server, exit 0.
set -u
CONTIMG=${1:?usage: test_serve.sh CONTIMG}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
T=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
# shellcheck source=tests/cli_lib.sh
. "$HERE/cli_lib.sh"
URL=$("$CONTIMG" db url)
Q=servetest-$$
export ABSURD_QUEUE_NAME=$Q
run "register the queue" "$CONTIMG" queue create "$Q"

# start NAME [ENV...]: a server on a free port; sets PORT (and appends to pids)
start() {
    local name=$1
    shift
    env "$@" "$CONTIMG" serve --listen 127.0.0.1:0 --threads 4 --tick 0.2 >"$T/$name.out" \
        2>"$T/$name.err" &
    pids+=($!)
    PID=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$T/$name.out" 2>/dev/null && break
        sleep 0.05
    done
    PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$T/$name.out")
    [ -n "$PORT" ] || bad "serve $name did not start: $(cat "$T/$name.err")"
}
start main CONTIMG_API_TOKEN=s3cret-token
B=http://127.0.0.1:$PORT MAIN_PID=$PID
AUTH="Authorization: Bearer s3cret-token"
# call METHOD PATH [BODY] [CURL-ARGS...]: the body to $T/body, the status echoed
call() {
    local m=$1 p=$2 body=${3:-}
    shift 3 2>/dev/null || shift $#
    curl -s -o "$T/body" -w '%{http_code}' -X "$m" "$@" ${body:+--data-binary "$body"} "$B$p"
}
# check DESCRIPTION STATUS PYTHON-ASSERTIONS: the last call's status and its body (as j)
check() {
    local what=$1 want=$2 code=$3 got=$4
    if [ "$got" != "$want" ]; then
        bad "$what: HTTP $got (wanted $want): $(head -c 300 "$T/body")"
        return
    fi
    if "$PY" - "$T/body" "$code" <<'PY'; then ok "$what (HTTP $got)"; else bad "$what: $(head -c 300 "$T/body")"; fi
import json, sys
j = json.load(open(sys.argv[1]))
exec(sys.argv[2])
PY
}

# ---- 1. the routes ---------------------------------------------------------------------
s=$(call GET /absurd/health)
check "health: healthy, enabled, the queue" 200 \
    "assert j == {'status': 'healthy', 'enabled': True, 'queue': '$Q', 'database': 'up'}, j" "$s"
s=$(call POST /absurd/tasks '{"task_name": "noop", "params": {"inputs": {"x": 1}}, "priority": 7,
    "idempotency_key": "one"}' -H "$AUTH")
check "spawn: 201 {task_id, status, queue_name, task_name, created_at}" 201 "
assert set(j) >= {'task_id', 'status', 'queue_name', 'task_name', 'created_at'}, j
assert j['status'] == 'pending' and j['queue_name'] == '$Q' and j['task_name'] == 'noop', j
assert j['created_at'].endswith('Z') and j['created'] is True, j" "$s"
ID=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["task_id"])' "$T/body")
same "the row: the params, the priority, the key" '{"inputs": {"x": 1}}|7|one|pending' \
    "$(q "SELECT params::text || '|' || priority || '|' || idempotency_key || '|' || status
            FROM absurd.tasks WHERE task_id = '$ID'")"
s=$(call POST /absurd/tasks '{"task_name": "noop", "idempotency_key": "one"}' -H "$AUTH")
check "the same key again: 200, the same task" 200 \
    "assert j['task_id'] == '$ID' and j['created'] is False, j" "$s"
s=$(call GET "/absurd/tasks/$ID")
check "show: the task with its times, no claim token" 200 "
assert j['task_id'] == '$ID' and j['params'] == {'inputs': {'x': 1}}, j
for k in ('result', 'created_at', 'claimed_at', 'completed_at', 'wait_time_sec',
          'execution_time_sec'):
    assert k in j, k
assert 'claim_token' not in j, j" "$s"
"$CONTIMG" task claim --worker w1 --json >"$T/claim.json" || bad "claim"
TOKEN=$("$PY" -c 'import json,sys; t = json.load(open(sys.argv[1])); t = t[0] if isinstance(t, list) else t; print(t["claim_token"])' "$T/claim.json")
"$CONTIMG" task complete "$ID" --token "$TOKEN" --result '{"status": "success"}' >/dev/null ||
    bad "complete"
s=$(call GET "/absurd/tasks/$ID")
check "show after completion: claimed_at, completed_at, wait and execution times, the result" \
    200 "
assert j['status'] == 'completed' and j['result'] == {'status': 'success'}, j
assert j['claimed_at'] and j['completed_at'], j
assert j['wait_time_sec'] >= 0 and j['execution_time_sec'] >= 0, j" "$s"
for i in 1 2 3; do
    call POST /absurd/tasks "{\"task_name\": \"other\", \"params\": {\"i\": $i}}" -H "$AUTH" \
        >/dev/null
done
s=$(call GET "/absurd/tasks?queue_name=$Q&task_name=other&limit=2")
check "list: a page of 2, the total 3" 200 "
assert j['total'] == 3 and len(j['tasks']) == 2, j
assert all(t['task_name'] == 'other' for t in j['tasks']), j" "$s"
s=$(call GET "/absurd/tasks?queue_name=$Q&status=completed")
check "list by status: the one completed" 200 \
    "assert j['total'] == 1 and j['tasks'][0]['task_id'] == '$ID', j" "$s"
OTHER=$(q "SELECT task_id FROM absurd.tasks WHERE queue_name = '$Q' AND task_name = 'other'
            ORDER BY seq LIMIT 1")
s=$(call DELETE "/absurd/tasks/$OTHER?reason=operator+test" "" -H "$AUTH")
check "cancel: the task, cancelled, the reason kept" 200 \
    "assert j['status'] == 'cancelled' and j['error'] == 'operator test', j" "$s"
s=$(call POST "/absurd/tasks/$OTHER/retry" "" -H "$AUTH")
check "retry: pending again" 200 "assert j['status'] == 'pending', j" "$s"
s=$(call GET "/absurd/queues/$Q/stats")
check "queue stats: the table's counts" 200 "
want = dict(zip(('pending', 'completed', 'total'), map(int, '$(q "SELECT count(*) FILTER (WHERE status = 'pending') || ' ' || count(*) FILTER (WHERE status = 'completed') || ' ' || count(*) FROM absurd.tasks WHERE queue_name = '$Q'")'.split())))
assert j['queue_name'] == '$Q', j
assert all(j[k] == v for k, v in want.items()), (j, want)
assert set(j) >= {'claimed', 'failed', 'cancelled', 'retrying'}, j" "$s"

# ---- 2. refusals -----------------------------------------------------------------------
s=$(call POST /absurd/tasks '{"task_name": "noop"}')
check "no token: 401" 401 "assert j['code'] == 'unauthorized', j" "$s"
s=$(call POST /absurd/tasks '{"task_name": "noop"}' -H "Authorization: Bearer s3cret-tokeN")
check "another token: 401" 401 "assert j['code'] == 'unauthorized', j" "$s"
s=$(call DELETE "/absurd/tasks/$ID" "")
check "cancel without a token: 401" 401 "assert 'error' in j, j" "$s"
s=$(call DELETE "/absurd/tasks/$ID" "" -H "$AUTH")
check "cancel a completed task: 409" 409 "assert j['code'] == 'invalid_state', j" "$s"
s=$(call POST /absurd/tasks '{"task_name": ' -H "$AUTH")
check "bad JSON: 400" 400 "assert j['code'] == 'bad_json', j" "$s"
s=$(call POST /absurd/tasks '{"task_name": "noop", "priorty": 3}' -H "$AUTH")
check "an unknown key: 400, named" 400 "assert 'priorty' in j['error'], j" "$s"
s=$(call POST /absurd/tasks '{"params": {}}' -H "$AUTH")
check "no task_name: 400" 400 "assert 'task_name' in j['error'], j" "$s"
s=$(call POST /absurd/tasks '{"task_name": "noop", "queue_name": "no-such-queue"}' -H "$AUTH")
check "an unknown queue: 404" 404 "assert j['code'] == 'unknown_queue', j" "$s"
s=$(call GET /absurd/tasks/00000000-0000-4000-8000-000000000000)
check "an unknown task: 404" 404 "assert j['code'] == 'not_found', j" "$s"
s=$(call GET /absurd/tasks/not-a-uuid)
check "not a task id: 404" 404 "assert 'error' in j, j" "$s"
s=$(call GET /absurd/queues/no-such-queue/stats)
check "stats of an unknown queue: 404" 404 "assert j['code'] == 'unknown_queue', j" "$s"
s=$(call GET /absurd/nothing)
check "an unknown route: 404" 404 "assert 'no such endpoint' in j['error'], j" "$s"
s=$(call PUT /absurd/tasks "" -H "$AUTH")
check "a route's wrong method: 405" 405 "assert j['code'] == 'method_not_allowed', j" "$s"
s=$(head -c 2000000 /dev/zero | tr '\0' ' ' >"$T/big"; call POST /absurd/tasks "@$T/big" -H "$AUTH")
check "a body over 1 MiB: 413" 413 "assert 'too large' in j['error'], j" "$s"
s=$(call GET "/absurd/tasks?limit=0")
check "a limit out of range: 400" 400 "assert 'limit' in j['error'], j" "$s"
start readonly
RO=$PORT
s=$(B=http://127.0.0.1:$RO call POST /absurd/tasks '{"task_name": "noop"}' -H "$AUTH")
check "a server without CONTIMG_API_TOKEN refuses changes: 403" 403 \
    "assert 'CONTIMG_API_TOKEN' in j['error'], j" "$s"

# ---- 2b. the seed's params: translated, or refused at spawn --------------------------------
# params_of ID: the task's params as stored
params_of() { q "SELECT params FROM absurd.tasks WHERE task_id = '$1'"; }
s=$(call POST /absurd/tasks '{"task_name": "imaging",
    "params": {"inputs": {"ms_path": "/data/2026-12-01T10:00:00.hdf5"}}}' -H "$AUTH")
check "imaging with the seed's ms_path: 201" 201 "assert j['task_name'] == 'imaging', j" "$s"
ID=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["task_id"])' "$T/body")
"$PY" - "$(params_of "$ID")" <<'PY' && ok "translated: vis_path, the group from the name, the images planned" || bad "imaging params: $(params_of "$ID")"
import json, sys
p = json.loads(sys.argv[1])
assert p['inputs'] == {'vis_path': '/data/2026-12-01T10:00:00.hdf5',
                       'group_id': '2026-12-01T10:00:00'}, p
assert p['outputs']['image_prefix'].endswith('/images/2026-12-01T10:00:00'), p
PY
before=$(q "SELECT count(*) FROM absurd.tasks WHERE queue_name = '$Q'")
# refused BODY DESCRIPTION ASSERTIONS: the spawn answers 400 and its body passes
refused() {
    local s
    s=$(call POST /absurd/tasks "$1" -H "$AUTH")
    check "$2" 400 "$3" "$s"
}
refused '{"task_name": "imaging", "params": {"inputs": {"ms_path": "/data/obs.hdf5"}}}' \
    "imaging of a file not named by its time and no group_id: 400, the key named" \
    "assert j['code'] == 'invalid_argument' and 'params.inputs.group_id is missing' in j['error'], j"
mkdir -p "$T/2026-12-01T10:05:00.ms"
refused "{\"task_name\": \"imaging\", \"params\": {\"inputs\": {\"ms_path\": \"$T/2026-12-01T10:05:00.ms\"}}}" \
    "imaging of a CASA Measurement Set (a directory): 400, said so" \
    "assert 'Measurement Set' in j['error'], j"
refused '{"task_name": "flag-rfi", "params": {"inputs": {"group_id": "last night", "vis_path": "/v.hdf5"}}}' \
    "a group id that is not a time stamp: 400 (the products tables would refuse it)" \
    "assert 'YYYY-MM-DDTHH:MM:SS' in j['error'], j"
refused '{"task_name": "create-mosaic", "params": {"inputs": {"mosaic_id": "m1"}}}' \
    "create-mosaic without images: 400" "assert 'inputs.images[]' in j['error'], j"
# The seed's convert: a directory and a window, made the one complete group inside it.
mkdir -p "$T/incoming"
for sb in $(seq -w 0 15); do
    : >"$T/incoming/2026-12-01T10:00:0$((10#$sb % 3))_sb$sb.hdf5"
    : >"$T/incoming/2026-12-01T10:05:00_sb$sb.hdf5"
done
rm "$T/incoming/2026-12-01T10:05:00_sb07.hdf5"
seed_convert() {
    echo "{\"task_name\": \"convert-uvh5-to-ms\", \"params\": {\"inputs\": {\"input_path\": \"$T/incoming\", \"start_time\": \"$1\", \"end_time\": \"$2\"}}}"
}
s=$(call POST /absurd/tasks "$(seed_convert 2026-12-01T09:59:00 2026-12-01T10:10:00Z)" -H "$AUTH")
check "convert with the seed's window: 201 (one complete group in it; the other lacks sb07)" \
    201 "assert j['task_name'] == 'convert-uvh5-to-ms', j" "$s"
ID=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["task_id"])' "$T/body")
"$PY" - "$(params_of "$ID")" "$T/incoming" <<'PY' && ok "translated: the group, its 16 files in subband order, the file planned, the seed's inputs kept" || bad "convert params: $(params_of "$ID")"
import json, sys
p, d = json.loads(sys.argv[1]), sys.argv[2]
assert p['inputs']['group_id'] == '2026-12-01T10:00:00', p
assert p['inputs']['files'] == ['%s/2026-12-01T10:00:0%d_sb%02d.hdf5' % (d, s % 3, s)
                                for s in range(16)], p['inputs']['files']
assert p['outputs']['vis_path'].endswith('/vis/2026-12-01T10:00:00.hdf5'), p
assert p['seed_inputs']['input_path'] == d, p
PY
same "keyed by its group, as ingest keys it" "2026-12-01T10:00:00" \
    "$(q "SELECT idempotency_key FROM absurd.tasks WHERE task_id = '$ID'")"
s=$(call POST /absurd/tasks "$(seed_convert 2026-12-01T09:00:00 2026-12-01T10:01:00)" -H "$AUTH")
check "the same group again through another window: 200, the same task" 200 \
    "assert j['task_id'] == '$ID' and j['created'] is False, j" "$s"
refused "$(seed_convert 2026-12-01T10:04:00 2026-12-01T10:06:00)" \
    "a window holding only an incomplete group: 400, what is missing" \
    "assert 'no complete observation' in j['error'] and 'sb07' in j['error'], j"
: >"$T/incoming/2026-12-01T10:05:00_sb07.hdf5"
refused "$(seed_convert 2026-12-01T09:00:00 2026-12-01T11:00:00)" \
    "a window holding two: 400, a convert task makes one" "assert '2 observations' in j['error'], j"
refused "$(seed_convert 2026-12-01T11:00:00 2026-12-01T10:00:00)" \
    "a window that ends before it starts: 400" "assert 'start_time <= end_time' in j['error'], j"
s=$(call POST /absurd/workflows '{"tasks": [{"key": "a", "task_name": "noop"},
    {"key": "b", "task_name": "imaging", "depends_on": ["a"]}]}' -H "$AUTH")
check "a workflow with a task its stage would refuse: 400" 400 \
    "assert 'imaging' in j['error'], j" "$s"
same "nothing of the refused spawns in the table" "$((before + 1))" \
    "$(q "SELECT count(*) FROM absurd.tasks WHERE queue_name = '$Q'")"
expect_exit 2 "params.inputs.group_id is missing" "the CLI refuses the same: exit 2" \
    "$CONTIMG" task spawn --name imaging \
    --params '{"inputs": {"vis_path": "/data/obs.hdf5"}}'
run "with --no-check it spawns as given" "$CONTIMG" task spawn --name imaging --no-check \
    --params '{"inputs": {"vis_path": "/data/obs.hdf5"}}'

# ---- 3. 50 clients at once ---------------------------------------------------------------
before=$(q "SELECT count(*) FROM absurd.tasks WHERE queue_name = '$Q'")
for k in $(seq 50); do echo "k$k"; echo "k$k"; done >"$T/keys"
xargs -P 50 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST -H "$AUTH" \
    --data-binary '{"task_name": "parallel", "idempotency_key": "{}"}' "$B/absurd/tasks" \
    <"$T/keys" >"$T/codes"
same "100 spawns from 50 clients, each key twice: 50 created (201), 50 found (200)" \
    "50 200,50 201" "$(sort "$T/codes" | uniq -c | awk '{print $1 " " $2}' | paste -sd,)"
same "50 new rows, one per key" "50|50" \
    "$(q "SELECT count(*) - $before || '|' || count(DISTINCT idempotency_key) FILTER (WHERE task_name = 'parallel')
            FROM absurd.tasks WHERE queue_name = '$Q'")"

# ---- 3b. backpressure: the 1001st waiting task ------------------------------------------------
BP=servebp-$$
run "a queue limited to 1000 waiting tasks" bash -c '"$1" queue create "$2" >/dev/null &&
    "$1" queue limit "$2" 1000 >/dev/null' _ "$CONTIMG" "$BP"
q "SELECT count(*) FROM (SELECT absurd.spawn_task_admitted('$BP', 'fill')
                           FROM generate_series(1, 999)) s" >/dev/null
seq 20 | xargs -P 20 -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST -H "$AUTH" \
    --data-binary "{\"task_name\": \"race\", \"queue_name\": \"$BP\"}" "$B/absurd/tasks" \
    >"$T/bp-codes"
same "20 clients race for the last place: one 201, nineteen 503" "1 201,19 503" \
    "$(sort "$T/bp-codes" | uniq -c | awk '{print $1 " " $2}' | paste -sd,)"
same "1000 wait, not one more" 1000 \
    "$(q "SELECT count(*) FROM absurd.tasks WHERE queue_name = '$BP' AND status = 'pending'")"
curl -s -D "$T/bp-headers" -o "$T/body" -X POST -H "$AUTH" \
    --data-binary "{\"task_name\": \"late\", \"queue_name\": \"$BP\"}" "$B/absurd/tasks" >/dev/null
run "the refusal: queue_full, with Retry-After" bash -c 'grep -qi "^Retry-After: 5" "$1" &&
    grep -q "\"code\":\"queue_full\"" "$2"' _ "$T/bp-headers" "$T/body"
expect_exit 6 "full" "task spawn into the full queue: exit 6" \
    "$CONTIMG" task spawn --name late --queue "$BP"
same "the engine's own spawns (spawn_task, as commit_task calls it) still go in" 1001 \
    "$(q "SELECT absurd.spawn_task('$BP', 'chain-step')" >/dev/null
       q "SELECT count(*) FROM absurd.tasks WHERE queue_name = '$BP' AND status = 'pending'")"
"$CONTIMG" simulate --out "$T/obs" --start 2026-11-22T10:00:00 --dec 55 --antennas 5 \
    --channels-per-subband 2 --times 2 >/dev/null || bad "simulate"
ABSURD_QUEUE_NAME=$BP timeout 60 "$CONTIMG" ingest "$T/obs" >"$T/ingest.out" 2>&1 &
ingest=$!
for _ in $(seq 50); do grep -q "^full" "$T/ingest.out" && break; sleep 0.1; done
run "ingest into the full queue waits and says so" grep -q "^full      queue $BP" "$T/ingest.out"
"$CONTIMG" queue limit "$BP" 0 >/dev/null
wait "$ingest"
same "room made: ingest spawns the group and exits 0" "0 1" \
    "$? $(sed -n 's/.*: \([0-9]*\) spawned.*/\1/p' "$T/ingest.out")"

# ---- 3b'. workflows: a DAG in one transaction ---------------------------------------------
s=$(call POST /absurd/workflows '{"tasks": [
    {"key": "convert", "task_name": "wf-convert", "params": {"inputs": {"g": 1}}},
    {"key": "image", "task_name": "wf-image", "depends_on": ["convert"]},
    {"key": "mosaic", "task_name": "wf-mosaic", "depends_on": ["convert", "image"]}]}' -H "$AUTH")
check "spawn a workflow: 201, its id and one task per key" 201 "
assert [t['key'] for t in j['tasks']] == ['convert', 'image', 'mosaic'], j
assert len(j['workflow_id']) == 36, j" "$s"
WF=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["workflow_id"])' "$T/body")
same "the rows: one workflow id, the dependencies as the keys said" \
    "wf-convert 0|wf-image 1|wf-mosaic 2" \
    "$(q "SELECT string_agg(task_name || ' ' || cardinality(depends_on), '|' ORDER BY seq)
            FROM absurd.tasks WHERE workflow_id = '$WF'")"
s=$(call GET "/absurd/workflows/$WF")
check "show it: its tasks in the order spawned, the dependencies by id" 200 "
t = j['tasks']
assert [x['task_name'] for x in t] == ['wf-convert', 'wf-image', 'wf-mosaic'], j
assert t[2]['depends_on'] == [t[0]['task_id'], t[1]['task_id']], t[2]" "$s"
s=$(call GET /absurd/workflows)
check "list the workflows: its counts" 200 "
w = [x for x in j['workflows'] if x['workflow_id'] == '$WF']
assert w and w[0]['total'] == 3 and w[0]['open'] == 3, j" "$s"
before=$(q "SELECT count(*) FROM absurd.tasks")
s=$(call POST /absurd/workflows '{"tasks": [{"key": "a", "task_name": "wf-a"},
    {"key": "b", "task_name": "wf-b", "depends_on": ["c"]}]}' -H "$AUTH")
check "a dependency on a key not listed before it: 400, all or none" 400 \
    "assert 'depends on' in j['error'], j" "$s"
same "nothing of it spawned" "$before" "$(q "SELECT count(*) FROM absurd.tasks")"
run "room for 3 more in the limited queue" "$CONTIMG" queue limit "$BP" \
    $(($(q "SELECT count(*) FROM absurd.tasks WHERE queue_name = '$BP' AND status = 'pending'") + 3))
wf() { # wf N: a chain of N tasks into $BP
    local i t=""
    for i in $(seq "$1"); do
        t+="${t:+, }{\"key\": \"k$i\", \"task_name\": \"wf-bp\"$([ "$i" -gt 1 ] && echo ", \"depends_on\": [\"k$((i - 1))\"]")}"
    done
    echo "{\"queue_name\": \"$BP\", \"tasks\": [$t]}"
}
s=$(call POST /absurd/workflows "$(wf 4)" -H "$AUTH")
check "a workflow of 4 where 3 fit: 503, refused whole" 503 "assert j['code'] == 'queue_full', j" "$s"
same "none of its tasks spawned" 0 "$(q "SELECT count(*) FROM absurd.tasks WHERE task_name = 'wf-bp'")"
s=$(call POST /absurd/workflows "$(wf 3)" -H "$AUTH")
check "a workflow of 3: it fits" 201 "assert len(j['tasks']) == 3, j" "$s"
s=$(call GET /absurd/workflows/00000000-0000-4000-8000-000000000000)
check "an unknown workflow: 404" 404 "assert j['code'] == 'not_found', j" "$s"

# ---- 3c. schedules: two servers tick, each due time fires once ----------------------------
s=$(call POST /absurd/schedules "{\"name\": \"every-$$\", \"cron\": \"*/5 * * * *\",
    \"task_name\": \"scheduled\", \"params\": {\"config\": {\"k\": 1}}}" -H "$AUTH")
check "add a schedule: 201, its next due time on a 5-minute mark" 201 "
assert j['schedule_name'] == 'every-$$' and j['queue_name'] == '$Q' and j['enabled'], j
assert j['next_run_at'][14:16] in ('00', '05', '10', '15', '20', '25', '30', '35', '40',
                                   '45', '50', '55'), j" "$s"
s=$(call POST /absurd/schedules '{"name": "bad", "cron": "61 * * * *", "task_name": "x"}' \
    -H "$AUTH")
check "a bad cron expression: 400, the field named" 400 "assert 'minute' in j['error'], j" "$s"
s=$(call POST /absurd/schedules "{\"name\": \"dlq\", \"cron\": \"@daily\", \"task_name\": \"x\",
    \"queue_name\": \"$Q-dlq\"}" -H "$AUTH")
check "a schedule into a dead-letter queue: 400" 400 "assert 'dead-letter' in j['error'], j" "$s"
s=$(call GET /absurd/schedules)
check "list the schedules" 200 \
    "assert any(x['schedule_name'] == 'every-$$' for x in j['schedules']), j" "$s"
for round in 1 2 3; do
    q "UPDATE absurd.schedules SET next_run_at = now() - interval '$round minutes'
        WHERE schedule_name = 'every-$$'" >/dev/null
    for _ in $(seq 50); do
        [ "$(q "SELECT count(*) FROM absurd.tasks WHERE task_name = 'scheduled'")" = "$round" ] &&
            break
        sleep 0.1
    done
    "$CONTIMG" schedule tick >/dev/null &
    t1=$!
    "$CONTIMG" schedule tick >/dev/null &
    wait "$t1" $!
done
sleep 0.5
same "three due times, two servers and two CLI tickers each: three tasks, keyed by due time" \
    "3|3|1" "$(q "SELECT count(*) || '|' || count(DISTINCT idempotency_key) || '|' ||
                        min((params->'config'->>'k')::int)
                   FROM absurd.tasks WHERE task_name = 'scheduled' AND queue_name = '$Q'")"
run "the servers said which they fired" bash -c 'cat "$1"/main.out "$1"/readonly.out |
    grep -c "^fired     schedule every-'$$'" | grep -qx 3' _ "$T"
s=$(call DELETE "/absurd/schedules/every-$$" "" -H "$AUTH")
check "remove it" 200 "assert j['deleted'] is True, j" "$s"
s=$(call DELETE "/absurd/schedules/every-$$" "" -H "$AUTH")
check "remove it again: 404" 404 "assert j['code'] == 'not_found', j" "$s"

# ---- 4. metrics and alerts ----------------------------------------------------------------
s=$(call GET /metrics)
[ "$s" = 200 ] || bad "GET /metrics: HTTP $s"
run "promtool check metrics: the exposition lints clean" bash -c 'promtool check metrics <"$1"' \
    _ "$T/body"
depth=$(q "SELECT count(*) FROM absurd.tasks WHERE queue_name = '$Q' AND status IN ('pending', 'retrying')")
same "contimg_queue_depth is the table's" "$depth" \
    "$(sed -n "s/^contimg_queue_depth{queue=\"$Q\"} //p" "$T/body")"
same "absurd_tasks_total{task_name=parallel} 50, absurd_tasks_current{completed} of noop 1" "50 1" \
    "$(sed -n "s/^absurd_tasks_total{queue=\"$Q\",task_name=\"parallel\"} //p" "$T/body") $(
        sed -n "s/^absurd_tasks_current{queue=\"$Q\",task_name=\"noop\",status=\"completed\"} //p" "$T/body")"
run "the disks, the database up" grep -q '^contimg_database_up 1$' "$T/body"
run "promtool check rules: docs/prometheus/contimg-rules.yml" \
    promtool check rules "$HERE/../docs/prometheus/contimg-rules.yml"
run "promtool test rules: each alert at the seed's thresholds" \
    promtool test rules "$HERE/prometheus_rules_test.yml"
"$PY" - "$HERE/../docs/grafana/contimg-dashboard.json" "$T/body" "$T/dash-rules.yml" \
    "$HERE/../docs/api.md" <<'PY' ||
import json, re, sys
dash, exposition, rules, doc = sys.argv[1:5]
# What /metrics exports now, and what docs/api.md says it exports (a family with nothing
# behind it yet, no caltable for one, is left out of an exposition).
families = set(re.findall(r"^# TYPE (\S+) ", open(exposition).read(), re.M))
documented = set(re.findall(r"`((?:contimg|absurd)_[a-z_]+)", open(doc).read()))
source = open(doc.replace("docs/api.md", "src/api/metrics.c")).read()
assert all(f'"{m}"' in source for m in documented), documented - set(re.findall(r'"(\w+)"', source))
families |= documented
exprs = [t["expr"] for p in json.load(open(dash))["panels"] for t in p["targets"]]
used = {m for e in exprs for m in re.findall(r"\b((?:contimg|absurd)_[a-z_]+)", e)}
missing = used - families
assert exprs and not missing, ("metrics the dashboard asks for that nobody exports", missing)
with open(rules, "w") as f: # every query as a recording rule: promtool parses them
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        f.write("      - record: dashboard:q%d\n        expr: %s\n" %
                (i, json.dumps(e.replace("$queue", ".*"))))
print("     %d queries over %d metric families, all exported" % (len(exprs), len(used)))
PY
    bad "the Grafana dashboard asks for metrics /metrics lacks"
run "the Grafana dashboard: every query parses (promtool)" promtool check rules "$T/dash-rules.yml"
ppy=$(
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
)
cat >"$T/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: contimg
    static_configs: [{targets: ['127.0.0.1:$PORT']}]
rule_files: ['$HERE/../docs/prometheus/contimg-rules.yml']
YML
# The readonly server is the one scraped (PORT): a second process, the same queue.
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
    --web.listen-address="127.0.0.1:$ppy" >"$T/prometheus.log" 2>&1 &
pids+=($!)
got=""
for _ in $(seq 60); do
    got=$(curl -s "http://127.0.0.1:$ppy/api/v1/query" \
        --data-urlencode "query=contimg_queue_depth{queue=\"$Q\"}" 2>/dev/null |
        "$PY" -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")' 2>/dev/null)
    [ -n "$got" ] && break
    sleep 0.5
done
same "Prometheus scraped contimg serve: the query returns the queue's depth" "$depth" "$got"

# ---- 5. stopping -------------------------------------------------------------------------
kill -TERM "$MAIN_PID"
wait "$MAIN_PID"
same "SIGTERM: the server stops, exit 0" 0 $?

echo "test_serve: $failed failed"
[ "$failed" -eq 0 ]
