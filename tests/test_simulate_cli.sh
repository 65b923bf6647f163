#!/usr/bin/env bash
# `contimg simulate` as a person runs it: options reach the files (checked with
# Debian's h5py), bad options are refused with one line and write nothing.
# Usage: test_simulate_cli.sh CONTIMG
set -u
contimg=$1
passed=0 failed=0
check() {
    local what=$1
    shift
    if "$@"; then passed=$((passed + 1)); echo "ok   $what"; else failed=$((failed + 1)); echo "FAIL $what"; fi
}
work=$(mktemp -d /tmp/contimg-simcli.XXXXXX)
trap 'rm -rf "$work"' EXIT
small=(--start 2026-11-22T10:00:00 --dec 55 --antennas 5 --channels-per-subband 3 --times 2)
h5() { /usr/bin/python3 -c "import h5py, sys; f = h5py.File(sys.argv[1], 'r'); print($1)" "$2"; }

"$contimg" simulate --out "$work/a" "${small[@]}" >"$work/a.out"
check "default run exits 0" [ $? -eq 0 ]
check "prints the 16 paths" [ "$(wc -l <"$work/a.out")" -eq 16 ]
f=$work/a/2026-11-22T10:00:00_sb07.hdf5
check "uvw float64 by default" [ "$(h5 "f['Header/uvw_array'].dtype" "$f")" = "float64" ]
check "nothing flagged by default" [ "$(h5 "int(f['Data/flags'][()].sum())" "$f")" = "0" ]
check "antennas reach the file" [ "$(h5 "int(f['Header/Nants_data'][()])" "$f")" = "5" ]

"$contimg" simulate --out "$work/b" "${small[@]}" --uvw-float32 --flag-fraction 0.3 \
    --noise-jy 0.5 --gains-seed 9 --seed 4 >/dev/null
check "--uvw-float32 stores float32" \
    [ "$(h5 "f['Header/uvw_array'].dtype" "$work/b/2026-11-22T10:00:00_sb07.hdf5")" = "float32" ]
frac=$(/usr/bin/python3 -c "
import glob, h5py, numpy as np
v = [h5py.File(p, 'r')['Data/flags'][()] for p in glob.glob('$work/b/*.hdf5')]
print(np.mean(np.concatenate([x.ravel() for x in v])))")
check "--flag-fraction 0.3 flags about 30 % ($frac)" \
    /usr/bin/python3 -c "import sys; sys.exit(abs($frac - 0.3) > 0.03)"

printf '# two sources\n10.0 41.0 2.0 -0.7\n 83.63 22.01 1.5\n' >"$work/sources.txt"
"$contimg" simulate --out "$work/c" "${small[@]}" --sources "$work/sources.txt" >/dev/null
check "a sources file is accepted" [ $? -eq 0 ]
grep -q "2 sources" <(h5 "f['Header/history'][()].decode()" "$work/c/2026-11-22T10:00:00_sb00.hdf5")
check "the history records 2 sources" [ $? -eq 0 ]

refuse() { # refuse NAME ARGS...: exit 2, one stderr line, nothing written
    local name=$1
    shift
    rm -rf "$work/bad"
    "$contimg" simulate "$@" >"$work/bad.out" 2>"$work/bad.err"
    local rc=$?
    check "$name: exit 2 (got $rc)" [ $rc -eq 2 ]
    check "$name: one line on stderr" [ "$(wc -l <"$work/bad.err")" -eq 1 ]
    check "$name: nothing on stdout" [ ! -s "$work/bad.out" ]
    check "$name: nothing written" [ ! -e "$work/bad" ] || [ -z "$(ls -A "$work/bad")" ]
}
printf '10.0 41.0\n' >"$work/short.txt"
printf '400 41.0 1\n' >"$work/ra.txt"
refuse "declination 95" --out "$work/bad" --start 2026-11-22T10:00:00 --dec 95
refuse "start not ISO" --out "$work/bad" --start yesterday --dec 55
refuse "no --out" --start 2026-11-22T10:00:00 --dec 55
refuse "97 antennas" --out "$work/bad" "${small[@]}" --antennas 97
refuse "flag fraction 2" --out "$work/bad" "${small[@]}" --flag-fraction 2
refuse "negative noise" --out "$work/bad" "${small[@]}" --noise-jy -1
refuse "sources line too short" --out "$work/bad" "${small[@]}" --sources "$work/short.txt"
refuse "source RA out of range" --out "$work/bad" "${small[@]}" --sources "$work/ra.txt"
refuse "missing sources file" --out "$work/bad" "${small[@]}" --sources "$work/none.txt"
refuse "unknown option" --out "$work/bad" "${small[@]}" --frobnicate

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
