#!/usr/bin/env bash
# bench/calibration.sh -- contimg's calibration solve and apply on one calibrator
# observation, side by side with QuartiCal (PyPI) solving the same bandpass on a
# Measurement Set of the same data.
#
#   bench/calibration.sh [BUILD_DIR] [--full] [--keep DIR] [--threads T]
#
# The observation: a 10 Jy calibrator at the pointing, every antenna's X and Y gains
# corrupted by the simulator (--gains-seed 7: amplitudes 0.85-1.15, any phase, a 5 %
# ripple, delays to 3 ns), thermal noise of 0.05 Jy; 96 antennas and 12 integrations,
# 64 channels (default) or the full 768 channels and 24 integrations (--full). The
# model QuartiCal reads is the same observation simulated without gains or noise.
# Both solve the bandpass per channel over the whole observation (QuartiCal:
# diag_complex, time_interval 0, freq_interval 1) on T cores (default 2): QuartiCal with T
# threads, contimg's solve on one rank and on T (mpirun; its channels dealt over them),
# its apply on T (its baseline-times dealt over them). Printed: the wall times, the ratio per core, and the largest
# difference of the two solutions (contimg's caltable against QuartiCal's gains).
# Peers run in BUILD_DIR/calibration-venv (quartical and pyuvdata from PyPI; made if
# missing).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build keep="" full=false threads=2
while [ $# -gt 0 ]; do
    case "$1" in
    --full) full=true; shift ;;
    --keep) keep=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
build=$(cd "$build" && pwd)
contimg=$build/contimg
work=${keep:-$(mktemp -d /var/tmp/contimg-bench-calibration.XXXXXX)}
mkdir -p "$work"
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# mpirun's PMIx would try munge for 2.3 s where munged is not running (src/mpiutil.h).
munge -n >/dev/null 2>&1 || export PMIX_MCA_psec=${PMIX_MCA_psec:-^munge}
# shellcheck source=bench/bench_lib.sh
. "$here/bench_lib.sh"

venv=$build/calibration-venv
py=$venv/bin/python
if ! "$py" -c "import quartical, pyuvdata, casacore.tables, zarr, h5py" 2>/dev/null; then
    echo "making $venv (quartical, pyuvdata from PyPI) ..."
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check quartical pyuvdata h5py
fi

if $full; then sim=(--times 24) label="full size: 96 antennas, 768 channels, 24 integrations"
else sim=(--channels-per-subband 4 --times 12) label="96 antennas, 64 channels, 12 integrations"; fi
echo "0 0 10.0" >"$work/cal.txt"
start=2026-11-22T10:00:00
if [ ! -f "$work/cal.hdf5" ] || [ ! -f "$work/model.hdf5" ]; then
    echo "simulating the calibrator observation ($label) and its model ..."
    "$contimg" simulate --out "$work/cal" --start $start --dec 55 "${sim[@]}" --gains-seed 7 \
        --noise-jy 0.05 --sources "$work/cal.txt" --relative >/dev/null
    "$contimg" simulate --out "$work/model" --start $start --dec 55 "${sim[@]}" --noise-jy 0 \
        --sources "$work/cal.txt" --relative >/dev/null
    "$contimg" convert "$work/cal" --out "$work/cal.hdf5" >/dev/null
    "$contimg" convert "$work/model" --out "$work/model.hdf5" >/dev/null
    rm -rf "$work/cal" "$work/model"
fi
"$contimg" image "$work/cal.hdf5" --out "$work/probe" --size 128 --cell 20 --niter 0 --json \
    >"$work/probe.json"
ra=$(jget "$work/probe.json" centre_ra_deg) dec=$(jget "$work/probe.json" centre_dec_deg)
echo "calibrator at ($ra, $dec), the pointing at mid-observation"

echo "contimg calibrate solve (1 rank, then $threads) and apply ..."
t0=$(now)
"$contimg" calibrate solve "$work/cal.hdf5" --out "$work/ct1" --model "$ra,$dec,10" --json \
    >"$work/solve1.json"
ct_solve1=$(since "$t0")
t0=$(now)
mpirun -q --oversubscribe -np "$threads" "$contimg" calibrate solve "$work/cal.hdf5" \
    --out "$work/ct" --model "$ra,$dec,10" --json >"$work/solve.json"
ct_solve=$(since "$t0")
rm -f "$work/cal-ct.hdf5" # a fresh file, as in production (not one the kernel must free)
sync
t0=$(now)
mpirun -q --oversubscribe -np "$threads" "$contimg" calibrate apply "$work/cal.hdf5" \
    --cal "$work/ct" --out "$work/cal-ct.hdf5" --json >"$work/apply.json"
ct_apply=$(since "$t0")
echo "  solve $ct_solve1 s on 1 rank, $ct_solve s on $threads (rms $(jget "$work/solve.json" rms_jy) Jy), apply $ct_apply s"

echo "Measurement Sets by pyuvdata (the data, and the model as MODEL_DATA) ..."
for f in cal model; do
    if [ ! -d "$work/$f.ms" ]; then
        "$py" "$here/imaging_peers.py" ms --uvh5 "$work/$f.hdf5" --ra "$ra" --dec "$dec" \
            --out "$work/$f.ms" >/dev/null
    fi
done
"$py" "$here/calibration_peers.py" model-ms --data "$work/cal.ms" --model "$work/model.ms" \
    >/dev/null
qc=(input_ms.path="$work/cal.ms" input_ms.data_column=DATA input_model.recipe=MODEL_DATA
    'solver.terms=[B]' B.type=diag_complex B.time_interval=0 B.freq_interval=1
    output.gain_directory="$work/qc" output.overwrite=true dask.threads="$threads")
echo "QuartiCal (warm-up run first: numba compiles its kernels) ..."
(cd "$work" && "$venv/bin/goquartical" "${qc[@]}" >"$work/qc-warm.log" 2>&1) ||
    { echo "  QuartiCal failed: see $work/qc-warm.log"; tail -5 "$work/qc-warm.log"; exit 1; }
t0=$(now)
(cd "$work" && "$venv/bin/goquartical" "${qc[@]}" >"$work/qc.log" 2>&1)
qc_wall=$(since "$t0")
"$py" "$here/calibration_peers.py" compare --quartical "$work/qc" --caltable "$work/ct.cal.h5" \
    >"$work/compare.json"

echo
echo "bandpass solve ($label; wall seconds on $threads cores)"
printf "  %-34s %10s\n" "contimg solve, 1 rank" "$ct_solve1" "contimg solve, $threads ranks" \
    "$ct_solve" "contimg apply, $threads ranks" "$ct_apply" "QuartiCal, $threads threads (warm)" "$qc_wall"
r=$(calc "%.1f" "$qc_wall / $ct_solve")
echo "  QuartiCal per core / contimg's solve per core: $r x (goal >= 5 x)" \
     "$(awk -v r="$r" 'BEGIN { print (r >= 5) ? "meets" : "MISSES" }')"
both=$(calc "%.2f" "$ct_solve + $ct_apply")
echo "  contimg solve + apply: $both s (goal <= 10 s on 2 cores)" \
     "$(awk -v r="$both" 'BEGIN { print (r <= 10) ? "meets" : "MISSES" }')"
echo "agreement (both referred to antenna $(jget "$work/compare.json" reference), $(jget "$work/compare.json" solutions) solutions):" \
     "amplitude within $(jget "$work/compare.json" amp_ratio_max_dev)," \
     "phase within $(jget "$work/compare.json" phase_max_deg) deg"
