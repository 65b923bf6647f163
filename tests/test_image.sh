#!/usr/bin/env bash
# test_image.sh CONTIMG -- `contimg image` end to end: a simulated DSA-110 observation
# (96 antennas, point sources at known positions, thermal noise) combined and imaged;
# astropy reads every FITS file without a warning and finds each source where its ICRS
# position says, with its flux; the same images bit for bit on 1, 2 and 4 ranks; a
# noise-only image against the radiometer equation; bad input refused, nothing left.
set -u
CONTIMG=${1:?usage: test_image.sh CONTIMG}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
CHECK=("$PY" "$HERE/check_image.py")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun -q --allow-run-as-root --oversubscribe)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# shellcheck source=tests/cli_lib.sh
. "$HERE/cli_lib.sh"
run() { # run DESCRIPTION COMMAND... (must exit 0)
    local what=$1
    shift
    if ! "$@"; then bad "$what"; fi
}

# Offsets from the pointing at mid-observation (deg east, deg north), flux (Jy). The
# cell is 20 arcsec, so all but the last lie on pixel centres; the last sits half a
# pixel off, for the position fit alone.
cat >"$T/sources.txt" <<'SRC'
0 0 5.0
0.5 0.3 3.0
-0.4 -0.5 2.0
0.25 -0.2 1.0
-0.1027778 0.2 0.8 nof
SRC
SIM=(--start 2026-11-22T10:00:00 --dec 55 --channels-per-subband 1 --times 12)
run "simulate" "$CONTIMG" simulate --out "$T/obs" "${SIM[@]}" --noise-jy 0.05 \
    --sources "$T/sources.txt" --relative >/dev/null
run "convert" "$CONTIMG" convert "$T/obs" --out "$T/obs.hdf5" >/dev/null
IMG=(--size 512 --cell 20 --niter 2000 --threshold 0.02)

# ---- one rank: positions and fluxes through astropy ----------------------------------------
"$CONTIMG" image "$T/obs.hdf5" --out "$T/one" "${IMG[@]}" --threads 1 --json >"$T/one.json" 2>"$T/one.err"
rc=$?
[ $rc -eq 0 ] || bad "image on one rank exits $rc: $(cat "$T/one.err")"
run "the JSON reports the run" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["nx"] == 512 and r["n_vis"] > 400000 and r["iterations"] > 0, r
assert r["stop_reason"] in ("threshold", "niter"), r["stop_reason"]
assert abs(r["cell_arcsec"] - 20) < 1e-9 and r["psf_size"] == 512 and r["threads"] == 1, r
print("ok   json: %d visibilities, %d iterations, %d major cycles, %s" % (
    r["n_vis"], r["iterations"], r["major_cycles"], r["stop_reason"]))
' "$T/one.json"
run "astropy opens every image" "${CHECK[@]}" opens "$T/one"
run "sources where and as bright as they are" "${CHECK[@]}" sources "$T/one" "$T/sources.txt"

# ---- the slant grid (imager.h): DSA-110's baselines lie near one plane, so at Dec 55 the
# imager can grid w - 0.32 v on a slant SIN grid (PV2_1, PV2_2). At this size auto keeps the
# plain grid (7 planes would not halve 11); --slant on takes the slant one: astropy must put
# every source where it is through the PV keywords, and the fluxes must hold; 2 ranks give the
# same bits. ----
"$CONTIMG" image "$T/obs.hdf5" --out "$T/slant" "${IMG[@]}" --threads 1 --slant on --json \
    >"$T/slant.json" 2>"$T/slant.err" || bad "image --slant on: $(cat "$T/slant.err")"
run "--slant on reports its slant and fewer w planes" "$PY" -c '
import json, sys
a, s = (json.load(open(f)) for f in sys.argv[1:3])
assert a["slant_xi"] == 0 and a["slant_eta"] == 0, (a["slant_xi"], a["slant_eta"])
assert abs(s["slant_eta"] + 0.32) < 0.02 and abs(s["slant_xi"]) < 0.01, (s["slant_xi"], s["slant_eta"])
assert s["w_planes"] < a["w_planes"], (s["w_planes"], a["w_planes"])
print("ok   slant (PV2_1, PV2_2) = (%.5f, %.5f): %d w planes, %d on the plain grid" % (
    s["slant_xi"], s["slant_eta"], s["w_planes"], a["w_planes"]))
