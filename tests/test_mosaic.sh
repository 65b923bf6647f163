#!/usr/bin/env bash
# test_mosaic.sh TEST_MOSAIC -- the mosaic tests on 1, 3 and 4 ranks (each run also
# checks its tiles against a one-tile mosaic made on one rank, bit for bit).
set -u
BIN=${1:?usage: test_mosaic.sh TEST_MOSAIC}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
status=0
for n in 1 3 4; do
    mkdir -p "$T/$n"
    if mpirun -q --oversubscribe -np "$n" "$BIN" "$T/$n"; then
        echo "ok   $n rank(s)"
    else
        echo "FAIL: $n rank(s)" >&2
        status=1
    fi
done
exit $status
