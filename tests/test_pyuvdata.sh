#!/usr/bin/env bash
# Interoperability with pyuvdata (the reference UVH5 implementation):
# pyuvdata reads a simulated observation with its checks on and finds what
# h5py finds; pyuvdata writes it again and contimg reads the same data back;
# contimg converts both groups to the same combined data, which pyuvdata
# reads with its checks on.
# Usage: test_pyuvdata.sh CONTIMG VENV_PYTHON UVH5_COMPARE [--convert]
# With --convert it also converts (MPI; the sanitizer build runs without it).
set -u
contimg=$1 py=$2 compare=$3 convert=${4:-}
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

# contimg converts both groups, ours and the one pyuvdata wrote, to the same
# data; pyuvdata reads the combined file with its checks on.
r3=0
[ "$convert" = "--convert" ] || exit $(( r1 != 0 || r2 != 0 ))
for g in ours theirs; do
    if ! "$contimg" convert "$work/$g" --out "$work/$g-combined.hdf5" >/dev/null 2>"$work/err"; then
        echo "FAIL convert of the $g group: $(cat "$work/err")"
        r3=1
    fi
done
[ $r3 -eq 0 ] && { "$compare" "$work/ours-combined.hdf5" "$work/theirs-combined.hdf5" || r3=1; }
"$py" - "$work/ours-combined.hdf5" <<'PY' || r3=1
import sys, warnings
import numpy as np
from astropy.utils import iers
iers.conf.auto_download = False
iers.conf.auto_max_age = None
from pyuvdata import UVData
warnings.simplefilter("ignore")
uv = UVData.from_file(sys.argv[1], file_type="uvh5", run_check=True, check_extra=True,
                      run_check_acceptability=True)
f = uv.freq_array.ravel()
ok = uv.Nfreqs == 64 and np.all(np.diff(f) > 0) and uv.uvw_array.dtype == np.float64
print(("ok  " if ok else "FAIL") + f" pyuvdata reads the combined file: {uv.Nfreqs} channels "
      f"{f[0] / 1e6:.3f}..{f[-1] / 1e6:.3f} MHz ascending, uvw {uv.uvw_array.dtype}")
sys.exit(0 if ok else 1)
PY
# contimg flag on a file pyuvdata wrote (its flags LZF-compressed): pyuvdata reads the
# output with its checks on, every dataset but Data/flags is the input's, and the flags
# hold at least the input's.
theirs=$(ls "$work"/theirs/*.hdf5 | head -1)
if ! "$contimg" flag "$theirs" --out "$work/flagged.hdf5" >/dev/null 2>"$work/err"; then
    echo "FAIL flag of a pyuvdata file: $(cat "$work/err")"
    r3=1
fi
"$py" - "$theirs" "$work/flagged.hdf5" <<'PY' || r3=1
import sys, warnings
import h5py
import numpy as np
from astropy.utils import iers
iers.conf.auto_download = False
iers.conf.auto_max_age = None
from pyuvdata import UVData
warnings.simplefilter("ignore")
src, out = sys.argv[1], sys.argv[2]
a, b = (UVData.from_file(p, file_type="uvh5", run_check=True) for p in (src, out))
bad = []
with h5py.File(src) as fa, h5py.File(out) as fb:
    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name != "Data/flags":
            if name not in fb or not np.array_equal(obj[()], fb[name][()]):
                bad.append(name)
    fa.visititems(visit)
    lzf_in = fa["Data/flags"].compression == "lzf"
ok = (not bad and lzf_in and np.array_equal(a.data_array, b.data_array)
      and np.all(b.flag_array[a.flag_array]))
print(("ok  " if ok else "FAIL") + f" contimg flag on pyuvdata's file (LZF flags: {lzf_in}): "
      f"pyuvdata reads it, datasets changed besides the flags: {bad}, "
      f"{int(b.flag_array.sum())} flags from {int(a.flag_array.sum())}")
sys.exit(0 if ok else 1)
PY
[ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ $r3 -eq 0 ]
