#!/usr/bin/env bash
# test_convert.sh CONTIMG -- `contimg convert` end to end: a simulated group combined on
# 1 and 4 ranks (byte-identical), the result checked element by element against the 16
# inputs with h5py, damaged and inconsistent groups refused cleanly, and the QA gate.
set -u
CONTIMG=${1:?usage: test_convert.sh CONTIMG}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun -q --allow-run-as-root --oversubscribe)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); }
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then ok; else bad "$what"; fi
}

# ---- a small observation -----------------------------------------------------------------
# uvw as the correlator stores it (float32); when this simulate lacks --uvw-float32, the
# files are rewritten so with h5py.
SIM=(--start 2026-11-22T10:00:00 --dec 55 --antennas 6 --channels-per-subband 4 --times 3
    --noise-jy 0.1)
if ! "$CONTIMG" simulate --out "$T/g" "${SIM[@]}" --uvw-float32 >/dev/null 2>&1; then
    rm -rf "${T:?}/g"
    "$CONTIMG" simulate --out "$T/g" "${SIM[@]}" >/dev/null || {
        echo "FAIL: simulate"
        exit 1
    }
    $PY -c '
import sys, h5py, numpy as np
for p in sys.argv[1:]:
    with h5py.File(p, "r+") as f:
        u = f["Header/uvw_array"][()]
        del f["Header/uvw_array"]
        f["Header/uvw_array"] = u.astype(np.float32)
' "$T"/g/*.hdf5 || exit 1
fi
mkdir -p "$T/out"

# ---- good conversions ----------------------------------------------------------------------
t0=$(date +%s.%N)
"$CONTIMG" convert "$T/g" --out "$T/out/one.h5" >"$T/one.out" 2>"$T/one.err"
rc=$?
t1=$(date +%s.%N)
check "1-rank convert exits 0 (rc=$rc: $(cat "$T/one.err"))" test $rc -eq 0
check "1-rank convert prints the output path" grep -qx "$T/out/one.h5" "$T/one.out"
check "1-rank convert passes QA" grep -q "^qa: passed" "$T/one.out"
check "1-rank convert: nothing on stderr" test ! -s "$T/one.err"

