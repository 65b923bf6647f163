# engine_lib.sh -- what the engine tests share (sourced; CONTIMG set by the caller):
# a scratch directory with three simulated observations, a private database per
# scenario, SQL and check helpers, and check_complete, the state every full run ends in.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN=(mpirun -q --allow-run-as-root --oversubscribe)
T=$(mktemp -d)
STATES=()  # private databases to stop at the end
BACKGROUND=() # engines started in the background, killed at the end if still running
CLEANUP_HOOK=: # a test's own last words (stopping Slurm)
cleanup() {
    for p in "${BACKGROUND[@]}"; do kill -9 "$p" 2>/dev/null; done
    $CLEANUP_HOOK
    for s in "${STATES[@]}"; do CONTIMG_STATE_DIR=$s "$CONTIMG" db stop >/dev/null 2>&1; done
    rm -rf "$T"
}
trap cleanup EXIT
failed=0
bad() {
    failed=$((failed + 1))
    echo "FAIL: $*" >&2
}
ok() { echo "ok   $*"; }
check() { # check DESCRIPTION CONDITION...
    local what=$1
    shift
    if eval "$@"; then ok "$what"; else bad "$what"; fi
}

# Small observations: 48 antennas, 4 integrations, one channel per subband; one 10 Jy
# source at the phase centre and thermal noise. Images of 256 pixels of 20 arcsec;
# quicklook mosaics of 2 consecutive images overlapping by 1, in 128-px tiles.
# (tests/chains_small.json, shared with the fault harness)
export CONTIMG_CHAINS_FILE=$HERE/chains_small.json
simulate() { # simulate DIR START
    "$CONTIMG" simulate --out "$1" --start "$2" --dec 55 --antennas 48 --times 4 \
        --channels-per-subband 1 --noise-jy 0.05 >/dev/null || bad "simulate $2"
}
simulate "$T/obs3" 2026-11-22T10:00:00
simulate "$T/obs3" 2026-11-22T10:05:09
simulate "$T/obs3" 2026-11-22T10:10:18

# fresh NAME: a private database of its own, migrated; sets URL.
fresh() {
    export CONTIMG_STATE_DIR=$T/$1
    STATES+=("$CONTIMG_STATE_DIR")
    "$CONTIMG" db start >/dev/null && "$CONTIMG" db migrate --no-default-schedules >/dev/null || bad "database for $1"
    URL=$("$CONTIMG" db url)
}
q() { psql "$URL" -XAtq -c "$1"; }
wait_for() { # wait_for SECONDS SQL-CONDITION: polls until the query returns t
    local until=$((SECONDS + $1))
    while [ $SECONDS -lt "$until" ]; do
        [ "$(q "SELECT ($2)")" = t ] && return 0
        sleep 0.2
    done
    return 1
}

# The state every full run must end in: per group one completed convert and imaging
# task, one visibility row and one image row whose files exist and pass QA.
check_complete() { # check_complete LABEL NGROUPS
    local label=$1 n=$2
    check "$label: $n convert and $n imaging tasks completed, nothing pending or claimed" \
        '[ "$(q "SELECT count(*) FILTER (WHERE task_name = '"'"'convert-uvh5-to-ms'"'"' AND status = '"'"'completed'"'"') || '"'"' '"'"' ||
                   count(*) FILTER (WHERE task_name = '"'"'imaging'"'"' AND status = '"'"'completed'"'"') || '"'"' '"'"' ||
                   count(*) FILTER (WHERE status NOT IN ('"'"'completed'"'"', '"'"'failed'"'"', '"'"'cancelled'"'"'))
              FROM absurd.tasks")" = "$n $n 0" ]'
    check "$label: $n visibility rows and $n image rows, each once" \
        '[ "$(q "SELECT (SELECT count(*) FROM products.visibilities) || '"'"' '"'"' ||
                       (SELECT count(DISTINCT group_id) FROM products.visibilities) || '"'"' '"'"' ||
                       (SELECT count(*) FROM products.images) || '"'"' '"'"' ||
                       (SELECT count(DISTINCT group_id) FROM products.images)")" = "$n $n $n $n" ]'
    local rows
    rows=$(q "SELECT image_path, pb_path, peak_jy, rms_jy, qa_passed FROM products.images")
    local good=0
    while IFS='|' read -r img pb peak rms qa; do
        [ -n "$img" ] || continue
        if [ -s "$img" ] && [ -s "$pb" ] && [ "$qa" = t ] &&
            /usr/bin/python3 - "$img" "$peak" "$rms" <<'PY'; then good=$((good + 1)); else bad "$label: image $img (peak $peak, rms $rms, qa $qa)"; fi
import sys
from astropy.io import fits
import numpy as np
img, peak, rms = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
data = fits.getdata(img).squeeze()
# The 10 Jy source at the centre, as the row says; the noise far below it.
assert abs(np.nanmax(data) - peak) < 1e-4 * peak, (np.nanmax(data), peak)
assert abs(peak - 10.0) < 0.5, peak
assert 0 < rms < 0.05, rms
PY
    done <<<"$rows"
    check "$label: every image file exists, opens, holds the source and passed QA" '[ $good -eq $n ]'
    check "$label: no temporary file left under the products" \
        '[ -z "$(find "$CONTIMG_STATE_DIR/products" -name "*.tmp-*")" ]'
}

