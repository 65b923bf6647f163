#!/usr/bin/env bash
# run_fuzz.sh CONTIMG FUZZ_DIR [MUTATIONS] -- each fuzz target (fuzz.h) on its seeds and
# MUTATIONS (default 10000) deterministic mutations of them: the short form the suite runs
# on every commit, under the release and the ASan builds. The seeds are made here -- a
# small simulated observation (two of its subband files and their combination) and images
# of it -- and, for the parsers, the texts in tests/fuzz/corpus/params. A crash keeps its
# input as FUZZ_DIR/crash-TARGET.bin, which libFuzzer replays (bench/README.md).
set -u
CONTIMG=${1:?usage: run_fuzz.sh CONTIMG FUZZ_DIR [MUTATIONS]}
BIN=${2:?usage: run_fuzz.sh CONTIMG FUZZ_DIR [MUTATIONS]}
N=${3:-10000}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export CONTIMG_PRODUCTS_DIR=$T/products HDF5_USE_FILE_LOCKING=FALSE
mkdir -p "$T/uvh5" "$T/fits"
# The pipeline commands here are fixtures, not what is fuzzed: under the ASan build the MPI
# runtime's own allocations at exit are not ours to report; the targets keep leak checking.
pipeline() { ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 "$CONTIMG" "$@"; }
pipeline simulate --out "$T/obs" --start 2026-11-22T10:00:00 --dec 55 --antennas 6 --times 2 \
    --channels-per-subband 1 >/dev/null &&
    cp "$T/obs/"*_sb00.hdf5 "$T/obs/"*_sb07.hdf5 "$T/uvh5/" &&
    pipeline convert "$T/obs" --out "$T/uvh5/combined.hdf5" >/dev/null &&
    pipeline image "$T/uvh5/combined.hdf5" --out "$T/img" --size 64 --niter 10 \
        >/dev/null && cp "$T/img-image.fits" "$T/img-model.fits" "$T/fits/" ||
    { echo "FAIL: the seeds could not be made" >&2; exit 1; }
# HDF5's own leaks on damaged files are suppressed (lsan.supp says why); ours are not.
export LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$HERE/lsan.supp
status=0
# Inputs a fuzzer once crashed on are corrupt input to the pipeline: refused with exit 2,
# under the release build too. corpus/uvh5 holds those our reader now refuses (they are
# fuzzed on too); hdf5-crashers those that crash HDF5 1.10 itself, which the pipeline
# opens in a child first (ct_uvh5_probe) -- never given to a target, which would crash.
# On a node whose memory is bounded (4 GB of address space here; not under ASan, whose
# shadow memory needs more): a count in a damaged header must not be taken at its word.
limit=4000000
ldd "$CONTIMG" 2>/dev/null | grep -q libasan && limit=unlimited
for f in "$HERE"/corpus/uvh5/* "$HERE"/hdf5-crashers/*; do
    out=$(ulimit -v $limit && pipeline image "$f" --out "$T/refused" --size 64 --niter 1 2>&1)
    rc=$?
    if [ $rc -ne 2 ] || ! grep -q "corrupt input" <<<"$out"; then
        echo "FAIL: $(basename "$f") was not refused as corrupt input (exit $rc): $out" >&2
        status=1
    fi
done
for t in uvh5 fits params; do
    corpus=$T/$t
    [ $t = uvh5 ] && corpus="$T/uvh5 $HERE/corpus/uvh5"
    [ $t = params ] && corpus=$HERE/corpus/params
    # shellcheck disable=SC2086 # corpus is a list of directories
    if "$BIN/fuzz_$t" -n "$N" -s 1 -o "$T/crash-$t.bin" $corpus >"$T/$t.out" 2>&1; then
        echo "ok   fuzz_$t: $(tail -1 "$T/$t.out")"
    else
        cp "$T/crash-$t.bin" "$BIN/crash-$t.bin" 2>/dev/null
        echo "FAIL: fuzz_$t (input kept as $BIN/crash-$t.bin): $(tail -5 "$T/$t.out")" >&2
        status=1
    fi
done
exit $status