# 4 ranks, the files listed, small blocks so each rank moves several per subband.
"${MPIRUN[@]}" -np 4 "$CONTIMG" convert "$T"/g/*.hdf5 --out "$T/out/four.h5" \
    --block-bytes 2000 --json >"$T/four.json" 2>"$T/four.err"
rc=$?
t2=$(date +%s.%N)
check "4-rank convert exits 0 (rc=$rc: $(cat "$T/four.err"))" test $rc -eq 0
check "4-rank --json reports 4 ranks and a passed QA" $PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["n_ranks"] == 4 and d["qa"]["passed"] and d["nfreqs"] == 64, d
' "$T/four.json"
check "1-rank and 4-rank outputs are byte-identical" cmp -s "$T/out/one.h5" "$T/out/four.h5"
"${MPIRUN[@]}" -np 3 "$CONTIMG" convert "$T/g" --out "$T/out/three.h5" >/dev/null 2>&1
check "3-rank output is byte-identical too" cmp -s "$T/out/one.h5" "$T/out/three.h5"
# A long output path (here 330 bytes; products directories are wherever a site mounts
# them): Open MPI's lockedfile component aborted the job past about 240 bytes.
long=$T/long/$(printf 'd%.0s' $(seq 120))/$(printf 'e%.0s' $(seq 120))
mkdir -p "$long"
"${MPIRUN[@]}" -np 2 "$CONTIMG" convert "$T/g" --out "$long/long-path.h5" >"$T/long.out" 2>&1
rc=$?
check "a ${#long}-byte output directory under mpirun: converted, the same bytes (rc=$rc: $(tail -2 "$T/long.out"))" \
    cmp -s "$T/out/one.h5" "$long/long-path.h5"
check "no temporary files left in the output directory" \
    test "$(ls "$T/out" | sort | tr '\n' ' ')" = "four.h5 one.h5 three.h5 "
echo "timing: 1 rank $(echo "$t1 - $t0" | bc) s, 4 ranks $(echo "$t2 - $t1" | bc) s (wall, incl. startup)"

# ---- the combined file equals the 16 inputs, reordered -------------------------------------
check "combined file equals the inputs element by element (h5py)" $PY - "$T/out/one.h5" "$T/g" <<'PYEOF'
import glob, sys
import h5py, numpy as np
out, d = sys.argv[1], sys.argv[2]
files = sorted(glob.glob(d + "/*_sb??.hdf5"))
assert len(files) == 16, files
subs = [h5py.File(f, "r") for f in files]          # sb00 .. sb15
order = subs[::-1]                                  # sb15 first: ascending frequency
o = h5py.File(out, "r")
H, D = o["Header"], o["Data"]
nf = subs[0]["Header/Nfreqs"][()]
assert H["Nfreqs"][()] == 16 * nf
freq = H["freq_array"][()]
assert freq.ndim == 1 and np.all(np.diff(freq) > 0), "freq not ascending"
ref_freq = np.concatenate([s["Header/freq_array"][()].reshape(-1) for s in order])
assert np.array_equal(freq, ref_freq)
assert np.array_equal(H["channel_width"][()], np.concatenate(
    [np.broadcast_to(s["Header/channel_width"][()], (nf,)) for s in order]))
assert H["uvw_array"].dtype == np.float64, H["uvw_array"].dtype
assert subs[0]["Header/uvw_array"].dtype == np.float32
assert np.array_equal(H["uvw_array"][()], subs[0]["Header/uvw_array"][()].astype(np.float64))
for k in ["time_array", "ant_1_array", "ant_2_array", "polarization_array", "antenna_numbers",
          "antenna_positions", "Nblts", "Nbls", "Ntimes", "Npols", "integration_time"]:
    assert np.array_equal(H[k][()], subs[0]["Header/" + k][()]), k
assert H["extra_keywords/phase_center_dec"][()] == subs[0]["Header/extra_keywords/phase_center_dec"][()]
hist = H["history"][()].decode()
assert hist.endswith("combined by contimg convert from 16 subbands"), hist
assert D["visdata"].ndim == 3 and D["visdata"].shape == (H["Nblts"][()], 16 * nf, H["Npols"][()])
def plain(a):  # h5py may hand the {r, i} compound back as complex or as fields
    return a["r"] + 1j * a["i"].astype(np.complex128) if a.dtype.names else a
for name in ["visdata", "flags", "nsamples"]:
    got = plain(D[name][()])
    for k, s in enumerate(order):
        x = plain(s["Data/" + name][()])
        x = x.reshape(x.shape[0], x.shape[-2], x.shape[-1])      # drop the old spw axis
        sl = got[:, k * nf:(k + 1) * nf, :]
        assert sl.dtype == x.dtype and np.array_equal(sl, x), (name, k)
print("h5py: combined file matches the 16 inputs")
PYEOF

# Channels that descend within each subband (as some correlator builds write them) come
# out ascending all the same: the same bytes as from the ascending inputs.
rm -rf "${T:?}/rev"
cp -r "$T/g" "$T/rev"
$PY -c '
import sys, h5py
for p in sys.argv[1:]:
    with h5py.File(p, "r+") as f:
        for k in ["Header/freq_array", "Header/channel_width"]:
            f[k][...] = f[k][()][..., ::-1]
        for k in ["Data/visdata", "Data/flags", "Data/nsamples"]:
            f[k][...] = f[k][()][..., ::-1, :]
' "$T"/rev/*.hdf5
"${MPIRUN[@]}" -np 2 "$CONTIMG" convert "$T/rev" --out "$T/rev.h5" >/dev/null 2>&1
check "descending channels within subbands give the same output" cmp -s "$T/out/one.h5" "$T/rev.h5"

# ---- the QA gate ---------------------------------------------------------------------------
"$CONTIMG" convert --qa-only "$T/out/one.h5" >"$T/qa.out" 2>&1
check "QA passes on the good output" test $? -eq 0
cp "$T/out/one.h5" "$T/nan.h5"
$PY -c '
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r+")
v = f["Data/visdata"]
x = v[5]
if x.dtype.names:
    x["r"][3, 0] = np.nan
else:
    x[3, 0] = complex(np.nan, 0.0)
v[5] = x
fl = f["Data/flags"]; y = fl[5]; y[3, 0] = False; fl[5] = y
' "$T/nan.h5"
"$CONTIMG" convert --qa-only "$T/nan.h5" >"$T/qa.out" 2>"$T/qa.err"
rc=$?
check "QA fails (exit 2) on a NaN (rc=$rc)" test $rc -eq 2
check "QA failure says why" grep -q "qa_failed: .*NaN" "$T/qa.err"

# ---- bad groups ----------------------------------------------------------------------------
# bad_case NAME CATEGORY NP DIR ARGS...: convert on NP ranks must exit 2 with one stderr line
# naming CATEGORY, leave nothing in the output directory and the inputs untouched.
bad_case() {
    local name=$1 cat=$2 np=$3 dir=$4
    shift 4
    local od="$T/badout_$name"
    mkdir -p "$od"
    local before after
    before=$(cd "$dir" && sha256sum -- * | sort)
    if [ "$np" -eq 1 ]; then
        "$CONTIMG" convert "$@" --out "$od/out.h5" >"$T/bad.out" 2>"$T/bad.err"
    else
        "${MPIRUN[@]}" -np "$np" "$CONTIMG" convert "$@" --out "$od/out.h5" \
            >"$T/bad.out" 2>"$T/bad.err"
    fi
    local rc=$?
    after=$(cd "$dir" && sha256sum -- * | sort)
    check "$name: exit 2 (got $rc: $(head -c 300 "$T/bad.err"))" test $rc -eq 2
    check "$name: exactly one stderr line" test "$(wc -l <"$T/bad.err")" -eq 1
    check "$name: stderr names $cat ($(head -c 300 "$T/bad.err"))" \
        grep -q "^contimg: $cat: " "$T/bad.err"
    check "$name: nothing on stdout" test ! -s "$T/bad.out"
    check "$name: output directory empty ($(ls "$od"))" test -z "$(ls -A "$od")"
    check "$name: inputs byte-identical" test "$before" = "$after"
}
copy_group() { # copy_group NAME: a fresh copy of the good group at $T/NAME
    rm -rf "${T:?}/$1"
    cp -r "$T/g" "$T/$1"
}
sb() { echo "$T/$1/2026-11-22T10:00:00_sb$2.hdf5"; }

copy_group trunc
truncate -s 3000 "$(sb trunc 05)"
bad_case truncated corrupt_input 1 "$T/trunc" "$T/trunc"
bad_case truncated_np4 corrupt_input 4 "$T/trunc" "$T"/trunc/*.hdf5

copy_group nohdr
$PY -c 'import sys, h5py; del h5py.File(sys.argv[1], "r+")["Header/time_array"]' "$(sb nohdr 03)"
bad_case missing_header_dataset corrupt_input 1 "$T/nohdr" "$T/nohdr"

copy_group fifteen
rm "$(sb fifteen 07)"
bad_case fifteen_dir incomplete_group 1 "$T/fifteen" "$T/fifteen"
bad_case fifteen_files incomplete_group 4 "$T/fifteen" "$T"/fifteen/*.hdf5

copy_group dup
cp "$(sb dup 02)" "$T/dup/2026-11-22T10:00:05_sb02.hdf5"
bad_case duplicate_dir incomplete_group 1 "$T/dup" "$T/dup"
bad_case duplicate_files incomplete_group 1 "$T/dup" "$T"/dup/*.hdf5

copy_group inc
mv "$(sb inc 09)" "$T/inc/2026-11-22T10:00:00_sb09_incomplete.hdf5"
bad_case incomplete_dir incomplete_group 1 "$T/inc" "$T/inc"
bad_case incomplete_files incomplete_group 1 "$T/inc" "$T"/inc/*.hdf5

copy_group times
$PY -c '
import sys, h5py
f = h5py.File(sys.argv[1], "r+"); t = f["Header/time_array"]; x = t[()]; x[4] += 1e-6; t[...] = x
' "$(sb times 04)"
bad_case times_disagree inconsistent_group 1 "$T/times" "$T/times"
bad_case times_disagree_np4 inconsistent_group 4 "$T/times" "$T/times"

copy_group ants
$PY -c '
import sys, h5py
f = h5py.File(sys.argv[1], "r+"); p = f["Header/antenna_positions"]; x = p[()]; x[2, 0] += 0.5
p[...] = x
' "$(sb ants 11)"
bad_case antennas_disagree inconsistent_group 1 "$T/ants" "$T/ants"

copy_group freqs
$PY -c '
import sys, h5py
f = h5py.File(sys.argv[1], "r+"); p = f["Header/freq_array"]; p[...] = p[()] + 1e6
' "$(sb freqs 06)"
bad_case freqs_not_contiguous inconsistent_group 1 "$T/freqs" "$T/freqs"

copy_group shape
$PY -c '
import sys, h5py
f = h5py.File(sys.argv[1], "r+"); d = f["Data/nsamples"]; x = d[()]; del f["Data/nsamples"]
f["Data/nsamples"] = x[:-1]
' "$(sb shape 02)"
bad_case wrong_dataset_shape corrupt_input 1 "$T/shape" "$T/shape"

# Inputs outside CONTIMG_DATA_ROOTS: through "..", and through a symlink that
# lies inside the root but points out of it.
copy_group outside
mkdir -p "$T/root/obs"
ln -s "$T/outside" "$T/root/link"
CONTIMG_DATA_ROOTS="$T/root" bad_case traversal_dotdot outside_data_roots 1 "$T/outside" \
    "$T/root/obs/../../outside"
CONTIMG_DATA_ROOTS="$T/root" bad_case traversal_symlink outside_data_roots 1 "$T/outside" \
    "$T/root/link"
CONTIMG_DATA_ROOTS="$T/root" bad_case traversal_np4 outside_data_roots 4 "$T/outside" \
    "$T"/outside/*.hdf5
# ...and inside them it converts.
CONTIMG_DATA_ROOTS="$T" "$CONTIMG" convert "$T/outside" --out "$T/inside.h5" >/dev/null 2>&1
check "inside the data roots: converts" test -f "$T/inside.h5"

# Found by review: the output must never replace an input.
copy_group self
before_self=$(cd "$T/self" && sha256sum -- * | sort)
"$CONTIMG" convert "$T/self" --out "$(sb self 00)" >"$T/self.out" 2>"$T/self.err"
rc=$?
check "--out naming an input: exit 2 (got $rc)" test $rc -eq 2
check "--out naming an input: one line, invalid_output" \
    test "$(wc -l <"$T/self.err")" -eq 1 -a -n "$(grep '^contimg: invalid_output: ' "$T/self.err")"
check "--out naming an input: inputs untouched" \
    test "$before_self" = "$(cd "$T/self" && sha256sum -- * | sort)"

copy_group uvw
$PY -c '
import sys, h5py
f = h5py.File(sys.argv[1], "r+"); p = f["Header/uvw_array"]; p[...] = -p[()]
' "$(sb uvw 05)"
bad_case uvw_disagree inconsistent_group 1 "$T/uvw" "$T/uvw"

copy_group nanfreq
$PY -c '
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r+"); p = f["Header/freq_array"]; p[...] = np.nan
' "$(sb nanfreq 09)"
bad_case nan_frequencies inconsistent_group 1 "$T/nanfreq" "$T/nanfreq"

# A conversion whose result fails the quality gate exits 2 (qa_failed), keeping the
# file for inspection.
"$CONTIMG" simulate --out "$T/flagged" --start 2026-11-22T10:00:00 --dec 55 --antennas 6 \
    --channels-per-subband 4 --times 3 --flag-fraction 0.7 >/dev/null
"$CONTIMG" convert "$T/flagged" --out "$T/flagged.h5" >"$T/qa.out" 2>"$T/qa.err"
rc=$?
check "QA failure: exit 2 (got $rc)" test $rc -eq 2
check "QA failure: one qa_failed line" \
    test "$(wc -l <"$T/qa.err")" -eq 1 -a -n "$(grep '^contimg: qa_failed: ' "$T/qa.err")"
check "QA failure: the file stays for inspection" test -f "$T/flagged.h5"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
