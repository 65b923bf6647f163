#!/usr/bin/env bash
# test_cli.sh -- the `contimg` command line as an operator uses it.
#
#   bash tests/test_cli.sh /path/to/contimg
#
# Needs CONTIMG_STATE_DIR (or CONTIMG_DATABASE_URL) pointing at a running,
# migrated database (the ctest fixture "postgres" provides one). Works in a
# queue of its own, cli-test-PID, so it does not disturb other tests sharing
# the database. Checks:
#   1. flows: spawn, show, idempotency, list filters, claim, complete,
#      dependencies, fail with backoff, dead-lettering, retry, cancel,
#      release, lease expiry, reap, stale tokens, heartbeat, stats, --help;
#   2. bad input: the right exit code, exactly one line on stderr, nothing on
#      stdout, and the database untouched;
#   3. database down: exit 3, one line, no password leaked;
#   4. `db migrate` again applies nothing.
# Prints one line per check and ends with "N passed, M failed".

# Conditions are passed to check() in single quotes and eval'd there:
# shellcheck disable=SC2016,SC2034
set -u
export LC_ALL=C # a '.' in $EPOCHREALTIME, plain messages

BIN=${1:-}
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    echo "usage: $0 /path/to/contimg" >&2
    exit 2
fi
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

PASSED=0
FAILED=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/contimg-cli-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

pass() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$1"; }
skip() { printf 'skip %s\n' "$1"; }
fail() {
    FAILED=$((FAILED + 1))
    printf 'FAIL %s%s\n' "$1" "${2:+ -- $2}"
}
# check DESCRIPTION 'SHELL CONDITION': passes when the condition (eval'd) holds.
check() {
    if eval "$2"; then
        pass "$1"
    else
        fail "$1" "not true: $2 (last exit ${RC:-}, stderr: ${ERR:0:200})"
    fi
}
# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
    if [ "$2" == "$3" ]; then pass "$1"; else fail "$1" "expected '$2', got '$3'"; fi
}

