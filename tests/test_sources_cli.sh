#!/usr/bin/env bash
# test_sources_cli.sh CONTIMG TEST_SOURCES -- `contimg sources` on a simulated restored
# image written as FITS (test_sources --write): its JSON and CSV against the sources put
# in, the background and rms maps as FITS images, exit codes, and no temporary file left.
set -u
CONTIMG=${1:?usage: test_sources_cli.sh CONTIMG TEST_SOURCES}
MAKER=${2:?usage: test_sources_cli.sh CONTIMG TEST_SOURCES}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
check() { # check DESCRIPTION COMMAND...: the command must succeed
    local what=$1
    shift
    if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
"$MAKER" --write "$T" 512 80 || { echo "FAIL: could not write the test image"; exit 1; }
"$CONTIMG" sources "$T/sky.fits" --json --catalog "$T/cat.csv" --maps "$T/m" >"$T/out.json"
check "sources exits 0" test $? -eq 0
/usr/bin/python3 - "$T" <<'PY' || fail=1
import csv, json, math, sys
d = sys.argv[1]
out = json.load(open(f"{d}/out.json"))
truth = list(csv.DictReader(open(f"{d}/truth.csv")))
rows = list(csv.DictReader(open(f"{d}/cat.csv")))
src = out["sources"]
bad = []
if len(rows) != len(src):
    bad.append(f"CSV has {len(rows)} rows, JSON {len(src)} sources")
for k in ("ra_deg", "dec_deg", "peak_jy", "int_jy", "snr", "ra_err_arcsec", "maj_arcsec", "flags"):
    if any(k not in s for s in src):
        bad.append(f"a source without {k}")
if not (0.95e-3 < out["rms_jy"] < 1.05e-3):
    bad.append(f"rms_jy {out['rms_jy']}")
def sep(a, b):  # arcsec
    ra1, d1, ra2, d2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    c = math.sin(d1) * math.sin(d2) + math.cos(d1) * math.cos(d2) * math.cos(ra1 - ra2)
    return math.degrees(math.acos(min(1, c))) * 3600
want = [t for t in truth if float(t["snr"]) >= 7]
hit = 0
for t in want:
    p = (float(t["ra_deg"]), float(t["dec_deg"]))
    m = [s for s in src if sep(p, (s["ra_deg"], s["dec_deg"])) < 5]
    if m and abs(m[0]["peak_jy"] / float(t["peak_jy"]) - 1) < 5 * m[0]["peak_err_jy"] / float(t["peak_jy"]) + 0.01:
        hit += 1
if hit < 0.95 * len(want):
    bad.append(f"only {hit} of {len(want)} sources >= 7 sigma found with their flux")
for r, s in zip(rows, src):
    if abs(float(r["peak_jy"]) - s["peak_jy"]) > 1e-5 * abs(s["peak_jy"]) or abs(float(r["ra_deg"]) - s["ra_deg"]) > 1e-6:
        bad.append("CSV and JSON disagree")
        break
print("\n".join("FAIL " + b for b in bad) or f"ok   {hit} of {len(want)} sources >= 7 sigma; CSV = JSON")
sys.exit(1 if bad else 0)
PY
/usr/bin/python3 - "$T" <<'PY' || fail=1
import sys
from astropy.io import fits
import numpy as np
d = sys.argv[1]
b = fits.getdata(f"{d}/m-background.fits").squeeze()
r = fits.getdata(f"{d}/m-rms.fits").squeeze()
ok = b.shape == (512, 512) and abs(np.median(r) / 1e-3 - 1) < 0.05 and abs(np.median(b)) < 2e-4
print(("ok  " if ok else "FAIL") + f" maps: {b.shape}, rms median {np.median(r):.4g}, background median {np.median(b):.3g}")
sys.exit(0 if ok else 1)
PY
"$CONTIMG" sources "$T/nope.fits" 2>"$T/err"
check "a missing image exits 4" test $? -eq 4
printf 'SIMPLE  = not a FITS file' >"$T/bad.fits"
"$CONTIMG" sources "$T/bad.fits" 2>"$T/err"
check "a damaged image exits 2 with one line" test $? -eq 2 -a "$(wc -l <"$T/err")" -eq 1
"$CONTIMG" sources "$T/sky.fits" --seed 3 --island 4 2>"$T/err"
check "--island above --seed exits 2" test $? -eq 2
"$CONTIMG" sources "$T/sky.fits" --catalog "$T/no/such/dir/cat.csv" >/dev/null 2>"$T/err"
check "an unwritable catalogue exits 1" test $? -eq 1
check "no temporary file left" test -z "$(find "$T" -name '*.tmp-*')"
exit $fail
