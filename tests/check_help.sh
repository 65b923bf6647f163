#!/usr/bin/env bash
# check_help.sh -- every command's --help, as a user reads it.
#
#   bash tests/check_help.sh /path/to/contimg
#
# For `contimg --help`, each command it lists and each subcommand those list:
# exit 0, the usage on stdout and nothing on stderr, the usage naming the
# command, and no format sequence left unexpanded (a "%%", "%s", "%d" ... that a
# printf meant to expand or a puts printed as is). Prints one line per command
# and ends with "N passed, M failed".
set -u
CONTIMG=${1:?usage: check_help.sh CONTIMG}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

commands_of() { # the names in the "Commands:" section of a help text on stdin
    awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { on = 0 }'
}

check() { # check ARGS...: `contimg ARGS --help`
    local what="contimg${1:+ $*} --help" rc
    "$CONTIMG" "$@" --help >"$T/out" 2>"$T/err"
    rc=$?
    local why=""
    if [ $rc -ne 0 ]; then
        why="exit $rc"
    elif [ -s "$T/err" ]; then
        why="stderr: $(head -1 "$T/err")"
    elif ! head -1 "$T/out" | grep -qE "^usage: (mpirun -np N )?contimg${1:+ $*}( |$)"; then
        why="first line is not the usage of 'contimg $*': $(head -1 "$T/out")"
    elif grep -nE '%%|%[-+ 0#]*[0-9.*]*(l|ll|z|h)?[sdiufgGeExXcp]\b' "$T/out" >"$T/fmt"; then
        why="a format sequence left unexpanded: $(head -1 "$T/fmt")"
    fi
    if [ -z "$why" ]; then
        pass=$((pass + 1))
        echo "ok   $what"
    else
        fail=$((fail + 1))
        echo "FAIL $what: $why"
    fi
}

check
top=$("$CONTIMG" --help | commands_of)
[ -n "$top" ] || { echo "FAIL contimg --help lists no commands"; exit 1; }
for c in $top; do
    check "$c"
    for s in $("$CONTIMG" "$c" --help 2>/dev/null | commands_of); do
        check "$c" "$s"
    done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