# run ARGS...: runs contimg; sets RC, OUT (stdout), ERR (stderr).
#
# The per-task subcommands (show, cancel, retry, complete, fail, release,
# heartbeat) are written below as documented, `task complete ID --token T`,
# but run with the task id after the options, `task complete --token T ID`,
# which every build accepts; the section "argument order" checks the
# documented order itself. RAW=1 runs the arguments exactly as given.
run() {
    local a=("$@")
    if [ "${RAW:-0}" != 1 ] && [ $# -gt 3 ] && [ "$1" == task ] &&
        [[ $2 =~ ^(show|cancel|retry|complete|fail|release|heartbeat)$ ]] && [[ $3 != -* ]]; then
        a=(task "$2" "${@:4}" "$3")
    fi
    "$BIN" "${a[@]}" >"$TMP/out" 2>"$TMP/err"
    RC=$?
    OUT=$(cat "$TMP/out")
    ERR=$(cat "$TMP/err")
}
# Lines in a string, counting a last line without newline.
nlines() { printf '%s' "$1" | awk 'END { print NR }'; }

# jget JSON EXPR: evaluates a Python expression over d (the parsed JSON);
# strings print raw, anything else as compact JSON with sorted keys.
jget() {
    printf '%s' "$1" | "$PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    v = eval(sys.argv[1])
except Exception as e:
    print("<error: %s>" % e)
    sys.exit(0)
print(v if isinstance(v, str) else json.dumps(v, sort_keys=True, separators=(",", ":")))
' "$2"
}

UUID_RE='^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
is_uuid() { [[ $1 =~ $UUID_RE ]]; }

Q=cli-test-$$
DLQ=$Q-dlq
BAD=cli-bad-$$      # the task name every bad-input spawn uses
NOQ=nosuchqueue-$$  # a valid queue name that is never registered

# A fingerprint of every row this script (or a bad input of it) could touch:
# the tasks of its queues, any task named $BAD, and the queues it names.
DB_URL=$("$BIN" db url 2>/dev/null)
fingerprint() {
    if command -v psql >/dev/null 2>&1 && [ -n "$DB_URL" ]; then
        psql "$DB_URL" -X -Atq -c "
            select count(*), coalesce(md5(string_agg(
                       task_id::text || queue_name || status || attempt
                       || coalesce(claim_token::text, '') || coalesce(result::text, ''),
                       ',' order by task_id)), '')
              from absurd.tasks
             where origin_queue in ('$Q', '$NOQ') or queue_name in ('$Q', '$DLQ')
                or task_name like '$BAD%';
            select count(*) from absurd.queues
             where queue_name in ('$NOQ', '$NOQ-dlq', 'bad queue!', '$DLQ-dlq');" 2>&1
    else
        "$BIN" task list --queue "$Q" --json --limit 100000 2>&1
        "$BIN" task list --queue "$DLQ" --json --limit 100000 2>&1
        "$BIN" task list --name "$BAD" --json --limit 100000 2>&1
    fi
}

# expect_err CODE DESCRIPTION ARGS...: contimg ARGS must exit CODE with one
# "contimg: ..." line on stderr, nothing on stdout, and leave the database
# as it was.
expect_err() {
    local code=$1 desc=$2
    shift 2
    local before after why=""
    before=$(fingerprint)
    run "$@"
    after=$(fingerprint)
    [ "$RC" -eq "$code" ] || why+="exit $RC, expected $code; "
    [ "$(nlines "$ERR")" -eq 1 ] || why+="$(nlines "$ERR") stderr lines; "
    [[ $ERR == "contimg: "* ]] || why+="stderr does not start with 'contimg: '; "
    [ -z "$OUT" ] || why+="stdout not empty; "
    [ "$before" == "$after" ] || why+="database changed; "
    if [ -z "$why" ]; then
        pass "$desc (exit $code)"
    else
        fail "$desc" "${why}stderr: ${ERR:0:300}"
    fi
}

# show_field ID EXPR: a field of `task show ID --json`.
show_field() {
    run task show "$1" --json
    jget "$OUT" "$2"
}

# claim1 [ARGS...]: claims from $Q; sets CID, CTOKEN, CNAME from the first
# line and CLINES to the number of lines printed.
claim1() {
    run task claim --queue "$Q" "$@"
    CLINES=$(nlines "$OUT")
    read -r CID CTOKEN CNAME _ <<<"$OUT"
    CID=${CID:-} CTOKEN=${CTOKEN:-} CNAME=${CNAME:-}
}

COMPLETED=0 # tasks of $Q completed by this script
complete_ok() {
    run task complete "$@"
    if [ "$RC" -eq 0 ]; then COMPLETED=$((COMPLETED + 1)); fi
    [ "$RC" -eq 0 ]
}

start_time=$SECONDS

# ---------------------------------------------------------------------------
echo "# setup"
run queue create "$Q"
check "queue create $Q" '[ "$RC" -eq 0 ]'
if [ "$RC" -ne 0 ]; then
    echo "cannot create the test queue: $ERR" >&2
    echo "$PASSED passed, $((FAILED)) failed"
    exit 1
fi
FP=$(fingerprint)
check "the database fingerprint can be taken" '[[ $FP =~ ^[0-9]+ ]]'

# ---------------------------------------------------------------------------
echo "# --help"
help_ok() {
    run "$@" --help
    local desc="contimg${*:+ $*} --help"
    if [ "$RC" -eq 0 ] && [[ $OUT == usage:* ]] && [ -z "$ERR" ]; then
        pass "$desc"
    else
        fail "$desc" "exit $RC, stdout '${OUT:0:80}', stderr '${ERR:0:200}'"
    fi
}
help_ok
help_ok task
for sub in spawn list show cancel retry claim complete fail release heartbeat; do
    help_ok task "$sub"
done
help_ok queue
help_ok queue stats
help_ok reap
for sub in start status migrate url; do
    help_ok db "$sub"
done
help_ok demo

# ---------------------------------------------------------------------------
echo "# spawn, show, idempotency"
run task spawn --queue "$Q" --name cli-a --params '{"x": 1, "s": "hi"}'
A=$OUT
check "spawn prints a task id" 'is_uuid "$A"'
check "spawn exits 0 with nothing on stderr" '[ "$RC" -eq 0 -a -z "$ERR" ]'
run task show "$A" --json
check_eq "show: status pending" pending "$(jget "$OUT" 'd["status"]')"
check_eq "show: params as given" '{"s":"hi","x":1}' "$(jget "$OUT" 'd["params"]')"
check_eq "show: queue" "$Q" "$(jget "$OUT" 'd["queue_name"]')"
check_eq "show: name" cli-a "$(jget "$OUT" 'd["task_name"]')"
check_eq "show: attempt 0" 0 "$(jget "$OUT" 'd["attempt"]')"
run task show "$A"
check "show (text) prints the status" '[ "$RC" -eq 0 ] && [[ $OUT == *pending* ]]'
# Params too long or awkward for a command line: from a file, or from standard input.
printf '{"name": "caf\xe9"}' >"$TMP/latin1.json"
echo '{"from": "file", "n": [1, 2]}' >"$TMP/params.json"
QP=$Q-params
"$BIN" queue create "$QP" >/dev/null
run task spawn --queue "$QP" --name cli-f --params "@$TMP/params.json" --json
run task show "$(jget "$OUT" 'd["task_id"]')" --json
check_eq "--params @FILE: the file's object" '{"from":"file","n":[1,2]}' "$(jget "$OUT" 'd["params"]')"
F=$(echo '{"from": "stdin"}' | "$BIN" task spawn --queue "$QP" --name cli-f --params -)
run task show "$F" --json
check_eq "--params -: standard input's object" '{"from":"stdin"}' "$(jget "$OUT" 'd["params"]')"

KEY=cli-key-$$
run task spawn --queue "$Q" --name cli-k --idempotency-key "$KEY" --json
K=$(jget "$OUT" 'd["task_id"]')
check_eq "idempotent spawn --json: created true" true "$(jget "$OUT" 'd["created"]')"
check "idempotent spawn --json: task id" 'is_uuid "$K"'
run task spawn --queue "$Q" --name cli-k --idempotency-key "$KEY"
check_eq "idempotent spawn again: same id" "$K" "$OUT"
run task spawn --queue "$Q" --name cli-k --idempotency-key "$KEY" --json
check_eq "idempotent spawn again --json: created false" false "$(jget "$OUT" 'd["created"]')"
check_eq "idempotent spawn again --json: same id" "$K" "$(jget "$OUT" 'd["task_id"]')"

# ---------------------------------------------------------------------------
echo "# claim, complete"
claim1 --lease 60
check "claim prints 'ID TOKEN NAME'" '[ "$RC" -eq 0 -a "$CLINES" -eq 1 ] && is_uuid "$CID" && is_uuid "$CTOKEN"'
check_eq "claim takes the oldest task" "$A cli-a" "$CID $CNAME"
check_eq "claimed task shows claimed" claimed "$(show_field "$A" 'd["status"]')"
check_eq "claimed task shows attempt 1" 1 "$(show_field "$A" 'd["attempt"]')"
RESULT='{"ok":1}'
check "complete with --result exits 0" 'complete_ok "$A" --token "$CTOKEN" --result "$RESULT"'
run task show "$A" --json
check_eq "completed task: status" completed "$(jget "$OUT" 'd["status"]')"
check_eq "completed task: result" '{"ok":1}' "$(jget "$OUT" 'd["result"]')"
expect_err 5 "complete an already completed task" task complete "$A" --token "$CTOKEN"

# ---------------------------------------------------------------------------
echo "# list"
run task list --queue "$Q" --json
check_eq "list --queue: every task" "$(printf '%s\n' "$A" "$K" | sort | tr '\n' ' ')" \
    "$(jget "$OUT" '" ".join(sorted(t["task_id"] for t in d)) + " "')"
run task list --queue "$Q" --status pending --json
check_eq "list --status pending" "[\"$K\"]" "$(jget "$OUT" '[t["task_id"] for t in d]')"
run task list --queue "$Q" --status completed --json
check_eq "list --status completed" "[\"$A\"]" "$(jget "$OUT" '[t["task_id"] for t in d]')"
run task list --queue "$Q" --limit 1 --json
L1=$(jget "$OUT" '",".join(t["task_id"] for t in d)')
check_eq "list --limit 1: one task" 1 "$(jget "$OUT" 'len(d)')"
run task list --queue "$Q" --limit 1 --offset 1 --json
L2=$(jget "$OUT" '",".join(t["task_id"] for t in d)')
check_eq "list --offset 1 --limit 1: one task" 1 "$(jget "$OUT" 'len(d)')"
check_eq "list --offset 1 gives the other task" \
    "$(printf '%s\n' "$A" "$K" | sort | tr '\n' ' ')" "$(printf '%s\n' "$L1" "$L2" | sort | tr '\n' ' ')"
run task list --queue "$Q" --offset 2 --json
check_eq "list --offset past the end: empty" 0 "$(jget "$OUT" 'len(d)')"
run task list --queue "$Q"
check "list (text) has a header and a line per task" '[ "$RC" -eq 0 ] && [[ $OUT == *TASK_ID*STATUS* ]] && [ "$(nlines "$OUT")" -eq 3 ]'

# ---------------------------------------------------------------------------
echo "# cancel"
run task cancel "$K"
check "cancel a pending task exits 0" '[ "$RC" -eq 0 ]'
check_eq "cancelled task shows cancelled" cancelled "$(show_field "$K" 'd["status"]')"

run task spawn --queue "$Q" --name cli-c
C=$OUT
ATT_BEFORE=$(show_field "$C" 'd["attempt"]')
check_eq "a new task has attempt 0" 0 "$ATT_BEFORE"
claim1 --lease 60
check_eq "claim the task to cancel" "$C" "$CID"
CT=$CTOKEN
expect_err 5 "cancel a claimed task" task cancel "$C"
check_eq "the claimed task is still claimed" claimed "$(show_field "$C" 'd["status"]')"

echo "# heartbeat, release"
run task heartbeat "$C" --token "$CT" --lease 30
check "heartbeat with the valid token exits 0" '[ "$RC" -eq 0 -a -z "$ERR" ]'
expect_err 5 "heartbeat with a wrong token" task heartbeat "$C" \
    --token 00000000-0000-4000-8000-000000000000
run task release "$C" --token "$CT"
check "release exits 0" '[ "$RC" -eq 0 ]'
run task show "$C" --json
check_eq "released task: pending" pending "$(jget "$OUT" 'd["status"]')"
check_eq "released task: attempt as before the claim (0)" 0 "$(jget "$OUT" 'd["attempt"]')"
check_eq "released task: no claim token" None "$(jget "$OUT" 'str(d["claim_token"])')"
claim1 --lease 60
check_eq "the released task is claimable again" "$C" "$CID"
check "complete it" 'complete_ok "$C" --token "$CTOKEN"'

# ---------------------------------------------------------------------------
echo "# dependencies"
run task spawn --queue "$Q" --name cli-dep-a
DA=$OUT
run task spawn --queue "$Q" --name cli-dep-b --depends-on "$DA"
DB=$OUT
check "spawn with --depends-on" 'is_uuid "$DB"'
check_eq "show: depends_on" "[\"$DA\"]" "$(show_field "$DB" 'd["depends_on"]')"
claim1 --limit 10 --lease 60
check_eq "claim gets only the dependency" "1 $DA" "$CLINES $CID"
DAT=$CTOKEN
claim1 --limit 10 --lease 60
check_eq "the dependent is not claimable while its dependency runs" "0" "$CLINES"
check "complete the dependency" 'complete_ok "$DA" --token "$DAT"'
claim1 --limit 10 --lease 60
check_eq "the dependent is claimable once it completed" "1 $DB" "$CLINES $CID"
check "complete the dependent" 'complete_ok "$DB" --token "$CTOKEN"'

# ---------------------------------------------------------------------------
echo "# fail, backoff, dead letters, retry"
run task spawn --queue "$Q" --name cli-r --max-retries 1 --backoff-base 0.3
R=$OUT
run task spawn --queue "$Q" --name cli-rd --depends-on "$R"
RD=$OUT
claim1 --lease 60
check_eq "claim the failing task" "$R" "$CID"
T0=$EPOCHREALTIME
run task fail "$R" --token "$CTOKEN" --error "disk busy" --category transient
FAIL_RC=$RC
claim1 --lease 60
T1=$EPOCHREALTIME
check_eq "fail --category transient exits 0" 0 "$FAIL_RC"
# The retry is due 0.3 s after the failure; a claim that ended sooner than
# that after the failure started must come back empty.
if [ "$(awk -v a="$T0" -v b="$T1" 'BEGIN { print (b - a < 0.3) ? 1 : 0 }')" -eq 1 ]; then
    check_eq "not claimable during the backoff" "0 0" "$RC $CLINES"
else
    skip "not claimable during the backoff (fail + claim took more than 0.3 s)"
fi
run task show "$R" --json
check_eq "failed once: retrying" retrying "$(jget "$OUT" 'd["status"]')"
check_eq "failed once: error kept" "disk busy transient" \
    "$(jget "$OUT" 'd["error"] + " " + d["error_category"]')"
check_eq "failed once: due 0.3 s (--backoff-base) after the failure" true "$(jget "$OUT" '(
__import__("datetime").datetime.fromisoformat(d["available_at"].replace("Z", "+00:00")).timestamp()
- __import__("datetime").datetime.fromisoformat(d["claimed_at"].replace("Z", "+00:00")).timestamp()
>= 0.29 and d["backoff_base_sec"] == 0.3)')"
sleep 0.5
claim1 --lease 60
check_eq "claimable after the backoff" "$R" "$CID"
check_eq "second attempt" 2 "$(show_field "$R" 'd["attempt"]')"
run task fail "$R" --token "$CTOKEN" --error "disk busy again" --category transient
check "fail the last attempt exits 0" '[ "$RC" -eq 0 ]'
run task show "$R" --json
check_eq "retries exhausted: failed in the dead-letter queue" "failed $DLQ" \
    "$(jget "$OUT" 'd["status"] + " " + d["queue_name"]')"
