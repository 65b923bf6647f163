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
