#!/usr/bin/env bash
# bench/imaging.sh -- contimg's imager on one full-size observation (96 antennas,
# 768 channels, 24 integrations), side by side with ducc0's wgridder on the very
# same visibilities and with WSClean on a Measurement Set of the same data.
#
#   bench/imaging.sh [BUILD_DIR] [--keep DIR] [--small] [--size N] [--cell ARCSEC]
#       [--niter N] [--mgain G] [--threshold JY] [--weight natural|uniform|briggs] [--robust R]
#       [--min-uv L] [--ranks N] [--threads T] [--epsilons "1e-4 1e-5"] [--grid-passes P]
#       [--threads-all] [--production] [--no-ducc] [--no-wsclean]
#
# Defaults: 2048 x 2048 pixels of 6 arcsec, Briggs 0.5, niter 1000, 1 rank of 1 thread.
# --threads T: contimg's threads per rank, ducc0's nthreads and WSClean's -j, all T
# (--threads-all: T = the machine's CPUs). --production: the production geometry,
# 4800 x 4800 pixels of 3 arcsec, Briggs 0.5, min uv 1000 lambda.
# --small: 32 antennas, 8 x 16 channels, 12 integrations, 512 pixels (a smoke test).
# The observation is simulated once into DIR (default a temporary directory,
# removed at the end unless --keep names one). Peers run in BUILD_DIR/imaging-venv
# (ducc0, pyuvdata, python-casacore from PyPI; made if missing); WSClean is
# Debian's package (installed with apt-get if missing and we are root).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
build=$top/build keep="" small=false size="" cell=6 niter=1000 threshold=""
weight=briggs robust=0.5 minuv="" ranks=1 epsilons="1e-4 1e-5" passes=""
threads_all=false do_ducc=true mgain=0.5 do_wsclean=true threads=1
while [ $# -gt 0 ]; do
    case "$1" in
    --keep) keep=$2; shift 2 ;;
    --small) small=true; shift ;;
    --size) size=$2; shift 2 ;;
    --cell) cell=$2; shift 2 ;;
    --niter) niter=$2; shift 2 ;;
    --threshold) threshold=$2; shift 2 ;;
    --mgain) mgain=$2; shift 2 ;;
    --weight) weight=$2; shift 2 ;;
    --robust) robust=$2; shift 2 ;;
    --min-uv) minuv=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --epsilons) epsilons=$2; shift 2 ;;
    --grid-passes) passes=$2; shift 2 ;;
    --threads-all) threads_all=true; shift ;;
    --threads) threads=$2; shift 2 ;;
    --production) size=4800 cell=3 robust=0.5 weight=briggs minuv=1000; shift ;;
    --no-ducc) do_ducc=false; shift ;;
    --no-wsclean) do_wsclean=false; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
    esac
done
if $small; then
    times=12 sim_opts=(--antennas 32 --channels-per-subband 8 --times 12)
    size=${size:-512}
else
    times=24 sim_opts=()
    size=${size:-2048}
fi
contimg=$build/contimg
work=${keep:-$(mktemp -d /var/tmp/contimg-bench-imaging.XXXXXX)}
mkdir -p "$work"
[ -n "$keep" ] || trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# mpirun's PMIx would try munge for 2.3 s where munged is not running (src/mpiutil.h).
munge -n >/dev/null 2>&1 || export PMIX_MCA_psec=${PMIX_MCA_psec:-^munge}
ncpu=$(nproc)
$threads_all && threads=$ncpu
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# shellcheck source=bench/bench_lib.sh
. "$here/bench_lib.sh"
run_contimg() {
    if [ "$ranks" -eq 1 ]; then
        "$contimg" "$@" --threads "$threads"
    else
        mpirun --oversubscribe --allow-run-as-root --bind-to none -n "$ranks" "$contimg" "$@" \
            --threads "$threads"
    fi
}

# --- peers' environment -----------------------------------------------------
venv=$build/imaging-venv
py=$venv/bin/python
if ! "$py" -c "import ducc0, pyuvdata, casacore.tables" 2>/dev/null; then
    echo "making $venv (ducc0, pyuvdata, python-casacore) ..."
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check ducc0 pyuvdata python-casacore
fi
peers() { "$py" "$here/imaging_peers.py" "$@"; }
if $do_wsclean && { ! command -v wsclean >/dev/null || [ ! -x /usr/bin/time ]; }; then
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing Debian's wsclean and GNU time ..."
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q wsclean time >/dev/null
    else
        echo "wsclean or GNU time is missing (apt-get install wsclean time); skipping WSClean"
        do_wsclean=false
    fi
fi
if ! "$contimg" image --help >/dev/null 2>&1; then
    echo "$contimg has no 'image' command yet: only the simulation and peers' checks run" >&2
    have_image=false