check_eq "the dependent was cancelled" cancelled "$(show_field "$RD" 'd["status"]')"
run task list --queue "$DLQ" --json
check_eq "list --queue $DLQ shows it" "[\"$R\"]" "$(jget "$OUT" '[t["task_id"] for t in d]')"
run task list --queue "$Q" --status failed --json
check_eq "it is no longer in $Q" 0 "$(jget "$OUT" 'len(d)')"
expect_err 2 "spawn into a dead-letter queue" task spawn --queue "$DLQ" --name "$BAD"
expect_err 2 "params that are not UTF-8 (a usage error, not the database's)" \
    task spawn --queue "$QP" --name cli-u --params @"$TMP/latin1.json"
expect_err 2 "an idempotency key that is not UTF-8" \
    task spawn --queue "$QP" --name cli-u --idempotency-key $'caf\xe9'
expect_err 2 "a params file that is not there" task spawn --queue "$QP" --name cli-u \
    --params @"$TMP/no-such.json"

run task retry "$R"
check "retry exits 0" '[ "$RC" -eq 0 ]'
run task show "$R" --json
check_eq "retried task: pending in $Q, attempt 0" "pending $Q 0" \
    "$(jget "$OUT" 'd["status"] + " " + d["queue_name"] + " " + str(d["attempt"])')"
