#!/usr/bin/env bash
# bench/flagging.sh -- contimg's flagger on one observation with injected interference of
# known mask, side by side with AOFlagger (Debian's package, its default strategy) on a
# Measurement Set of the same data.
#
#   bench/flagging.sh [BUILD_DIR] [--small] [--keep DIR] [--threads T]
#
# The observation: 96 antennas, 768 channels, 24 integrations (--small: 32 antennas, 16 x
# 8 channels, 12 integrations), a 10 Jy source at the pointing and two weaker ones,
# thermal noise of 1 Jy per part, and the simulator's interference (--rfi-seed 7
# --rfi-jy 10: transmitters in ~2 % of channels at 5-20 Jy on every baseline, a broadband
# burst integration at 5 Jy, spikes in 1e-3 of samples at 2-10 Jy, one dead antenna).
# Both flag on T threads (default 2): contimg `flag --threads T` on one rank, AOFlagger
# `-j T`. Each one's flags are scored against the simulator's mask by tests/check_flags
# (recall of the interference above 5 sigma, its parts, and false positives among the
# clean samples); AOFlagger's are carried from its Measurement Set back onto a copy of
# the UVH5 file first (flagging_peers.py). Printed: wall times, the speed ratio (the same
# thread count: per core too), recall and false positives side by side.
# Peers: aoflagger from Debian (installed with apt-get if missing and we are root);
# pyuvdata and python-casacore in BUILD_DIR/imaging-venv (made if missing).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build keep="" small=false threads=2
while [ $# -gt 0 ]; do
    case "$1" in
    --small) small=true; shift ;;
    --keep) keep=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
build=$(cd "$build" && pwd)
contimg=$build/contimg check=$build/tests/check_flags
[ -x "$check" ] || { echo "build the tests first ($check is missing)" >&2; exit 2; }
work=${keep:-$(mktemp -d /var/tmp/contimg-bench-flagging.XXXXXX)}
mkdir -p "$work"
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PMIX_MCA_psec=^munge
# shellcheck source=bench/bench_lib.sh
. "$here/bench_lib.sh"

if $small; then
    ant=32 ch=8 nt=12
else
    ant=96 ch=48 nt=24
fi
seed=7 rfi=10 noise=1
venv=$build/imaging-venv py=$venv/bin/python
if ! "$py" -c "import pyuvdata, casacore.tables, h5py" 2>/dev/null; then
    echo "making $venv (pyuvdata, python-casacore, h5py) ..."
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check pyuvdata python-casacore h5py
fi
if ! command -v aoflagger >/dev/null || [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing Debian's aoflagger and GNU time ..."
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q aoflagger time >/dev/null
    else
        echo "aoflagger or GNU time is missing (apt-get install aoflagger time)" >&2
        exit 2
    fi
fi

start=2026-11-22T10:00:00
if [ ! -f "$work/rfi.hdf5" ]; then
    echo "simulating $ant antennas, $((16 * ch)) channels, $nt integrations with interference ..."
    cat >"$work/sky.txt" <<'SRC'
0 0 10.0
0.6 0.3 2.0
-0.4 -0.5 1.5
SRC
    "$contimg" simulate --out "$work/sim" --start $start --dec 55 --antennas $ant \
        --channels-per-subband $ch --times $nt --noise-jy $noise --sources "$work/sky.txt" \
        --relative --rfi-seed $seed --rfi-jy $rfi >/dev/null
    "$contimg" convert "$work/sim" --out "$work/rfi.hdf5" >/dev/null
fi
input_gb=$(calc "%.2f" "$(stat -c %s "$work/rfi.hdf5") / 1e9")
echo "input: $work/rfi.hdf5 ($input_gb GB), $threads thread(s)"

echo "contimg flag --threads $threads ..."
rm -f "$work/ct.hdf5"
sync
t0=$(now)
/usr/bin/time -f "%M" -o "$work/ct.mem" "$contimg" flag "$work/rfi.hdf5" --out "$work/ct.hdf5" \
    --threads "$threads" --json >"$work/ct.json"
ct_s=$(since "$t0")
ct_gb=$(calc "%.2f" "$(cat "$work/ct.mem") / 1e6")
echo "  $ct_s s (read $(jget "$work/ct.json" timings.read), detect $(jget "$work/ct.json" timings.detect), write $(jget "$work/ct.json" timings.write) s), peak memory $ct_gb GB"
"$check" "$work/ct.hdf5" "$work/rfi.hdf5" "$work/sim" $ant $ch $nt $seed $rfi $noise 0 1 \
    >"$work/ct-score.json" || true

if [ ! -d "$work/rfi.ms" ]; then
    echo "a Measurement Set by pyuvdata ..."
    "$contimg" image "$work/rfi.hdf5" --out "$work/probe" --size 128 --cell 20 --niter 0 --json \
        >"$work/probe.json"
    "$py" "$here/imaging_peers.py" ms --uvh5 "$work/rfi.hdf5" \
        --ra "$(jget "$work/probe.json" centre_ra_deg)" \
        --dec "$(jget "$work/probe.json" centre_dec_deg)" --out "$work/rfi.ms" >/dev/null
fi
echo "aoflagger -j $threads (its default strategy) ..."
rm -rf "$work/ao.ms"
cp -r "$work/rfi.ms" "$work/ao.ms"
sync
t0=$(now)
/usr/bin/time -f "%M" -o "$work/ao.mem" aoflagger -j "$threads" "$work/ao.ms" >"$work/ao.log" 2>&1
ao_s=$(since "$t0")
ao_gb=$(calc "%.2f" "$(cat "$work/ao.mem") / 1e6")
echo "  $ao_s s, peak memory $ao_gb GB"
"$py" "$here/flagging_peers.py" flags --ms "$work/ao.ms" --uvh5 "$work/rfi.hdf5" \
    --out "$work/ao.hdf5" >"$work/ao-carry.json"
"$check" "$work/ao.hdf5" "$work/rfi.hdf5" "$work/sim" $ant $ch $nt $seed $rfi $noise 0 1 \
    >"$work/ao-score.json" || true

echo
echo "flagging ($threads thread(s) each; lower time is better; goal contimg >= 2 x AOFlagger's speed per core)"
printf "  %-12s %10s %10s %10s %10s %10s %10s %10s\n" "" seconds recall "false pos" dead \
    transmitter burst spike
for who in ct ao; do
    s=$([ $who = ct ] && echo "$ct_s" || echo "$ao_s")
    "$py" - "$work/$who-score.json" "$([ $who = ct ] && echo contimg || echo aoflagger)" "$s" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("  %-12s %10s %10.4f %10.5f %10.4f %10.4f %10.4f %10.4f" % (
    sys.argv[2], sys.argv[3], r["recall"], r["false_positive"], r["dead"][1],
    r["transmitter"][1], r["burst"][1], r["spike"][1]))
PY
done
echo "  speed ratio (AOFlagger's time / contimg's, the same threads): $(calc "%.2f" "$ao_s / $ct_s")"
echo "  peak memory: contimg $ct_gb GB, AOFlagger $ao_gb GB"
echo "  (interference samples above 5 sigma: $(jget "$work/ct-score.json" interference); clean: $(jget "$work/ct-score.json" clean))"
