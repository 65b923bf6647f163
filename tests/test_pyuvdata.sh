#!/usr/bin/env bash
# Interoperability with pyuvdata (the reference UVH5 implementation):
# pyuvdata reads a simulated observation with its checks on and finds what
# h5py finds; pyuvdata writes it again and contimg reads the same data back.
# Usage: test_pyuvdata.sh CONTIMG VENV_PYTHON UVH5_COMPARE
set -u
contimg=$1 py=$2 compare=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d /tmp/contimg-pyuvdata.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$contimg" simulate --out "$work/ours" --start 2026-11-22T10:00:00 --dec 55 --antennas 7 \
    --channels-per-subband 4 --times 3 --noise-jy 0.2 --gains-seed 3 >/dev/null || {
    echo "simulate failed"
    echo "0 passed, 1 failed"
    exit 1
}
"$py" "$here/check_pyuvdata.py" "$work/ours" "$work/theirs"
r1=$?
pairs=()
for f in "$work"/ours/*.hdf5; do
    pairs+=("$f" "$work/theirs/$(basename "$f")")
done
"$compare" "${pairs[@]}"
r2=$?
[ $r1 -eq 0 ] && [ $r2 -eq 0 ]