check_eq "the dependent is pending again" pending "$(show_field "$RD" 'd["status"]')"
expect_err 5 "retry a pending task" task retry "$R"
claim1 --limit 10 --lease 60
check_eq "the retried task is claimable, its dependent not yet" "1 $R" "$CLINES $CID"
complete_ok "$R" --token "$CTOKEN"
claim1 --limit 10 --lease 60
check_eq "then the dependent" "1 $RD" "$CLINES $CID"
check "complete the restored dependent" 'complete_ok "$RD" --token "$CTOKEN"'

run task spawn --queue "$Q" --name cli-p
P=$OUT
claim1 --lease 60
run task fail "$P" --token "$CTOKEN" --error "bad header" --category permanent
check "fail --category permanent exits 0" '[ "$RC" -eq 0 ]'
check_eq "a permanent failure dead-letters at once" "failed $DLQ" \
    "$(show_field "$P" 'd["status"] + " " + d["queue_name"]')"
expect_err 5 "cancel a failed task" task cancel "$P"

# ---------------------------------------------------------------------------
echo "# lease expiry, reap, stale tokens"
# A reaper of another test sharing the database (reaping every queue) may
# return the expired task before this script looks at it; then start over.
for try in 1 2 3; do
    run task spawn --queue "$Q" --name cli-l
    L=$OUT
    claim1 --lease 0.3
    T1=$CTOKEN
    [ "$CID" == "$L" ] || break
    sleep 0.6
    [ "$(show_field "$L" 'd["status"]')" != claimed ] || break
    echo "# (task $L was reaped by someone else; again)"
    claim1 --lease 60
    complete_ok "$CID" --token "$CTOKEN"