else
    have_image=true
fi

# --- input: one observation, combined into one UVH5 file --------------------
start=2026-11-22T10:00:00 dec=55
field=$(calc "%.4f" "$size * $cell / 3600")
obs=$work/obs combined=$work/combined.hdf5
if [ ! -f "$combined" ]; then
    rm -rf "$obs" "$work/probe"
    # A two-antenna probe with the same times gives the pointing's ICRS position
    # at mid-observation, around which the sources are laid out.
    "$contimg" simulate --out "$work/probe" --start "$start" --dec $dec --antennas 2 \
        --channels-per-subband 1 --times "$times" >/dev/null
    peers sources --uvh5 "$work/probe/${start}_sb00.hdf5" --dec $dec --field-deg "$field" \
        --out "$work/sources.txt" >/dev/null
    rm -rf "$work/probe"
    echo "simulating one observation (${sim_opts[*]:-full size}) into $obs ..."
    t0=$(now)
    "$contimg" simulate --out "$obs" --start "$start" --dec $dec --noise-jy 1 \
        --sources "$work/sources.txt" "${sim_opts[@]}" >/dev/null
    echo "  simulate: $(since "$t0") s"
    t0=$(now)
    "$contimg" convert "$obs" --out "$combined.tmp" >/dev/null
    mv "$combined.tmp" "$combined"
    rm -rf "$obs"
    echo "  convert:  $(since "$t0") s"
fi
echo "input: $combined ($(du -b "$combined" | awk '{ printf "%.2f GB", $1 / 1e9 }')), $ncpu CPUs"
echo "geometry: $size x $size pixels of $cell arcsec, weight $weight $( [ "$weight" = briggs ] && echo "robust $robust"), niter $niter${minuv:+, min uv $minuv lambda}, contimg on $ranks rank(s)"
echo

echo "ducc0 orientation and sign check (tiny case):"
peers convention | sed 's/^/  /'

img_opts=(--size "$size" --cell "$cell" --weight "$weight")
[ "$weight" = briggs ] && img_opts+=(--robust "$robust")
[ -n "$minuv" ] && img_opts+=(--min-uv-lambda "$minuv")

# --- contimg: dirty images at each epsilon, the rows exported once -----------
declare -A ct_grid ct_fft ct_total ct_nvis ct_passes du_s du_rate du_err du_rms du_peak
rows=$work/rows.f64
if $have_image; then
    first=true
    for e in $epsilons; do
        exp=()
        $first && exp=(--export-vis "$rows")
        echo "contimg image --niter 0 --epsilon $e ..."
        # --slant off: ducc0 images the exported rows on the plain SIN grid, so
        # contimg's dirty image must be on that grid to be compared pixel by pixel
        # (and both gridders then work the same w range).
        run_contimg image "$combined" --out "$work/ct-e$e" "${img_opts[@]}" --niter 0 --slant off \
            --epsilon "$e" --json "${exp[@]}" >"$work/ct-e$e.json"
        ct_grid[$e]=$(jget "$work/ct-e$e.json" timings.grid)
        ct_fft[$e]=$(jget "$work/ct-e$e.json" timings.fft)
        ct_total[$e]=$(jget "$work/ct-e$e.json" timings.total)
        ct_nvis[$e]=$(jget "$work/ct-e$e.json" n_vis)
        p=$(jget "$work/ct-e$e.json" grid_passes)
        # Gridding passes in a --niter 0 run: the dirty image and the PSF (2),
        # unless contimg says otherwise or --grid-passes overrides.
        ct_passes[$e]=${passes:-$([ "$p" = null ] && echo 2 || echo "$p")}
        echo "  n_vis ${ct_nvis[$e]}, w_planes $(jget "$work/ct-e$e.json" w_planes), grid ${ct_grid[$e]} s, fft ${ct_fft[$e]} s, total ${ct_total[$e]} s (${ct_passes[$e]} gridding passes)"
        first=false
    done
    centre_ra=$(jget "$work/ct-e${epsilons%% *}.json" centre_ra_deg)
    centre_dec=$(jget "$work/ct-e${epsilons%% *}.json" centre_dec_deg)
fi

# --- ducc0 on the exported rows ----------------------------------------------
if $do_ducc && [ -f "$rows" ]; then
    for e in $epsilons; do
        echo "ducc0 vis2dirty, epsilon $e, $threads thread(s) ..."
        peers ducc --rows "$rows" --nx "$size" --ny "$size" --cell "$cell" --epsilon "$e" --threads "$threads" \
            --ref "$work/ct-e$e-dirty.fits" >"$work/ducc-e$e.json"
        du_s[$e]=$(jget "$work/ducc-e$e.json" grid_s)
        du_rate[$e]=$(jget "$work/ducc-e$e.json" vis_per_s_per_core)
        du_err[$e]=$(jget "$work/ducc-e$e.json" diff_max_over_peak)
        du_rms[$e]=$(jget "$work/ducc-e$e.json" diff_rms)
        du_peak[$e]=$(jget "$work/ducc-e$e.json" peak)
        echo "  $(calc "%.2f" "${du_s[$e]}") s ($(jget "$work/ducc-e$e.json" ref_orientation)); vs contimg's dirty image: max|diff|/peak ${du_err[$e]}, rms diff ${du_rms[$e]}"
    done
