#!/usr/bin/env bash
# bench/mosaic.sh -- `contimg mosaic` on a strip of drift-scan images, side by side
# with Montage, SWarp and astropy's reproject making the same mosaic on the same grid.
#
#   bench/mosaic.sh [BUILD_DIR] [--images N] [--small] [--ranks R] [--no-peers] [--keep DIR]
#
# Inputs (bench/mosaic_inputs.py, fixed seed): N (default 10) restored images, not
# primary-beam corrected, of consecutive 309 s pointings at dec 55 (1.291 deg apart in
# RA), 2048 x 2048 px of 6 arcsec, beam 40 arcsec, point sources of known flux, 1 mJy
# white noise; --small: 512 px of 24 arcsec, beam 120 arcsec (the same sky, a smoke
# test). The mosaic everywhere: M = sum A I w / sum A^2 w, w = 1 / (1.4826 MAD)^2, A the
# Airy beam of a 4.65 m dish; blank below 0.01 of max(sum A^2 w) (cutoff 0.1).
#   contimg  `contimg mosaic IMAGES --out P --json` on 1 rank and, with --ranks R > 1,
#            under `mpirun -np R`; seconds = its JSON's own "seconds", cores = ranks.
#   peers    on contimg's grid (P.fits), or without contimg on a TAN grid covering
#            the union at the inputs' cell (bench/mosaic_peers.py): Montage (mProjectPP
#            + mAdd), SWarp (weighted mean, LANCZOS3), reproject (bicubic), each one
#            thread. A, sigma and each input's numerator/denominator images are computed
#            beforehand and not timed; timed is the reprojection and co-addition, from
#            reading those files to writing the mosaic.
# Flux error: |peak / true flux - 1| at the truth sources unblanked in every mosaic and
# >= 30 px from the edges (median, 95th percentile). Goal: contimg (1 rank) >= 2 x
# SWarp's output pixels per second per core, its median and p95 flux errors each at
# most 1.05 x SWarp's ("equal" within 5 %).
# Python, numpy, scipy, astropy, reproject, Montage and SWarp are Debian's packages
# (/usr/bin/python3; installed with apt-get if missing and we are root). The work
# directory under /var/tmp is removed at the end unless --keep DIR names one (inputs
# there are reused).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build nimages=10 small=false ranks=1 peers=true keep=""
while [ $# -gt 0 ]; do
    case "$1" in
    --images) nimages=$2; shift 2 ;;
    --small) small=true; shift ;;
    --ranks) ranks=$2; shift 2 ;;
    --no-peers) peers=false; shift ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    -*) echo "mosaic.sh: unknown option '$1'" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
[[ "$nimages" =~ ^[1-9][0-9]*$ ]] || { echo "mosaic.sh: --images must be a whole number" >&2; exit 2; }
[[ "$ranks" =~ ^[1-9][0-9]*$ ]] || { echo "mosaic.sh: --ranks must be a whole number" >&2; exit 2; }
contimg=$build/contimg
py=/usr/bin/python3
ncpu=$(nproc)
work=${keep:-$(mktemp -d /var/tmp/contimg-bench-mosaic.XXXXXX)}
mkdir -p "$work"
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# mpirun's PMIx would try munge for 2.3 s where munged is not running (src/mpiutil.h).
munge -n >/dev/null 2>&1 || export PMIX_MCA_psec=${PMIX_MCA_psec:-^munge}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMEXPR_NUM_THREADS=1
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# --- Debian packages ---------------------------------------------------------------
have_montage() { command -v mProjectPP >/dev/null && command -v mImgtbl >/dev/null && command -v mAdd >/dev/null; }
have_swarp() { command -v SWarp >/dev/null || command -v swarp >/dev/null; }
need=()
"$py" -c 'import numpy, scipy, astropy' 2>/dev/null || need+=(python3-numpy python3-scipy python3-astropy)
if $peers; then
    "$py" -c 'import reproject' 2>/dev/null || need+=(python3-reproject)
    have_montage || need+=(montage)
    have_swarp || need+=(swarp)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing Debian's ${need[*]} ..."
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
    else
        echo "missing Debian packages: ${need[*]} (apt-get install them); going on without them" >&2
    fi
fi
"$py" -c 'import numpy, scipy, astropy' 2>/dev/null ||
    { echo "mosaic.sh: $py has no numpy/scipy/astropy" >&2; exit 1; }
tools=()
if $peers; then
    have_montage && tools+=(montage)
    have_swarp && tools+=(swarp)
    "$py" -c 'import reproject' 2>/dev/null && tools+=(reproject)
fi