done
check_eq "claim with --lease 0.3" "$L" "$CID"
expect_err 5 "complete after the lease expired" task complete "$L" --token "$T1"
check "the refusal mentions the expired lease" '[[ $ERR =~ [Ll]ease.*expired ]]'
expect_err 5 "heartbeat after the lease expired" task heartbeat "$L" --token "$T1"
check_eq "the expired task is still claimed until reaped" claimed "$(show_field "$L" 'd["status"]')"
run reap --queue "$Q" --json
check_eq "reap --json lists it as requeued" requeued \
    "$(jget "$OUT" '",".join(r["action"] for r in d if r["task_id"] == "'"$L"'")')"
check_eq "reaped task: pending" pending "$(show_field "$L" 'd["status"]')"
run reap --queue "$Q"
check "reap (text) says how many" '[ "$RC" -eq 0 ] && [[ $OUT == *"reaped 0 tasks"* ]]'
claim1 --lease 60
check_eq "claim it again" "$L" "$CID"
T2=$CTOKEN
expect_err 5 "complete with the stale token of the first claim" task complete "$L" --token "$T1"
expect_err 5 "fail with the stale token" task fail "$L" --token "$T1" --error x
check_eq "still claimed by the second claim" claimed "$(show_field "$L" 'd["status"]')"
run task heartbeat "$L" --token "$T2"
check "heartbeat with the current token exits 0" '[ "$RC" -eq 0 ]'
check "complete with the current token" 'complete_ok "$L" --token "$T2"'

# ---------------------------------------------------------------------------
echo "# queue stats"
run queue stats "$Q" --json
check_eq "stats --json: one queue" "1 $Q" "$(jget "$OUT" 'str(len(d)) + " " + d[0]["queue_name"]')"
check_eq "stats --json: completed count" "$COMPLETED" "$(jget "$OUT" 'd[0]["completed"]')"
check_eq "stats --json: other counts" "pending 0 claimed 0 retrying 0 failed 0 cancelled 1" \
    "$(jget "$OUT" '" ".join("%s %d" % (k, d[0][k]) for k in ("pending","claimed","retrying","failed","cancelled"))')"
check_eq "stats --json: total" "$((COMPLETED + 1))" "$(jget "$OUT" 'd[0]["total"]')"
run task list --queue "$Q" --status completed --json
check_eq "stats agree with list --status completed" "$COMPLETED" "$(jget "$OUT" 'len(d)')"
run queue stats "$DLQ" --json
check_eq "stats of the dead-letter queue: one failed" "1 1" \
    "$(jget "$OUT" '"%d %d" % (d[0]["failed"], d[0]["total"])')"
