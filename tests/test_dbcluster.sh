#!/usr/bin/env bash
# The private PostgreSQL: concurrent first starts, idempotent start/stop,
# status exit codes, and refusal to follow a planted symlink.
# Usage: test_dbcluster.sh /path/to/contimg
set -u
CONTIMG=$1
passed=0
failed=0
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then
        passed=$((passed + 1))
        echo "ok   $what"
    else
        failed=$((failed + 1))
        echo "FAIL $what"
    fi
}

# Runs "$CONTIMG ARGS" twice at once; sets r1, r2 to the exit codes and
# leaves the outputs in $work/p1.out and $work/p2.out.
twice_at_once() {
    "$CONTIMG" "$@" >"$work/p1.out" 2>&1 &
    local p1=$!
    "$CONTIMG" "$@" >"$work/p2.out" 2>&1 &
    local p2=$!
    wait $p1
    r1=$?
    wait $p2
    r2=$?
}

work=$(mktemp -d /tmp/contimg-dbcluster.XXXXXX)
chmod 755 "$work"
cleanup() {
    CONTIMG_STATE_DIR=$work/state "$CONTIMG" db stop >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
export CONTIMG_STATE_DIR=$work/state

# No cluster yet: status says so with exit 3.
"$CONTIMG" db status >"$work/st.out" 2>&1
check "status before start exits 3" [ $? -eq 3 ]
check "status says not initialized" grep -q "not initialized" "$work/st.out"

# Two first starts at once: both succeed, one cluster.
twice_at_once db start
check "concurrent first starts both exit 0 ($r1, $r2)" [ $r1 -eq 0 -a $r2 -eq 0 ]
check "one of them found it already running" grep -q "already running" "$work/p1.out" "$work/p2.out"
check "no half-made cluster left behind" [ ! -e "$work/state/pg/data.tmp" ]
twice_at_once db migrate
check "concurrent migrations both exit 0 ($r1, $r2)" [ $r1 -eq 0 -a $r2 -eq 0 ]
applied=$(psql "$("$CONTIMG" db url)" -Atc "select count(*) from public.contimg_schema_migrations")
check "each migration recorded once ($applied)" [ "$applied" = "$("$CONTIMG" db status --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["schema_version"])')" ]
"$CONTIMG" db status >/dev/null 2>&1
check "status when running exits 0" [ $? -eq 0 ]

# The socket directory admits only its owner.
sock=$(psql "$("$CONTIMG" db url)" -Atc "show unix_socket_directories")
check "socket directory is mode 0700" [ "$(stat -c %a "$sock")" = "700" ]
check "no TCP listener" [ -z "$(psql "$("$CONTIMG" db url)" -Atc "show listen_addresses")" ]
# Authentication trusts the socket alone: no host (TCP) and no replication lines, latent or not.
hba=$(psql "$("$CONTIMG" db url)" -Atc "SELECT string_agg(type || ' ' || array_to_string(database, ',') || ' ' || auth_method, '|') FROM pg_hba_file_rules")
check "pg_hba: the socket only ($hba)" [ "$hba" = "local all trust" ]

# Stop twice, start again: data kept.
id=$("$CONTIMG" task spawn --name persisted)
check "stop exits 0" "$CONTIMG" db stop
out=$("$CONTIMG" db stop)
check "second stop says it was not running" [ "$out" = "PostgreSQL was not running" ]
"$CONTIMG" task list >/dev/null 2>&1
check "database down: task list exits 3" [ $? -eq 3 ]
check "restart exits 0" "$CONTIMG" db start
check "the task survived the restart" "$CONTIMG" task show "$id"

# A planted symlink where the cluster would go is refused, not followed.
if [ "$(id -u)" -eq 0 ]; then
    mkdir -p "$work/evil/pg" "$work/target"
    chmod 755 "$work/evil"
    rm -rf "$work/evil/pg"
    ln -s "$work/target" "$work/evil/pg"
    CONTIMG_STATE_DIR=$work/evil "$CONTIMG" db start >"$work/evil.out" 2>&1
    rc=$?
    check "symlinked cluster directory refused (exit $rc)" [ $rc -ne 0 ]
    check "the symlink target keeps its owner" [ "$(stat -c %U "$work/target")" = "root" ]
    check "one line explains it" [ "$(wc -l <"$work/evil.out")" -eq 1 ]
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