fi

# --- the whole image: contimg, then WSClean -----------------------------------
clean_opts=(--niter "$niter" --gain 0.1 --mgain "$mgain")
[ -n "$threshold" ] && clean_opts+=(--threshold "$threshold")
if $have_image; then
    e1=${epsilons%% *}
    echo "contimg image --niter $niter --epsilon $e1 (wall time) ..."
    t0=$(now)
    run_contimg image "$combined" --out "$work/ct" "${img_opts[@]}" "${clean_opts[@]}" \
        --epsilon "$e1" --json >"$work/ct.json"
    ct_wall=$(since "$t0")
    echo "  $ct_wall s (its own total $(jget "$work/ct.json" timings.total) s); w planes" \
         "$(jget "$work/ct.json" w_planes), slant (PV2_1, PV2_2) = ($(jget "$work/ct.json" slant_xi)," \
         "$(jget "$work/ct.json" slant_eta)), $(jget "$work/ct.json" major_cycles) major cycles;" \
         "grid $(jget "$work/ct.json" timings.grid), fft $(jget "$work/ct.json" timings.fft)," \
         "degrid $(jget "$work/ct.json" timings.degrid), clean $(jget "$work/ct.json" timings.clean)," \
         "read $(jget "$work/ct.json" timings.read), weights $(jget "$work/ct.json" timings.weights) s;" \
         "peak memory $(calc "%.2f" "$(jget "$work/ct.json" peak_rss_bytes) / 1e9") GB (all ranks)"
fi
declare -A ws_wall ws_rss
if $do_wsclean && $have_image; then
    ms=$work/obs.ms
    if [ ! -d "$ms" ] || [ "$(cat "$ms.centre" 2>/dev/null)" != "$centre_ra $centre_dec" ]; then
        echo "Measurement Set by pyuvdata, phased to contimg's centre ($centre_ra, $centre_dec) ..."
        peers ms --uvh5 "$combined" --ra "$centre_ra" --dec "$centre_dec" --out "$ms" \
            >"$work/ms.json"
        echo "$centre_ra $centre_dec" >"$ms.centre"
        echo "  $(jget "$work/ms.json" seconds) s; $(jget "$work/ms.json" notes)"
    fi
    case $weight in
    briggs) ws_weight=(-weight briggs "$robust") ;;
    *) ws_weight=(-weight "$weight") ;;
    esac
    ws_opts=(-size "$size" "$size" -scale "${cell}asec" "${ws_weight[@]}" -niter "$niter"
             -gain 0.1 -mgain "$mgain" -pol I -no-update-model-required -use-wgridder
             -wgridder-accuracy "${epsilons%% *}")
    [ -n "$threshold" ] && ws_opts+=(-threshold "$threshold")
    [ -n "$minuv" ] && ws_opts+=(-minuv-l "$minuv")
    jlist=$threads
    for j in $jlist; do
        echo "wsclean -j $j ..."
        t0=$(now)
        # Its peak resident memory by GNU time (%M, KiB), as contimg reports its own.
        (cd "$work" && /usr/bin/time -f %M -o "$work/ws-j$j.rss" wsclean "${ws_opts[@]}" -j "$j" \
            -name "$work/ws-j$j" "$ms" >"$work/ws-j$j.log" 2>&1) ||
            { echo "  wsclean failed: see $work/ws-j$j.log"; tail -5 "$work/ws-j$j.log"; }
        ws_wall[$j]=$(since "$t0")
        ws_rss[$j]=$(tail -1 "$work/ws-j$j.rss" 2>/dev/null || echo 0)
        echo "  ${ws_wall[$j]} s, peak memory $(calc "%.2f" "${ws_rss[$j]} * 1024 / 1e9") GB"
    done
    peers compare --a "$work/ct-image.fits" --b "$work/ws-j$threads-image.fits" \
        --sources "$work/sources.txt" >"$work/compare.json"
fi

# --- summary -------------------------------------------------------------------
echo
if ! $have_image; then
    echo "no contimg image command: nothing to compare yet"
    exit 0