run queue stats "$Q"
HEADER=$(head -n 1 <<<"$OUT")
check "stats (text): header with PENDING and COMPLETED" '[ "$RC" -eq 0 ] && [[ $HEADER == *PENDING* && $HEADER == *COMPLETED* ]]'
ROWS_Q=$(awk -v q="$Q" '$1 == q' <<<"$OUT" | wc -l)
check "stats (text): a row for $Q" '[ "$ROWS_Q" -eq 1 ]'
run queue stats --json
HAS_Q=$(jget "$OUT" '"'"$Q"'" in [q["queue_name"] for q in d]')
check "stats of every queue includes $Q" '[ "$RC" -eq 0 ] && [ "$HAS_Q" == true ]'

# ---------------------------------------------------------------------------
echo "# argument order: task id before the options, as the usage lines show"
run task spawn --queue "$Q" --name cli-o1
O1=$OUT
RAW=1 run task show "$O1" --json
ST=$(jget "$OUT" 'd["status"]')
check "task show ID --json" '[ "$RC" -eq 0 ] && [ "$ST" == pending ]'
RAW=1 run task cancel "$O1" --reason "argument order test"
check "task cancel ID --reason TEXT" '[ "$RC" -eq 0 ]'
[ "$RC" -eq 0 ] || run task cancel "$O1"
run task spawn --queue "$Q" --name cli-o2
O2=$OUT
claim1 --lease 60
OT=$CTOKEN
RAW=1 run task heartbeat "$O2" --token "$OT"
check "task heartbeat ID --token T" '[ "$RC" -eq 0 ]'
RESULT2='{"ok":2}'
RAW=1 run task complete "$O2" --token "$OT" --result "$RESULT2"
check "task complete ID --token T --result JSON" '[ "$RC" -eq 0 ]'
[ "$RC" -eq 0 ] || run task complete "$O2" --token "$OT" --result "$RESULT2"
check_eq "... completes it with that result" 'completed {"ok":2}' \
    "$(show_field "$O2" 'd["status"] + " " + json.dumps(d["result"], separators=(",", ":"))')"

# ---------------------------------------------------------------------------
echo "# limits"
LONG127=$(printf 'n%.0s' $(seq 127))
LONG128=$(printf 'n%.0s' $(seq 128))
LONG200=$(printf 'n%.0s' $(seq 200))
LONG256=$(printf 'k%.0s' $(seq 256))
LONG257=$(printf 'k%.0s' $(seq 257))
LONG300=$(printf 'k%.0s' $(seq 300))
run task spawn --queue "$Q" --name "$LONG127" --idempotency-key "$LONG256" --priority 1000000 \
    --max-retries 100 --timeout 604800
LIM=$OUT
check "spawn at every limit (127-character name, 256-character key, ...)" '[ "$RC" -eq 0 ] && is_uuid "$LIM"'
check_eq "... stored as given" "$LONG127 $LONG256 1000000 100 604800" \
    "$(show_field "$LIM" '" ".join(str(d[k]) for k in ("task_name", "idempotency_key", "priority", "max_retries", "timeout_sec"))')"
run task cancel "$LIM"
run queue create "$Q"
check "queue create of an existing queue exits 0" '[ "$RC" -eq 0 ]'