# --- inputs --------------------------------------------------------------------------
mode=full gen_opts=()
$small && mode=small gen_opts=(--small)
inputs=$work/inputs-$mode-$nimages
imgs=()
for ((i = 0; i < nimages; i++)); do imgs+=("$(printf '%s/img-%02d.fits' "$inputs" "$i")"); done
ok=true
for f in "${imgs[@]}" "$inputs/truth.json"; do [ -f "$f" ] || ok=false; done
if $ok; then
    echo "reusing the $nimages input images in $inputs"
else
    echo "making $nimages $mode-size input images in $inputs ..."
    rm -rf "$inputs"
    "$py" "$here/mosaic_inputs.py" --out "$inputs" --images "$nimages" "${gen_opts[@]}" >"$work/inputs.json"
    "$py" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print("  %d x %d px of %g arcsec, beam %g arcsec, %d sources, %.1f s" % (d["size"], d["size"],
      d["cell_arcsec"], d["beam_arcsec"], d["sources"], d["seconds"]))' "$work/inputs.json"
fi
echo "$ncpu CPUs; every process runs one thread (OMP_NUM_THREADS=1)"

# --- contimg --------------------------------------------------------------------------
# The JSON object is the last line of stdout that parses as one.
json_of() {
    "$py" -c 'import json, sys
obj = None
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except ValueError:
            pass
if obj is None:
    obj = json.load(open(sys.argv[1]))
json.dump(obj, open(sys.argv[2], "w"))' "$1" "$2"
}
have_ct=false
if [ -x "$contimg" ] && "$contimg" mosaic --help >/dev/null 2>&1; then
    have_ct=true
else
    echo "$contimg has no 'mosaic' command: only the peers run (on their own grid)" >&2
fi
runs=()
if $have_ct; then
    rlist=1
    [ "$ranks" -gt 1 ] && rlist="1 $ranks"
    for r in $rlist; do
        rm -f "$work/ct$r"*.fits
        echo "contimg mosaic on $r rank(s) ..."
        t0=$(now)
        if [ "$r" -eq 1 ]; then
            "$contimg" mosaic "${imgs[@]}" --out "$work/ct$r" --json >"$work/ct$r.out" 2>"$work/ct$r.err" ||
                { tail -20 "$work/ct$r.err"; exit 1; }
        else
            mpirun -q --oversubscribe -np "$r" "$contimg" mosaic "${imgs[@]}" --out "$work/ct$r" \
                --json >"$work/ct$r.out" 2>"$work/ct$r.err" || { tail -20 "$work/ct$r.err"; exit 1; }
        fi
        wall=$(since "$t0")
        json_of "$work/ct$r.out" "$work/ct$r.json"
        [ -f "$work/ct$r.fits" ] || { echo "  no $work/ct$r.fits (not assembled?)" >&2; exit 1; }
        echo "$wall" >"$work/ct$r.wall"
        runs+=("$r")
        "$py" -c 'import json, sys
d = json.load(open(sys.argv[1]))
s = d.get("seconds", (d.get("timings") or {}).get("total"))
print("  %s x %s px, %s images, %s s (its own), %s s wall" % (d.get("nx"), d.get("ny"),
      d.get("n_images"), "-" if s is None else "%.2f" % s, sys.argv[2]))' "$work/ct$r.json" "$wall"
    done
    if [ "$ranks" -gt 1 ]; then
        "$py" -c 'import sys, numpy as np
from astropy.io import fits
a, b = (fits.getdata(p) for p in sys.argv[1:3])
same = a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
print("  1 rank and %s ranks: %s" % (sys.argv[3], "the same mosaic, bit for bit" if same else "DIFFERENT mosaics"))' \
            "$work/ct1.fits" "$work/ct$ranks.fits" "$ranks"
    fi
fi

