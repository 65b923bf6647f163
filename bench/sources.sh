#!/usr/bin/env bash
# bench/sources.sh [BUILD_DIR] [--size N] [--sources K] [--no-peers] [--keep DIR] --
# `contimg sources` side by side with PyBDSF (PyPI `bdsf`) on the same simulated
# restored images (issue 18).
#
# Inputs (tests/test_sources --write, fixed seed): N x N pixels (default 2048) of 2
# arcsec, a 10 x 7 arcsec beam at PA 30, noise correlated over the beam at 1 mJy/beam,
# K point sources (default 1000) at least 3 beams apart with signal-to-noise ratios
# log-uniform in 3..500; their truth in truth.csv.
#   contimg  `contimg sources sky.fits --json`, 1 thread (OMP_NUM_THREADS=1) and all;
#   PyBDSF   bdsf.process_image(thresh_isl=3, thresh_pix=5) and its source list (one
#            thread, as it runs by default on one core).
# Both: seed 5 sigma, islands at 3 sigma. Measured against the truth (bench/sources_compare.py):
# completeness of the sources at >= 7 sigma (a detection within half a beam), false
# detections among those at >= 7 sigma, the median peak ratio and position offset, and
# the wall time of the command (PyBDSF: process_image and write_catalog, Python start
# not counted). Goal (issue 18): at least PyBDSF's completeness and reliability, at
# >= 10 x its speed.
# PyBDSF lives in a venv (/var/tmp/contimg-bench-bdsf-venv, made once from PyPI).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build size=2048 nsrc=1000 peers=true keep=""
while [ $# -gt 0 ]; do
    case "$1" in
    --size) size=$2; shift 2 ;;
    --sources) nsrc=$2; shift 2 ;;
    --no-peers) peers=false; shift ;;
    --keep) keep=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "sources.sh: unknown option '$1'" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
[[ "$size" =~ ^[1-9][0-9]*$ && "$nsrc" =~ ^[1-9][0-9]*$ ]] ||
    { echo "sources.sh: --size and --sources must be whole numbers" >&2; exit 2; }
source "$here/bench_lib.sh"
work=${keep:-$(mktemp -d /var/tmp/contimg-bench-sources.XXXXXX)}
mkdir -p "$work"
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
venv=/var/tmp/contimg-bench-bdsf-venv
if $peers && ! "$venv/bin/python" -c "import bdsf" 2>/dev/null; then
    echo "making $venv with PyPI's bdsf ..."
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check bdsf
fi
"$build/tests/test_sources" --write "$work" "$size" "$nsrc"
echo "sources benchmark on $(nproc) cores: $size x $size px, $nsrc sources"

t0=$(now)
OMP_NUM_THREADS=1 "$build/contimg" sources "$work/sky.fits" --json >"$work/contimg1.json"
t_c1=$(since "$t0")
t0=$(now)
"$build/contimg" sources "$work/sky.fits" --json >"$work/contimg.json"
t_c=$(since "$t0")
echo "  contimg sources: $t_c1 s on 1 thread, $t_c s on $(nproc)"

t_b=""
if $peers; then
    OMP_NUM_THREADS=1 MPLBACKEND=Agg "$venv/bin/python" - "$work" >"$work/bdsf.out" 2>&1 <<'PY'
import sys, time
import bdsf
d = sys.argv[1]
t0 = time.time()
img = bdsf.process_image(f"{d}/sky.fits", thresh_isl=3.0, thresh_pix=5.0, quiet=True,
                         ncores=1)
img.write_catalog(outfile=f"{d}/bdsf.csv", format="csv", catalog_type="srl", clobber=True)
print(f"BDSF_SECONDS {time.time() - t0:.3f}")
PY
    t_b=$(awk '/^BDSF_SECONDS/ { print $2 }' "$work/bdsf.out")
    echo "  PyBDSF: $t_b s on 1 thread (bdsf $("$venv/bin/python" -c 'import bdsf; print(bdsf.__version__)' 2>/dev/null | tail -1))"
fi
echo
/usr/bin/python3 "$here/sources_compare.py" "$work" "$t_c1" "$t_c" "${t_b:-}"