# ---------------------------------------------------------------------------
echo "# bad input"
NOSUCH=00000000-0000-4000-8000-0000000000ff
SPAWN=(task spawn --queue "$Q" --name "$BAD")
expect_err 2 "malformed JSON --params" "${SPAWN[@]}" --params '{"a":'
expect_err 2 "--params not an object" "${SPAWN[@]}" --params '[1,2]'
expect_err 2 "--params a string" "${SPAWN[@]}" --params '"x"'
expect_err 2 "--params with a duplicate key" "${SPAWN[@]}" --params '{"a":1,"a":2}'
expect_err 2 "list of an unknown queue" task list --queue "$NOQ"
ABSURD_MAX_RETRIES=abc expect_err 2 "ABSURD_MAX_RETRIES=abc" task list --queue "$Q"
expect_err 2 "list --status bogus" task list --queue "$Q" --status bogus
expect_err 2 "spawn into an unknown queue" task spawn --queue "$NOQ" --name "$BAD"
expect_err 2 "stats of an unknown queue" queue stats "$NOQ"
expect_err 2 "claim from an unknown queue" task claim --queue "$NOQ"
expect_err 2 "reap an unknown queue" reap --queue "$NOQ"
expect_err 2 "spawn: invalid queue name" task spawn --queue 'bad queue!' --name "$BAD"
expect_err 2 "stats: invalid queue name" queue stats 'bad queue!'
expect_err 2 "list: invalid queue name" task list --queue 'bad queue!'
expect_err 2 "queue create: invalid queue name" queue create 'bad queue!'
expect_err 2 "queue create: a -dlq name" queue create "$DLQ"
expect_err 2 "task name of 200 characters" task spawn --queue "$Q" --name "$LONG200"
expect_err 2 "task name of 128 characters" task spawn --queue "$Q" --name "$LONG128"
expect_err 2 "task name with a space" task spawn --queue "$Q" --name "bad name"
expect_err 2 "idempotency key of 257 characters" "${SPAWN[@]}" --idempotency-key "$LONG257"
expect_err 2 "idempotency key of 300 characters" "${SPAWN[@]}" --idempotency-key "$LONG300"
expect_err 2 "empty idempotency key" "${SPAWN[@]}" --idempotency-key ''
expect_err 2 "show not-a-uuid" task show not-a-uuid
expect_err 2 "cancel not-a-uuid" task cancel not-a-uuid
expect_err 2 "retry not-a-uuid" task retry not-a-uuid
expect_err 2 "show without an id" task show
expect_err 2 "show with two ids" task show "$A" "$K"
expect_err 2 "--depends-on not-a-uuid" "${SPAWN[@]}" --depends-on not-a-uuid
expect_err 2 "--depends-on a UUID and garbage" "${SPAWN[@]}" --depends-on "$A,zzz"
expect_err 2 "--priority -1" "${SPAWN[@]}" --priority -1
expect_err 2 "--priority 1000001" "${SPAWN[@]}" --priority 1000001
expect_err 2 "--priority 99999999999999999999" "${SPAWN[@]}" --priority 99999999999999999999
expect_err 2 "--priority 1.5" "${SPAWN[@]}" --priority 1.5
expect_err 2 "--timeout -5" "${SPAWN[@]}" --timeout -5
expect_err 2 "--timeout 0" "${SPAWN[@]}" --timeout 0
expect_err 2 "--max-retries -1" "${SPAWN[@]}" --max-retries -1
expect_err 2 "--delay -1" "${SPAWN[@]}" --delay -1
expect_err 2 "--backoff-base nan" "${SPAWN[@]}" --backoff-base nan
expect_err 2 "--workflow-id not-a-uuid" "${SPAWN[@]}" --workflow-id not-a-uuid
expect_err 2 "spawn: unknown option" "${SPAWN[@]}" --bogus
expect_err 2 "list: unknown option" task list --bogus
expect_err 2 "stats: unknown option" queue stats --bogus
expect_err 2 "db status: unknown option" db status --bogus
expect_err 2 "spawn: missing option value" task spawn --name
expect_err 2 "list: missing option value" task list --queue "$Q" --limit
expect_err 2 "spawn without --name" task spawn --queue "$Q"
expect_err 2 "spawn with a positional argument" "${SPAWN[@]}" extra
expect_err 2 "unknown command" frobnicate
expect_err 2 "unknown task command" task frob
expect_err 2 "unknown queue command" queue frob
expect_err 2 "unknown db command" db frob
run task
check "'contimg task' without a command: exit 2, usage on stderr, nothing on stdout" \
    '[ "$RC" -eq 2 ] && [[ $ERR == usage:* ]] && [ -z "$OUT" ]'
expect_err 2 "list --limit 0" task list --queue "$Q" --limit 0
expect_err 2 "list --offset -1" task list --queue "$Q" --offset -1
expect_err 2 "claim --lease 0" task claim --queue "$Q" --lease 0
expect_err 2 "claim --limit 0" task claim --queue "$Q" --limit 0
expect_err 2 "fail: unknown --category" task fail "$A" --token "$NOSUCH" --error x --category bogus
expect_err 2 "fail: --category lease_expired (not for workers)" task fail "$A" --token "$NOSUCH" \
    --error x --category lease_expired
expect_err 2 "fail without --error" task fail "$A" --token "$NOSUCH"
expect_err 5 "release with a token that does not hold it" task release "$A" --token "$NOSUCH"
expect_err 5 "retry a completed task" task retry "$A"
expect_err 4 "release a task that does not exist" task release "$NOSUCH" --token "$NOSUCH"
expect_err 2 "complete without --token" task complete "$A"
expect_err 2 "complete: --token not a UUID" task complete "$A" --token nope
expect_err 2 "complete: --result not JSON" task complete "$A" --token "$NOSUCH" --result '{x'
expect_err 4 "show a task that does not exist" task show "$NOSUCH"
expect_err 4 "cancel a task that does not exist" task cancel "$NOSUCH"
expect_err 4 "retry a task that does not exist" task retry "$NOSUCH"
expect_err 4 "complete a task that does not exist" task complete "$NOSUCH" --token "$NOSUCH"
expect_err 2 "--depends-on a task that does not exist" "${SPAWN[@]}" --depends-on "$NOSUCH"