# --- peers ------------------------------------------------------------------------------
if [ ${#tools[@]} -gt 0 ]; then
    grid=()
    $have_ct && grid=(--grid "$work/ct1.fits")
    tl=$(IFS=,; echo "${tools[*]}")
    echo "peers ($tl) on $($have_ct && echo "contimg's grid" || echo "their own TAN grid"), one thread each ..."
    "$py" "$here/mosaic_peers.py" run --inputs "${imgs[@]}" --work "$work/peers" "${grid[@]}" \
        --tools "$tl" --cutoff 0.1 >"$work/peers.json"
    "$py" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print("  untimed preparation (A, sigma, numerator/denominator files): %.1f s" % d["precompute_seconds"])
for t, r in d["tools"].items():
    if "error" in r:
        print("  %s: FAILED: %s" % (t, r["error"][:300]))
        continue
    print("  %s: %.2f s" % (t, r["seconds"]) + ("" if t != "swarp" else
          "; output grid %s, FLXSCALE %s" % ("= the grid asked" if r["grid_matches"] else "DIFFERS",
                                             r["flxscale"] if r["flxscale"] is not None else "absent (1)")))
    for c in r["commands"]:
        print("      " + c)' "$work/peers.json"
else
    echo '{"tools": {}}' >"$work/peers.json"
fi

# --- flux errors, on the sources every mosaic measures -----------------------------------
mos=()
for r in "${runs[@]}"; do mos+=(--mosaic "contimg-$r=$work/ct$r.fits"); done
while read -r name path; do
    [ -n "$name" ] && mos+=(--mosaic "$name=$path")
done < <("$py" -c 'import json, sys
for t, r in json.load(open(sys.argv[1]))["tools"].items():
    if "path" in r:
        print(t, r["path"])' "$work/peers.json")
if [ ${#mos[@]} -eq 0 ]; then
    echo "nothing made a mosaic"
    exit 1
fi
"$py" "$here/mosaic_peers.py" measure --truth "$inputs/truth.json" "${mos[@]}" --margin 30 \
    >"$work/measure.json"

# --- the table ---------------------------------------------------------------------------
echo
"$py" - "$work" "${runs[*]:-}" <<'PY'
import json, os, sys

work, runs = sys.argv[1], sys.argv[2].split()
meas = json.load(open(os.path.join(work, "measure.json")))
peers = json.load(open(os.path.join(work, "peers.json")))["tools"]
rows = []
for r in runs:
    d = json.load(open(os.path.join(work, "ct%s.json" % r)))
    px = int(d["nx"]) * int(d["ny"])
    cores = int(d.get("ranks", r)) * int(d.get("threads", 1))
    secs = d.get("seconds", (d.get("timings") or {}).get("total"))
    wall = float(open(os.path.join(work, "ct%s.wall" % r)).read())
    rows.append({"tool": "contimg (%s rank%s)" % (r, "" if r == "1" else "s"), "key": "contimg-" + r,
                 "seconds": float(secs if secs is not None else wall), "wall": wall,
                 "cores": cores, "pixels": px})
for t, d in peers.items():
    if "seconds" in d:
        rows.append({"tool": t, "key": t, "seconds": d["seconds"], "wall": d["seconds"],
                     "cores": d["cores"], "pixels": d["pixels"]})
for row in rows:
    row["rate"] = row["pixels"] / row["seconds"] / row["cores"] / 1e6
    m = meas["mosaics"].get(row["key"], {})
    row["med"], row["p95"], row["bias"] = (m.get("median_abs_err"), m.get("p95_abs_err"),
                                           m.get("mean_err"))

def pct(v):
    return "-" if v is None else "%.2f%%" % (100 * v)

print("flux errors at %d of the %d truth sources (those unblanked in every mosaic and >= %d px"
      " from its edges)" % (meas["sources_measured"], meas["sources_in_truth"], meas["margin_px"]))
print("(seconds: contimg's own total from its JSON, the peers' timed work; wall: the whole"
      " command, contimg's MPI start-up included)")
hdr = ("tool", "seconds", "wall s", "cores", "out px", "Mpix/s/core", "err median", "err p95",
       "mean err")
fmt = "  %-20s %8s %8s %6s %10s %12s %11s %9s %9s"
print(fmt % hdr)
for row in rows:
    print(fmt % (row["tool"], "%.2f" % row["seconds"], "%.2f" % row["wall"], row["cores"],
                 row["pixels"], "%.3f" % row["rate"], pct(row["med"]), pct(row["p95"]),
                 pct(row["bias"])))
ct = next((r for r in rows if r["tool"] == "contimg (1 rank)"), None)
sw = next((r for r in rows if r["key"] == "swarp"), None)
line = "goal: contimg >= 2 x SWarp per core at equal or better flux accuracy"
if ct is None or sw is None:
    print(line + ": not measured (%s)" % ("no contimg mosaic" if ct is None else "no SWarp run"))
else:
    ratio = ct["rate"] / sw["rate"]
    acc = (ct["med"] is not None and sw["med"] is not None and
           ct["med"] <= 1.05 * sw["med"] and ct["p95"] <= 1.05 * sw["p95"])
    print(line + ": %.2f x per core; flux error median %s vs %s, p95 %s vs %s: %s" % (
        ratio, pct(ct["med"]), pct(sw["med"]), pct(ct["p95"]), pct(sw["p95"]),
        "meets" if ratio >= 2 and acc else "MISSES"))
    print("      on contimg's wall time instead of its own total: %.2f x per core" % (
        ct["pixels"] / ct["wall"] / ct["cores"] / 1e6 / sw["rate"]))
    for r in rows:
        if r["key"].startswith("contimg-") and r is not ct:
            print("      %s: %.2f x SWarp's pixels/s/core, %.2f x SWarp's wall speed" % (
                r["tool"], r["rate"] / sw["rate"], sw["seconds"] / r["seconds"]))
PY