fi
echo "gridding (visibilities per second per core; contimg per pass = (grid + fft) / passes,"
echo "ducc0 = its whole vis2dirty call; both on $threads thread(s) per rank; higher is better; goal >= 1.0 x ducc0)"
printf "  %-8s %14s %14s %14s %14s %8s %12s\n" epsilon "contimg grid" "contimg +fft" "ducc0" "ct fft s" "ratio" "max|d|/peak"
for e in $epsilons; do
    nv=${ct_nvis[$e]} np=${ct_passes[$e]}
    if [ "${ct_grid[$e]}" = null ] || [ "${ct_fft[$e]}" = null ]; then
        echo "  $e: contimg's JSON has no timings.grid / timings.fft"; continue
    fi
    g=$(calc "%.3g" "$nv * $np / ${ct_grid[$e]} / $ranks / $threads")
    gf=$(calc "%.3g" "$nv * $np / (${ct_grid[$e]} + ${ct_fft[$e]}) / $ranks / $threads")
    if [ -n "${du_rate[$e]:-}" ]; then
        d=$(calc "%.3g" "${du_rate[$e]}")
        r=$(calc "%.2f" "$gf / ${du_rate[$e]}")
        ok=$(awk -v r="$r" 'BEGIN { print (r >= 1.0) ? "meets" : "MISSES" }')
        printf "  %-8s %14s %14s %14s %14s %8s %12.2e  %s\n" "$e" "$g" "$gf" "$d" "${ct_fft[$e]}" "$r" "${du_err[$e]}" "$ok"
    else
        printf "  %-8s %14s %14s %14s %14s\n" "$e" "$g" "$gf" - "${ct_fft[$e]}"
    fi
done
if $do_wsclean && [ -f "$work/compare.json" ]; then
    echo
    echo "whole image (wall seconds, niter $niter; lower is better; goal contimg <= 0.5 x WSClean -j $threads)"
    r=$(calc "%.2f" "$ct_wall / ${ws_wall[$threads]}")
    printf "  %-26s %10s\n" "contimg ($ranks rank(s) x $threads)" "$ct_wall"
    for j in "${!ws_wall[@]}"; do printf "  %-26s %10s\n" "wsclean -j $j" "${ws_wall[$j]}"; done
    echo "  ratio contimg / wsclean -j $threads: $r  $(awk -v r="$r" 'BEGIN { print (r <= 0.5) ? "meets" : "MISSES" }')"
    echo
    echo "peak resident memory (GB; contimg: all ranks together, from its JSON; WSClean: GNU time; goal contimg <= 3)"
    m=$(calc "%.2f" "$(jget "$work/ct.json" peak_rss_bytes) / 1e9")
    printf "  %-26s %10s  %s\n" "contimg" "$m" "$(awk -v m="$m" 'BEGIN { print (m <= 3) ? "meets" : "MISSES" }')"
    printf "  %-26s %10s\n" "wsclean -j $threads" "$(calc "%.2f" "${ws_rss[$threads]:-0} * 1024 / 1e9")"
    echo
    echo "fidelity (restored images, Jy/beam; rms = 1.4826 MAD)"
    c=$work/compare.json
    printf "  %-10s %12s %12s %12s\n" "" peak rms "bmaj arcsec"
    printf "  %-10s %12.5g %12.5g %12s\n" contimg "$(jget "$c" a_peak)" "$(jget "$c" a_rms)" \
        "$("$py" -c 'import json,sys; v=json.load(open(sys.argv[1]))["BMAJ"][0]; print("%.1f" % (v*3600) if v else "-")' "$c")"
    printf "  %-10s %12.5g %12.5g %12s\n" wsclean "$(jget "$c" b_peak)" "$(jget "$c" b_rms)" \
        "$("$py" -c 'import json,sys; v=json.load(open(sys.argv[1]))["BMAJ"][1]; print("%.1f" % (v*3600) if v else "-")' "$c")"
    if [ "$(jget "$c" same_grid)" = True ]; then
        echo "  difference: rms $(jget "$c" diff_rms), max $(jget "$c" diff_max)"
    elif [ "$(jget "$c" resampled_b)" = True ]; then
        echo "  difference (WSClean's plain SIN resampled onto contimg's slant SIN, PV2 $(jget "$c" pv2)):" \
             "rms $(jget "$c" diff_rms), max $(jget "$c" diff_max)"
    else
        echo "  grids differ (CRVAL/CRPIX/CDELT: see $c): no pixel difference taken;" \
             "centre offset $(jget "$c" centre_offset_arcsec) arcsec"
    fi
    echo "  catalogue sources (flux; contimg, wsclean peak near the catalogue position):"
    "$py" - "$c" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1])).get("sources", []):
    f = lambda v: "-" if v is None else "%.3f" % v
    print("    %9.4f %8.4f  %5.2f Jy   %8s %s  %8s %s" % (s["ra"], s["dec"], s["flux"],
          f(s["a"]), s["a_offset_px"], f(s["b"]), s["b_offset_px"]))
PY
fi
