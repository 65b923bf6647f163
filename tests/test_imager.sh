#!/usr/bin/env bash
# test_imager.sh TEST_IMAGER -- the distributed imager on 1, 2 and 4 ranks, and on 1
# and 2 ranks of 3 threads, at two accuracies: each run checked (on 1 rank against the
# one-rank gridder and a direct Fourier transform), then the images compared byte for
# byte across rank and thread counts.
set -u
BIN=${1:?usage: test_imager.sh TEST_IMAGER}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
status=0
for eps in 1e-4 1e-6; do
    for n in 1 2 4; do
        if ! mpirun -q --allow-run-as-root --oversubscribe -np "$n" "$BIN" "$T/img-$eps-$n" "$eps"; then
            echo "FAIL: $n rank(s), epsilon $eps" >&2
            status=1
        fi
    done
    # Threads: more of them than cores, so that regions really run out of order.
    for n in 1 2; do
        if ! mpirun -q --allow-run-as-root --oversubscribe --bind-to none -np "$n" "$BIN" \
            "$T/img-$eps-${n}x3" "$eps" 3; then
            echo "FAIL: $n rank(s) x 3 threads, epsilon $eps" >&2
            status=1
        fi
    done
    for n in 2 4 1x3 2x3; do
        for what in "" .slant; do
            if cmp "$T/img-$eps-1$what" "$T/img-$eps-$n$what"; then
                echo "ok   epsilon $eps: $n ranks give the 1-rank images${what:+ ($what)} bit for bit"
            else
                echo "FAIL: epsilon $eps: $n ranks differ from 1${what:+ ($what)}" >&2
                status=1
            fi
        done
    done
done
exit $status