' "$T/one.json" "$T/slant.json"
run "the slant image opens in astropy" "${CHECK[@]}" opens "$T/slant"
run "the slant image's sources where and as bright as they are" "${CHECK[@]}" sources "$T/slant" \
    "$T/sources.txt" --model-flux
"${MPIRUN[@]}" -np 2 "$CONTIMG" image "$T/obs.hdf5" --out "$T/slant2" "${IMG[@]}" --slant on \
    >/dev/null 2>"$T/slant2.err" || bad "image --slant on, 2 ranks: $(cat "$T/slant2.err")"
run "2 ranks give the 1-rank slant images" "${CHECK[@]}" same "$T/slant" "$T/slant2"

# ---- 2 and 4 ranks, and threads: the same images, bit for bit ---------------------------------
for n in 2 4; do
    "${MPIRUN[@]}" -np $n "$CONTIMG" image "$T/obs.hdf5" --out "$T/r$n" "${IMG[@]}" \
        >/dev/null 2>"$T/r$n.err" || bad "image on $n ranks: $(cat "$T/r$n.err")"
    run "$n ranks give the 1-rank images" "${CHECK[@]}" same "$T/one" "$T/r$n"
done
"$CONTIMG" image "$T/obs.hdf5" --out "$T/t3" "${IMG[@]}" --threads 3 >/dev/null 2>"$T/t3.err" ||
    bad "image with 3 threads: $(cat "$T/t3.err")"
run "3 threads give the 1-thread images" "${CHECK[@]}" same "$T/one" "$T/t3"
"${MPIRUN[@]}" --bind-to none -np 2 "$CONTIMG" image "$T/obs.hdf5" --out "$T/r2t2" "${IMG[@]}" \
    --threads 2 >/dev/null 2>"$T/r2t2.err" || bad "image on 2 ranks x 2 threads: $(cat "$T/r2t2.err")"
run "2 ranks x 2 threads give the 1-rank images" "${CHECK[@]}" same "$T/one" "$T/r2t2"
# A set that cannot be finished (a directory stands where its quick look goes) leaves none
# of its files under their names: an image is all its files or none, and nothing staged.
mkdir -p "$T/partial/p-image.png"
if "$CONTIMG" image "$T/obs.hdf5" --out "$T/partial/p" "${IMG[@]}" --threads 1 >/dev/null \
    2>"$T/partial.err"; then
    bad "imaging into a blocked quick look succeeded"
elif [ "$(cd "$T/partial" && find . -type f | wc -l)" -ne 0 ]; then
    bad "a failed image set left files: $(cd "$T/partial" && find . -type f | tr '\n' ' ')"
else
    ok "a failed image set leaves no file: $(head -c 120 "$T/partial.err")"
fi

# ---- noise only: the radiometer equation -------------------------------------------------
echo "0 0 0" >"$T/none.txt"
run "simulate noise" "$CONTIMG" simulate --out "$T/noise" "${SIM[@]}" --noise-jy 1 \
    --sources "$T/none.txt" --relative >/dev/null
run "convert noise" "$CONTIMG" convert "$T/noise" --out "$T/noise.hdf5" >/dev/null
run "image noise" "$CONTIMG" image "$T/noise.hdf5" --out "$T/noise" --size 256 --cell 20 \
    --weight natural --niter 0 --json >"$T/noise.json"
run "noise within 10 % of theory" "${CHECK[@]}" noise "$T/noise" "$T/noise.json" 1

# ---- no geometry options: the field to pblimit, 3-5 pixels across the beam -------------------
run "simulate a small observation" "$CONTIMG" simulate --out "$T/small" --start 2026-11-22T10:00:00 \
    --dec 55 --antennas 16 --times 2 --noise-jy 0.1 >/dev/null
run "convert it" "$CONTIMG" convert "$T/small" --out "$T/small.hdf5" >/dev/null
run "image it with no geometry options" "$CONTIMG" image "$T/small.hdf5" --out "$T/dflt" \
    --niter 0 --json >"$T/dflt.json"
run "the default geometry" "$PY" -c '
import json, sys, warnings
import numpy as np
from astropy.io import fits
warnings.simplefilter("error")
with open(sys.argv[1]) as f:
    r = json.load(f)
