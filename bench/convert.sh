#!/usr/bin/env bash
# bench/convert.sh -- subband conversion throughput on one full-size
# observation (16 x 48 channels, 96 antennas, 24 integrations: 1.4 GB),
# side by side with the disk's own limit (copying the same bytes) and with
# pyuvdata combining the same 16 files (the seed pipeline's way).
#
#   bench/convert.sh [BUILD_DIR] [--ranks "1 2 4"] [--keep DIR] [--no-pyuvdata]
#
# The observation is simulated once into DIR (default a temporary
# directory, removed at the end unless --keep names one).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build ranks="1 2 4" keep="" pyuvdata=true
while [ $# -gt 0 ]; do
    case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    --no-pyuvdata) pyuvdata=false; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) build=$1; shift ;;
    esac
done
contimg=$build/contimg
work=${keep:-$(mktemp -d /var/tmp/contimg-bench-convert.XXXXXX)}
mkdir -p "$work"
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# mpirun's PMIx would try munge for 2.3 s where munged is not running (src/mpiutil.h).
munge -n >/dev/null 2>&1 || export PMIX_MCA_psec=${PMIX_MCA_psec:-^munge}

now() { date +%s.%N; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%8.1f MB/s  (%.2f s)", b / 1e6 / s, s }'; }

obs=$work/obs
if [ ! -f "$obs/2026-11-22T10:00:00_sb15.hdf5" ]; then
    echo "simulating one full-size observation into $obs ..."
    t0=$(now)
    "$contimg" simulate --out "$obs" --start 2026-11-22T10:00:00 --dec 55 --noise-jy 1 \
        --gains-seed 5 >/dev/null
    echo "  simulate: $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }')"
fi
bytes=$(du -cb "$obs"/*_sb*.hdf5 | tail -1 | cut -f1)
echo "input: 16 files, $(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }'), $(nproc) CPUs"
echo

sync
echo "disk limit (cp of the same 16 files, then sync):"
rm -rf "$work/copy" && mkdir -p "$work/copy"
t0=$(now); cp "$obs"/*_sb*.hdf5 "$work/copy/"; sync; t1=$(now)
copy_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
echo "  cp               $(rate "$bytes" "$copy_s")"
rm -rf "$work/copy"

echo "contimg convert (read 16 files, write one combined file):"
declare -A conv
for n in $ranks; do
    out=$work/combined-$n.hdf5
    rm -f "$out"; sync
    t0=$(now)
    if [ "$n" -eq 1 ]; then
        "$contimg" convert "$obs" --out "$out" >/dev/null
    else
        mpirun --oversubscribe -np "$n" "$contimg" convert "$obs" --out "$out" >/dev/null
    fi
    sync
    t1=$(now)
    conv[$n]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    echo "  $n rank(s)        $(rate "$bytes" "${conv[$n]}")"
done
first=${ranks%% *}
for n in $ranks; do
    [ "$n" = "$first" ] && continue
    if cmp -s "$work/combined-$first.hdf5" "$work/combined-$n.hdf5"; then
        echo "  $n ranks: byte-identical to $first"
    else
        echo "  $n ranks: DIFFERS from $first"
    fi
done

if $pyuvdata; then
    bash "$top/tests/make_pyvenv.sh" "$top/.venv" >/dev/null
    echo "pyuvdata (read 16 files, combine in frequency, write_uvh5):"
    rm -f "$work/pyuvdata.hdf5"; sync
    t0=$(now)
    "$top/.venv/bin/python" - "$obs" "$work/pyuvdata.hdf5" <<'PY'
import glob, sys, warnings
from astropy.utils import iers
iers.conf.auto_download = False
iers.conf.auto_max_age = None
warnings.simplefilter("ignore")
from pyuvdata import UVData
files = sorted(glob.glob(sys.argv[1] + "/*_sb[0-9][0-9].hdf5"))
uv = UVData.from_file(files, file_type="uvh5", axis="freq", run_check=False)
uv.reorder_freqs(channel_order="freq")
uv.write_uvh5(sys.argv[2], clobber=True)
PY
    sync
    t1=$(now)
    py_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
    echo "  pyuvdata         $(rate "$bytes" "$py_s")"
fi

echo
echo "summary (MB/s of input converted; higher is better)"
printf "  %-22s %10s\n" "disk copy" "$(awk -v b="$bytes" -v s="$copy_s" 'BEGIN { printf "%.1f", b / 1e6 / s }')"
for n in $ranks; do
    printf "  %-22s %10s\n" "contimg, $n rank(s)" "$(awk -v b="$bytes" -v s="${conv[$n]}" 'BEGIN { printf "%.1f", b / 1e6 / s }')"
done
if $pyuvdata; then
    printf "  %-22s %10s\n" "pyuvdata" "$(awk -v b="$bytes" -v s="$py_s" 'BEGIN { printf "%.1f", b / 1e6 / s }')"
fi