# ---------------------------------------------------------------------------
echo "# database down"
DOWN=$TMP/no-cluster
mkdir -p "$DOWN"
# expect_down DESCRIPTION ENV... -- ARGS...: exit 3, one stderr line, no
# password, nothing on stdout.
expect_down() {
    local desc=$1 why=""
    shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    env -u CONTIMG_DATABASE_URL -u ABSURD_DATABASE_URL "${envs[@]}" "$BIN" "$@" \
        >"$TMP/out" 2>"$TMP/err"
    RC=$?
    OUT=$(cat "$TMP/out")
    ERR=$(cat "$TMP/err")
    [ "$RC" -eq 3 ] || why+="exit $RC, expected 3; "
    [ "$(nlines "$ERR")" -eq 1 ] || why+="$(nlines "$ERR") stderr lines; "
    [[ $ERR == "contimg: "* ]] || why+="stderr does not start with 'contimg: '; "
    [ -z "$OUT" ] || why+="stdout not empty; "
    [[ $ERR$OUT != *s3cretpw* ]] || why+="the password was printed; "
    if [ -z "$why" ]; then pass "$desc (exit 3)"; else fail "$desc" "${why}stderr: ${ERR:0:300}"; fi
}
S=CONTIMG_STATE_DIR=$DOWN
expect_down "no cluster: task list" "$S" -- task list
expect_down "no cluster: task spawn" "$S" -- task spawn --name x
expect_down "no cluster: queue stats" "$S" -- queue stats
expect_down "no cluster: task claim" "$S" -- task claim
expect_down "no cluster: task show" "$S" -- task show "$NOSUCH"
SOCK='CONTIMG_DATABASE_URL=postgresql:///nodb?host=/nonexistent-dir'
expect_down "socket URL that does not exist: task list" "$SOCK" -- task list
expect_down "socket URL that does not exist: task spawn" "$SOCK" -- task spawn --name x
PW='CONTIMG_DATABASE_URL=postgresql://u:s3cretpw@127.0.0.1:1/db'
expect_down "URL with a password: task list" "$PW" -- task list
expect_down "URL with a password: task spawn" "$PW" -- task spawn --name x
expect_down "URL with a password: queue stats" "$PW" -- queue stats
expect_down "URL with a password: reap" "$PW" -- reap
run_env() { env -u CONTIMG_DATABASE_URL -u ABSURD_DATABASE_URL "$@" >"$TMP/out" 2>"$TMP/err"; RC=$?; OUT=$(cat "$TMP/out"); ERR=$(cat "$TMP/err"); }
run_env "$PW" "$BIN" db status
check "URL with a password: db status exits 3 without the password" '[ "$RC" -eq 3 ] && [[ $OUT$ERR != *s3cretpw* ]]'
run_env "$PW" "$BIN" db url
check "db url does not print the password" '[ "$RC" -eq 0 ] && [[ $OUT$ERR != *s3cretpw* ]] && [[ $OUT == *127.0.0.1* ]]'
run_env ABSURD_DATABASE_URL=postgresql://u:s3cretpw@127.0.0.1:1/db "$BIN" db url
check "db url (ABSURD_DATABASE_URL) does not print the password" '[ "$RC" -eq 0 ] && [[ $OUT$ERR != *s3cretpw* ]]'
run_env 'CONTIMG_DATABASE_URL=host=127.0.0.1 port=1 user=u password=s3cretpw dbname=db' "$BIN" task list
check "key=value conninfo with a password: exit 3, one line, no password" '[ "$RC" -eq 3 ] && [ "$(nlines "$ERR")" -eq 1 ] && [[ $OUT$ERR != *s3cretpw* ]]'
run_env 'CONTIMG_DATABASE_URL=postgresql://u:s3cretpw@[bad' "$BIN" task list
check "unparseable URL with a password: exit 2, one line, no password" '[ "$RC" -eq 2 ] &&
    [ "$(nlines "$ERR")" -eq 1 ] && [ -z "$OUT" ] && [[ $ERR != *s3cretpw* ]]'
run_env "$S" "$BIN" db status
check "no cluster: db status exits 3" '[ "$RC" -eq 3 ]'

# ---------------------------------------------------------------------------
echo "# migrate again"
run db migrate --no-default-schedules
check "db migrate again exits 0" '[ "$RC" -eq 0 ]'
check "db migrate again applies 0 migrations" '[[ $OUT == *"(0 migrations applied"* ]]'
run db status
check "db status exits 0 and shows the schema version" '[ "$RC" -eq 0 ] && [[ $OUT == *"schema version"* ]]'

echo "# took $((SECONDS - start_time)) s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