cell, n, q = r["cell_arcsec"], r["nx"], r["qa"]
across = q["bmin_arcsec"] / cell
assert 3 <= across <= 5, ("pixels across the fitted beam", across, q, cell)
assert r["psf_size"] == n, r["psf_size"]
# The field reaches the primary beam limit and not much further: inside 95 % of the
# half-width along the east-west axis every pixel is corrected (pb >= 0.2); the corners,
# sqrt(2) times as far out, are blank.
pb = fits.getdata(sys.argv[2]).squeeze()
mid = pb[n // 2]
inner = mid[int(n / 2 - 0.95 * n / 2):int(n / 2 + 0.95 * n / 2)]
assert np.isfinite(inner).all(), "blank pixels inside the field"
assert not np.isfinite(pb[:n // 20, :n // 20]).any(), "the corners are not blank"
m = n
for p in (2, 3, 5):
    while m % p == 0:
        m //= p
assert n % 2 == 0 and m == 1, ("size odd or with a prime factor above 5", n)
print("ok   default geometry: %d px of %.2f arcsec, %.2f px across the %.1f arcsec beam" % (
    n, cell, across, q["bmin_arcsec"]))
' "$T/dflt.json" "$T/dflt-image-pb.fits"

# ---- bad input: categorized errors, no files left ---------------------------------------------
expect() { # expect CODE PATTERN DESCRIPTION COMMAND...: refused, and no files left
    expect_exit "$@"
    local what=$3
    if ls "$T"/bad-*.fits >/dev/null 2>&1 || ls "$T"/bad-*.tmp* >/dev/null 2>&1; then
        bad "$what: files were left behind"
        rm -f "$T"/bad-*
    fi
}
expect 2 "GiB" "an image too large for memory is refused" \
    "$CONTIMG" image "$T/obs.hdf5" --out "$T/bad" --size 400000 --cell 1
expect 2 "cell" "a negative cell" "$CONTIMG" image "$T/obs.hdf5" --out "$T/bad" --cell -3
expect 2 "cell" "a cell that is not a number" "$CONTIMG" image "$T/obs.hdf5" --out "$T/bad" --cell x
expect 2 "size" "an odd size" "$CONTIMG" image "$T/obs.hdf5" --out "$T/bad" --size 511
expect 2 "horizon" "a field beyond the horizon" \
    "$CONTIMG" image "$T/obs.hdf5" --out "$T/bad" --size 4096 --cell 600 --niter 0
expect 4 "" "a missing file" "$CONTIMG" image "$T/none.hdf5" --out "$T/bad"
head -c 100000 "$T/obs.hdf5" >"$T/trunc.hdf5"
expect 2 "corrupt" "a truncated file" "$CONTIMG" image "$T/trunc.hdf5" --out "$T/bad"
run "simulate flagged" "$CONTIMG" simulate --out "$T/flagged" "${SIM[@]}" --times 2 \
    --flag-fraction 1 >/dev/null
# The quality gate fails such a group (exit 2) but leaves the file, for inspection.
"$CONTIMG" convert "$T/flagged" --out "$T/flagged.hdf5" >/dev/null 2>&1
if [ -f "$T/flagged.hdf5" ]; then
    expect 2 "no data" "fully flagged data" "$CONTIMG" image "$T/flagged.hdf5" --out "$T/bad" \
        --size 64 --cell 60
else
    bad "the fully flagged observation was not converted"
fi
# NaNs: non-finite samples are dropped like flags, counted, and the image still made.
cp "$T/obs.hdf5" "$T/nan.hdf5"
run "poison samples with NaN" "$PY" -c '
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    d = f["Data/visdata"]
    row = d[100:110]
    if row.dtype.names:  # the {r, i} compound as fields
        row["r"][...] = np.nan
    else:  # or handed back as complex numbers
        row.real[...] = np.nan
    d[100:110] = row
' "$T/nan.hdf5"
"$CONTIMG" image "$T/nan.hdf5" --out "$T/nan" --size 128 --cell 20 --niter 0 --json \
    >"$T/nan.json" 2>"$T/nan.err" || bad "image with NaN samples: $(cat "$T/nan.err")"
run "NaN samples are counted and left out" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["n_nonfinite"] > 0, r["n_nonfinite"]
print("ok   %d non-finite samples left out" % r["n_nonfinite"])
' "$T/nan.json"

if [ $failed -eq 0 ]; then
    echo "test_image: all passed"
    exit 0
fi
echo "test_image: $failed failed" >&2
exit 1
