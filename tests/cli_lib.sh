# cli_lib.sh -- what the command-line tests share (sourced; T, a scratch directory, set by
# the caller): one line per check, a count of failures, and the check of a refusal.
failed=0
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}
ok() { echo "ok   $*"; }
run() { # run DESCRIPTION COMMAND...: the command must exit 0
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
expect_exit() { # expect_exit CODE PATTERN DESCRIPTION COMMAND...: exit CODE, PATTERN on stderr
    local code=$1 pat=$2 what=$3
    shift 3
    "$@" >"$T/bad.out" 2>"$T/bad.err"
    local rc=$?
    if [ $rc -ne "$code" ] || ! grep -q -- "$pat" "$T/bad.err"; then
        bad "$what: exit $rc (wanted $code), stderr: $(cat "$T/bad.err")"
    else
        ok "$what: exit $rc: $(head -c 150 "$T/bad.err")"
    fi
}
q() { psql "$URL" -XAtq -c "$1"; } # q SQL: one query's rows against $URL's database
same() { # same DESCRIPTION WANT GOT: GOT must be WANT
    if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$3', want '$2'"; fi
}
task_counts() { # task_counts QUEUE: "task status count" of its tasks, comma-separated, by name
    q "SELECT string_agg(task_name || ' ' || status || ' ' || n, ',' ORDER BY task_name)
         FROM (SELECT task_name, status, count(*) n FROM absurd.tasks
                WHERE queue_name = '$1' GROUP BY 1, 2) x"
}
drain() { # drain LOG [VAR...]: `contimg run --drain` on 2 ranks, VAR... and CONTIMG_STATE_DIR passed on
    local log=$1 xs=() v
    shift
    for v in "$@" CONTIMG_STATE_DIR; do xs+=(-x "$v"); done
    mpirun -q --allow-run-as-root --oversubscribe "${xs[@]}" -np 2 "$CONTIMG" run --drain \
        >"$log" 2>&1 || bad "mpirun -np 2 contimg run --drain: $(tail -5 "$log")"
}
own_database() { # own_database NAME: a database of the test's own beside the suite's (its rows
    # and files are not other tests' to judge), dropped with $T at exit; sets URL and exports
    # it as CONTIMG_DATABASE_URL.
    MAIN_URL=$("$CONTIMG" db url)
    DB=${1}_$$
    psql "$MAIN_URL" -XAtq -c "CREATE DATABASE $DB" || bad "create database $DB"
    trap 'psql "$MAIN_URL" -XAtq -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
          rm -rf "$T"' EXIT
    URL=${MAIN_URL/\/contimg\?/\/$DB\?}
    export CONTIMG_DATABASE_URL=$URL
}
