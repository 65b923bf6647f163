#!/usr/bin/env bash
# test_calibration.sh -- `contimg calibrate` on simulated data whose antennas the
# simulator corrupted (amplitudes 0.85-1.15, any phase, a 5 % bandpass ripple and a delay
# of up to 3 ns, each antenna's X and Y feeds apart), as a calibration stage meets them.
#
#   bash tests/test_calibration.sh /path/to/contimg /path/to/check_caltable VENV_PYTHON
#
# VENV_PYTHON: the test venv's python (the pyuvdata fixture's, with h5py).
# 1. A calibrator transit (10 Jy at the pointing): the solved bandpass against the
#    simulator's own gains, within 1 % in amplitude and 1 deg in phase; with --solint,
#    gains near unity on top; the caltable read back by h5py; on 3 ranks (channels dealt
#    over them) the same bandpass bits and the gains to 1e-12; gains that drift in time
#    followed by a gain per interval (and not by the bandpass alone); three corrupted
#    baselines left out of the solutions (and with the cut off, the gains go wrong).
# 2. A target observed an hour later through the same antennas: calibrated with the
#    calibrator's solutions, its image has the sources where and as bright as they are
#    (tests/check_image.py: 0.1 px, 1 % at the centre, 2 % after the primary beam);
#    uncalibrated, the same check fails -- so the check proves something. Applied on 3
#    ranks, the calibrated file is the same bytes as on one.
# 3. Bad input: usage errors exit 2, a missing file 4, a caltable whose channels differ
#    refused, a damaged caltable refused as corrupt input; nothing left at --out.
# 4. The registry (products.caltables, CONTIMG_STATE_DIR's database) and its fallback
#    chain: each rung -- active, nearest within the staleness limit, stale with a warning,
#    none (exit 4) -- and `apply --cal auto` choosing the same caltable as by hand.
# 5. A night in miniature through the engine: the calibrator transit ingested on the
#    "calibrator" chain and two targets on the "target" chain, drained by mpirun: every
#    task completed, one caltables row written once by the solve's commit, each target
#    calibrated with it through the fallback chain (rung active) and imaged with its
#    sources where and as bright as they are.
# 6. A catalogue calibrator found by itself: 3C147's transit simulated at the time it
#    transits; `ingest --chain auto` starts it on the calibrator chain (a target field on
#    the target chain); calibration-solve, given no model, solves against the catalogue's
#    3C147 and recovers the simulator's gains.
set -u
CONTIMG=${1:?usage: test_calibration.sh CONTIMG CHECK_CALTABLE}
CHECK_CAL=${2:?usage: test_calibration.sh CONTIMG CHECK_CALTABLE VENV_PYTHON}
VENV_PY=${3:?usage: test_calibration.sh CONTIMG CHECK_CALTABLE VENV_PYTHON}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export PMIX_MCA_psec=^munge
# shellcheck source=tests/cli_lib.sh
. "$HERE/cli_lib.sh"

SIM=(--dec 55 --channels-per-subband 2 --times 12 --gains-seed 7)
# ---- 1. the calibrator --------------------------------------------------------------
echo "0 0 10.0" >"$T/cal.txt"
run "simulate the calibrator" "$CONTIMG" simulate --out "$T/calobs" --start 2026-11-22T10:00:00 \
    "${SIM[@]}" --noise-jy 0.05 --sources "$T/cal.txt" --relative >/dev/null
run "convert the calibrator" "$CONTIMG" convert "$T/calobs" --out "$T/cal.hdf5" >/dev/null
# Where the calibrator is: the pointing at mid-observation, which is the image centre.
"$CONTIMG" image "$T/cal.hdf5" --out "$T/probe" --size 128 --cell 20 --niter 0 --json \
    >"$T/probe.json" 2>"$T/probe.err" || bad "probe image: $(cat "$T/probe.err")"
read -r RA DEC < <("$PY" -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(r["centre_ra_deg"], r["centre_dec_deg"])' "$T/probe.json")
MODEL="$RA,$DEC,10"
"$CONTIMG" calibrate solve "$T/cal.hdf5" --out "$T/cal" --model "$MODEL" --json \
    >"$T/solve.json" 2>"$T/solve.err" || bad "calibrate solve: $(cat "$T/solve.err")"
run "the caltable is written atomically: PREFIX.cal.h5, no temporary left" \
    bash -c '[ -f "$1/cal.cal.h5" ] && ! ls "$1"/*.tmp-* >/dev/null 2>&1' _ "$T"
run "the solve's JSON: 96 antennas solved, the fit's rms at the simulated noise" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["antennas"] == 96 and r["channels"] == 32, r
assert abs(r["rms_jy"] / 0.05 - 1) < 0.1, r["rms_jy"]
print("     %d antennas, rms %.4g Jy (noise 0.05), %d iterations" % (r["antennas"], r["rms_jy"], r["iterations"]))
' "$T/solve.json"
run "the bandpass is the simulator's gains: 1 % in amplitude, 1 deg in phase; delays to 0.05 ns (32 channels over 7.8 MHz: a delay is known to about 0.005 ns)" \
    "$CHECK_CAL" "$T/cal.cal.h5" 7 0.01 1.0 96 0.05
"$CONTIMG" calibrate solve "$T/cal.hdf5" --out "$T/calg" --model "$MODEL" --solint 60 --refant 5 \
    --json >"$T/solveg.json" 2>"$T/solveg.err" || bad "calibrate solve --solint: $(cat "$T/solveg.err")"
run "with --solint 60 and --refant 5: bandpass x gain is still the simulator's gains" \
    "$CHECK_CAL" "$T/calg.cal.h5" 7 0.01 1.0 96 0.05
run "with --solint 60: several intervals, the reference antenna's phase 0" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["intervals"] >= 2 and r["refant"] == 5, r
print("     %d intervals of 60 s" % r["intervals"])
' "$T/solveg.json"
run "h5py reads the caltable: shapes, the format, J = bandpass x gain of unit modulus mean" \
    "$VENV_PY" -c '
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "r") as f:
    fmt = f.attrs["format"]
    assert (fmt.decode() if isinstance(fmt, bytes) else fmt) == "contimg caltable", fmt
    bp, g = f["bandpass"][()], f["gain"][()]
    nchan, nant = bp.shape[0], bp.shape[1]
    assert bp.shape == (nchan, nant, 2, 2) and g.shape[1:] == (nant, 2, 2), (bp.shape, g.shape)
    assert f["freq_hz"].shape == (nchan,) and f["bandpass_flag"].shape == (nchan, nant, 2)
    ok = f["gain_flag"][()] == 0
    amp = np.abs(g[..., 0] + 1j * g[..., 1])[ok]
    assert abs(np.median(amp) - 1) < 0.01, np.median(amp)
    print("     bandpass %s, gain %s, median |gain| %.4f" % (bp.shape, g.shape, np.median(amp)))
' "$T/calg.cal.h5"

mpirun -q --allow-run-as-root --oversubscribe -np 3 "$CONTIMG" calibrate solve "$T/cal.hdf5" \
    --out "$T/calg3" --model "$MODEL" --solint 60 --refant 5 --json >"$T/solveg3.json" \
    2>"$T/solveg3.err" || bad "calibrate solve on 3 ranks: $(cat "$T/solveg3.err")"
run "on 3 ranks (32 channels dealt 10/11/11): the bandpass the same bits as on one, the gains to 1e-12" \
    "$VENV_PY" -c '
import h5py, numpy as np, sys, json
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    for k in ("bandpass", "bandpass_flag", "bandpass_snr", "gain_flag", "freq_hz"):
        assert np.array_equal(a[k][()], b[k][()], equal_nan=True), k
    d = np.abs(a["gain"][()] - b["gain"][()]).max()
    assert d < 1e-12, d
# json.load refuses a second object after the first: one report, from rank 0.
one, three = json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
assert three["intervals"] == one["intervals"] and three["antennas"] == one["antennas"], three
print("     bandpass identical, gains within %.1e; one report, from rank 0" % d)
' "$T/calg.cal.h5" "$T/calg3.cal.h5" "$T/solveg.json" "$T/solveg3.json"

# Outliers: three baselines of the calibrator corrupted (x3 in amplitude, 1 rad in phase, as
# a broken correlator input would leave them): left out of every solution by the residual
# cut, the gains are still the simulator's; with the cut off (--reject-sigma 0) they are not.
cp "$T/cal.hdf5" "$T/bad3.hdf5"
"$VENV_PY" -c '
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "r+") as f:
    a1, a2 = f["Header/ant_1_array"][()], f["Header/ant_2_array"][()]
    pairs = sorted({(int(i), int(j)) for i, j in zip(a1, a2) if i != j})
    pick = [pairs[k] for k in (100, 2000, 3500)]
    v = f["Data/visdata"]
    for i, j in pick:
        rows = np.nonzero((a1 == i) & (a2 == j))[0]
        for r in rows:
            v[r] = v[r] * (3 * np.exp(1j))
    print("     corrupted baselines", pick)
' "$T/bad3.hdf5" || bad "corrupting three baselines"
"$CONTIMG" calibrate solve "$T/bad3.hdf5" --out "$T/bad3" --model "$MODEL" --json \
    >"$T/bad3.json" 2>"$T/bad3.err" || bad "calibrate solve (outliers): $(cat "$T/bad3.err")"
run "three corrupted baselines: left out (the JSON counts them), the bandpass still the simulator's gains (1 %, 1 deg)" \
    bash -c '"$1" -c "import json, sys; r = json.load(open(sys.argv[1])); assert r[\"rejected_baselines\"] >= 3 * 64, r[\"rejected_baselines\"]; print(\"     %d baseline solutions left out\" % r[\"rejected_baselines\"])" "$2" && "$3" "$4" 7 0.01 1.0 96 0.05' \
    _ "$PY" "$T/bad3.json" "$CHECK_CAL" "$T/bad3.cal.h5"
"$CONTIMG" calibrate solve "$T/bad3.hdf5" --out "$T/bad3keep" --model "$MODEL" --reject-sigma 0 \
    >/dev/null 2>"$T/bad3.err" || bad "calibrate solve --reject-sigma 0: $(cat "$T/bad3.err")"
"$CHECK_CAL" "$T/bad3keep.cal.h5" 7 0.01 1.0 96 0.05 >"$T/bad3keep.out" 2>&1
rc=$?
if [ $rc -eq 1 ]; then
    ok "the same with --reject-sigma 0 (all baselines kept): the check fails: $(cat "$T/bad3keep.out")"
else
    bad "--reject-sigma 0: check_caltable exit $rc (wanted 1): $(cat "$T/bad3keep.out")"
fi

# Gains that drift in time (--gains-drift 120: each feed's phase turning at up to 120 deg an
# hour, 5 deg over these 155 s): the bandpass over the whole observation cannot follow them,
# a gain per 30 s interval on top of it can.
run "simulate a calibrator whose gains drift" "$CONTIMG" simulate --out "$T/driftobs" \
    --start 2026-11-22T10:00:00 "${SIM[@]}" --gains-drift 120 --noise-jy 0.05 \
    --sources "$T/cal.txt" --relative >/dev/null
run "convert it" "$CONTIMG" convert "$T/driftobs" --out "$T/drift.hdf5" >/dev/null
"$CONTIMG" calibrate solve "$T/drift.hdf5" --out "$T/drift30" --model "$MODEL" --solint 30 \
    >/dev/null 2>"$T/drift.err" || bad "calibrate solve --solint 30: $(cat "$T/drift.err")"
run "drifting gains, --solint 30: at every integration, bandpass x gain as the application interpolates it is the simulator's gain then (1 %, 1 deg)" \
    "$CHECK_CAL" "$T/drift30.cal.h5" 7 0.01 1.0 96 0.05 120
"$CONTIMG" calibrate solve "$T/drift.hdf5" --out "$T/drift0" --model "$MODEL" \
    >/dev/null 2>"$T/drift.err" || bad "calibrate solve (bandpass only): $(cat "$T/drift.err")"
"$CHECK_CAL" "$T/drift0.cal.h5" 7 0.01 1.0 96 0.05 120 >"$T/drift0.out" 2>&1
rc=$?
if [ $rc -eq 1 ]; then
    ok "drifting gains, the bandpass alone: the same check fails (it sees the drift): $(cat "$T/drift0.out")"
else
    bad "drifting gains, the bandpass alone: check_caltable exit $rc (wanted 1): $(cat "$T/drift0.out")"
fi

# ---- 2. a target an hour later ----------------------------------------------------------
cat >"$T/target.txt" <<'SRC'
0 0 5.0
0.5 0.3 3.0
-0.4 -0.5 2.0
0.25 -0.2 1.0
SRC
run "simulate the target" "$CONTIMG" simulate --out "$T/tobs" --start 2026-11-22T11:00:00 \
    "${SIM[@]}" --noise-jy 0.05 --sources "$T/target.txt" --relative >/dev/null
run "convert the target" "$CONTIMG" convert "$T/tobs" --out "$T/target.hdf5" >/dev/null
"$CONTIMG" calibrate apply "$T/target.hdf5" --cal "$T/cal" --out "$T/target-cal.hdf5" --json \
    >"$T/apply.json" 2>"$T/apply.err" || bad "calibrate apply: $(cat "$T/apply.err")"
run "apply: every correlation written, none newly flagged" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["n_samples"] > 0 and r["n_flagged_by_cal"] == 0, r
print("     %d correlations in %.2f s" % (r["n_samples"], r["seconds"]))
' "$T/apply.json"
mpirun -q --allow-run-as-root --oversubscribe -np 3 "$CONTIMG" calibrate apply "$T/target.hdf5" \
    --cal "$T/cal" --out "$T/target-cal3.hdf5" >/dev/null 2>"$T/apply3.err" ||
    bad "calibrate apply on 3 ranks: $(cat "$T/apply3.err")"
run "apply on 3 ranks (baseline-times dealt over them): the same bytes as on one" \
    cmp "$T/target-cal.hdf5" "$T/target-cal3.hdf5"
IMG=(--size 512 --cell 20 --niter 2000 --threshold 0.02)
"$CONTIMG" image "$T/target-cal.hdf5" --out "$T/tc" "${IMG[@]}" >/dev/null 2>"$T/tc.err" ||
    bad "image the calibrated target: $(cat "$T/tc.err")"
run "calibrated: the sources where and as bright as they are" \
    "$PY" "$HERE/check_image.py" sources "$T/tc" "$T/target.txt"
"$CONTIMG" image "$T/target.hdf5" --out "$T/tu" "${IMG[@]}" >/dev/null 2>"$T/tu.err" ||
    bad "image the uncalibrated target: $(cat "$T/tu.err")"
if "$PY" "$HERE/check_image.py" sources "$T/tu" "$T/target.txt" >"$T/tu.out" 2>&1; then
    bad "uncalibrated, the same check passes: it proves nothing"
else
    ok "uncalibrated, the same check fails ($(grep -c FAIL "$T/tu.out") of its checks)"
fi

# ---- 3. bad input -----------------------------------------------------------------------
expect_exit 2 "model" "solve without a model" "$CONTIMG" calibrate solve "$T/cal.hdf5" --out "$T/x"
expect_exit 2 "model" "a model that is not RA,DEC,FLUX" \
    "$CONTIMG" calibrate solve "$T/cal.hdf5" --out "$T/x" --model 400,10,1
expect_exit 4 "" "a missing visibility file" \
    "$CONTIMG" calibrate solve "$T/none.hdf5" --out "$T/x" --model "$MODEL"
expect_exit 4 "" "a missing caltable" \
    "$CONTIMG" calibrate apply "$T/target.hdf5" --cal "$T/none" --out "$T/x.hdf5"
head -c 3000 "$T/cal.cal.h5" >"$T/broken.cal.h5"
expect_exit 2 "corrupt" "a damaged caltable" \
    "$CONTIMG" calibrate apply "$T/target.hdf5" --cal "$T/broken" --out "$T/x.hdf5"
run "simulate an observation with other channels" "$CONTIMG" simulate --out "$T/oobs" \
    --start 2026-11-22T11:00:00 --dec 55 --channels-per-subband 1 --times 2 --antennas 8 \
    --noise-jy 0.05 >/dev/null
run "convert it" "$CONTIMG" convert "$T/oobs" --out "$T/other.hdf5" >/dev/null
expect_exit 2 "channels" "a caltable whose channels differ" \
    "$CONTIMG" calibrate apply "$T/other.hdf5" --cal "$T/cal" --out "$T/x.hdf5"
run "nothing left at --out after the refusals" bash -c '! ls "$1"/x.* >/dev/null 2>&1' _ "$T"

# ---- 4. the registry and its fallback chain ------------------------------------------------
# The calibrator observation is 2026-11-22 10:00-10:06 UTC; this test's caltables are the
# only ones on that day (earlier runs' rows there are retired first).
URL=$("$CONTIMG" db url)
psql "$URL" -XAtq -c "UPDATE products.caltables SET status = 'retired'
                      WHERE obs_start::date = '2026-11-22'" >/dev/null ||
    bad "retire earlier runs' caltables"
"$CONTIMG" calibrate solve "$T/cal.hdf5" --out "$T/regA" --model "$MODEL" --register \
    --valid-hours 0.5 --json >"$T/regA.json" 2>"$T/regA.err" ||
    bad "calibrate solve --register: $(cat "$T/regA.err")"
run "registered: the row keyed by the absolute path, valid half an hour past the observation" \
    "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))["registered"]
assert r["path"] == sys.argv[2] and r["group_id"].startswith("2026-11-22T10:0"), r
assert r["status"] == "active" and r["kind"] == "bandpass", r
print("     %s, %s .. %s, valid until %s" % (r["group_id"], r["obs_start"], r["obs_end"], r["valid_until"]))
' "$T/regA.json" "$T/regA.cal.h5"
want_rung() { # want_rung DESCRIPTION RUNG PATH TIME [ARGS...]: what contimg calibrate find says
    local what=$1 rung=$2 path=$3
    shift 3
    local got
    got=$("$CONTIMG" calibrate find --time "$@" --json 2>"$T/find.err" |
        "$PY" -c 'import json, sys; r = json.load(sys.stdin); print(r["rung"], r["path"])')
    if [ "$got" = "$rung $path" ]; then ok "$what"; else bad "$what: got '$got'"; fi
}
want_rung "10:20, inside the window: rung active" active "$T/regA.cal.h5" 2026-11-22T10:20:00Z
want_rung "11:00, past the window, within 6 h: rung nearest" nearest "$T/regA.cal.h5" \
    2026-11-22T11:00:00Z
want_rung "17:30, past 6 h: rung stale" stale "$T/regA.cal.h5" 2026-11-22T17:30:00Z
run "the stale rung warns, naming the age" \
    grep -Eq "warning: the newest solutions are 7\.[45] h old \(staleness limit 6 h\)" "$T/find.err"
want_rung "17:30 with --stale-hours 8: rung nearest" nearest "$T/regA.cal.h5" \
    2026-11-22T17:30:00Z --stale-hours 8
expect_exit 4 "no caltable" "a day before any calibrator: none, exit 4" \
    "$CONTIMG" calibrate find --time 2026-11-21T10:00:00Z
"$CONTIMG" calibrate solve "$T/cal.hdf5" --out "$T/regB" --model "$MODEL" --register \
    >/dev/null 2>"$T/regB.err" || bad "calibrate solve --register (24 h): $(cat "$T/regB.err")"
want_rung "a second caltable valid 24 h: 11:00 is now its rung active" active "$T/regB.cal.h5" \
    2026-11-22T11:00:00Z
"$CONTIMG" calibrate apply "$T/target.hdf5" --cal auto --out "$T/target-auto.hdf5" --json \
    >"$T/auto.json" 2>"$T/auto.err" || bad "calibrate apply --cal auto: $(cat "$T/auto.err")"
run "apply --cal auto: the registry's caltable, by its active rung" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["rung"] == "active" and r["caltable"] == sys.argv[2], r
' "$T/auto.json" "$T/regB.cal.h5"
run "apply --cal auto: the same data, flags and weights as applying that caltable by hand" \
    "$VENV_PY" -c '
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    for name in ("visdata", "flags", "nsamples"):
        x, y = a["Data/" + name][()], b["Data/" + name][()]
        assert x.shape == y.shape and np.array_equal(x, y), name
' "$T/target-auto.hdf5" "$T/target-cal.hdf5"

# ---- 5. a night in miniature through the engine ---------------------------------------------
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
psql "$URL" -XAtq -c "UPDATE products.caltables SET status = 'retired'
                      WHERE obs_start::date = '2026-11-22'" >/dev/null ||
    bad "retire the registry's caltables of the day"
# With no caltable in reach, calibration-apply fails before any rank runs it, transient (a
# calibrator transit may yet come; with no retries left it is dead-lettered), and names why.
run "register a queue for a target with no calibrator" "$CONTIMG" queue create "calnone-$$"
ABSURD_QUEUE_NAME=calnone-$$ ABSURD_MAX_RETRIES=0 CONTIMG_PRODUCTS_DIR=$T/products-none \
    CONTIMG_CHAINS_FILE=$T/none-chains.json bash -c '
echo "{\"target\": [\"convert-uvh5-to-ms\", \"calibration-apply\", \"imaging\"]}" >"$CONTIMG_CHAINS_FILE"
"$1" ingest "$2" --chain target >/dev/null &&
mpirun -q --allow-run-as-root --oversubscribe -x ABSURD_QUEUE_NAME -x ABSURD_MAX_RETRIES \
    -x CONTIMG_PRODUCTS_DIR -x CONTIMG_CHAINS_FILE -x CONTIMG_STATE_DIR -np 2 "$1" run --drain' \
    _ "$CONTIMG" "$T/tobs" >"$T/none.log" 2>&1 || bad "the no-calibrator run: $(tail -5 "$T/none.log")"
none=$(psql "$URL" -XAtq -c "SELECT status || ' ' || error_category || ' ' || (error LIKE '%no caltable%')
                              || ' ' || (SELECT count(*) FROM absurd.tasks WHERE queue_name = 'calnone-$$'
                                         AND task_name = 'imaging')
                              FROM absurd.tasks WHERE queue_name = 'calnone-$$-dlq'
                               AND task_name = 'calibration-apply'")
if [ "$none" = "failed transient true 0" ]; then
    ok "no caltable in reach: calibration-apply dead-lettered, transient, naming it; no image"
else
    bad "no caltable in reach: got '$none'"
fi
run "simulate a second target" "$CONTIMG" simulate --out "$T/t2obs" --start 2026-11-22T12:00:00 \
    "${SIM[@]}" --noise-jy 0.05 --sources "$T/target.txt" --relative >/dev/null
cat >"$T/chains.json" <<CHAINS
{"calibrator": ["convert-uvh5-to-ms",
                {"task": "calibration-solve", "config": {"model": [[$RA, $DEC, 10]]}}],
 "target": ["convert-uvh5-to-ms", "calibration-apply",
            {"task": "imaging", "config": {"size": 512, "cell_arcsec": 20, "niter": 2000,
                                           "threshold_jy": 0.02}}]}
CHAINS
export CONTIMG_CHAINS_FILE=$T/chains.json ABSURD_QUEUE_NAME=caltest-$$
export CONTIMG_PRODUCTS_DIR=$T/products ABSURD_RETRY_BACKOFF_BASE=1 ABSURD_RETRY_BACKOFF_MAX=2
run "register the night's own queue" "$CONTIMG" queue create "caltest-$$"
run "ingest the calibrator on the calibrator chain" "$CONTIMG" ingest "$T/calobs" --chain calibrator
for d in tobs t2obs; do
    run "ingest target $d on the target chain" "$CONTIMG" ingest "$T/$d" --chain target
done
drain "$T/night.log" CONTIMG_CHAINS_FILE ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR \
    ABSURD_RETRY_BACKOFF_BASE ABSURD_RETRY_BACKOFF_MAX
same "every task of the night completed: 3 converts, 1 solve, 2 applies, 2 images" \
    "calibration-apply completed 2,calibration-solve completed 1,convert-uvh5-to-ms completed 3,imaging completed 2" \
    "$(task_counts "caltest-$$")"
same "one caltables row, written once by the solve's commit, valid 24 h past its observation" \
    "1|1|t|t|24" \
    "$(q "SELECT count(*), max(c.n_writes), bool_and(c.task_id = t.task_id),
                 bool_and(c.path LIKE '$T/products/caltables/%'),
                 round(max(extract(epoch FROM c.valid_until - c.obs_end)) / 3600)
            FROM products.caltables c JOIN absurd.tasks t ON t.task_name = 'calibration-solve'
                                                        AND t.queue_name = 'caltest-$$'
           WHERE c.status = 'active' AND c.obs_start::date = '2026-11-22'")"
same "each target calibrated with it through the fallback chain, rung active" "active active" \
    "$(q "SELECT string_agg(result->'metrics'->'calibration'->>'rung', ' ')
            FROM absurd.tasks WHERE task_name = 'calibration-apply'
             AND queue_name = 'caltest-$$' AND status = 'completed'")"
img=$(q "SELECT params->'outputs'->>'image_prefix' FROM absurd.tasks
          WHERE task_name = 'imaging' AND queue_name = 'caltest-$$'
            AND params->'inputs'->>'group_id' = '2026-11-22T11:00:00'")
run "the engine's image of the first target: its sources where and as bright as they are" \
    "$PY" "$HERE/check_image.py" sources "$img" "$T/target.txt"

# ---- 6. a catalogue calibrator's transit, found by itself ------------------------------------
# 3C147 from the catalogue; the time it transits on 2026-11-22 from a probe's meridian (the
# image centre of a short observation at its declination) and the sidereal rate.
read -r CRA CDEC CFLUX CSI < <("$CONTIMG" calibrate catalogue --json | "$PY" -c 'import json, sys
c = [r for r in json.load(sys.stdin) if r["name"] == "3C147"][0]
print(c["ra_deg"], c["dec_deg"], c["flux_jy_1p4"], c["spectral_index"])')
run "simulate a probe of the meridian at 3C147's declination" "$CONTIMG" simulate \
    --out "$T/meridian" --start 2026-11-22T00:00:00 --dec "$CDEC" --antennas 8 \
    --channels-per-subband 1 --times 2 --noise-jy 0.05 >/dev/null
run "convert it" "$CONTIMG" convert "$T/meridian" --out "$T/meridian.hdf5" >/dev/null
"$CONTIMG" image "$T/meridian.hdf5" --out "$T/meridian" --size 128 --cell 20 --niter 0 --json \
    >"$T/meridian.json" 2>"$T/meridian.err" || bad "the probe's image: $(cat "$T/meridian.err")"
START=$("$PY" -c 'import json, sys, datetime
r = json.load(open(sys.argv[1]))
hours = ((float(sys.argv[2]) - r["centre_ra_deg"]) % 360) / 15 * 0.9972696
t = datetime.datetime(2026, 11, 22) + datetime.timedelta(hours=hours, seconds=6 - 75)
print(t.strftime("%Y-%m-%dT%H:%M:%S"))' "$T/meridian.json" "$CRA")
echo "$CRA $CDEC $CFLUX $CSI" >"$T/3c147.txt"
run "simulate 3C147's transit at $START, its antennas corrupted" "$CONTIMG" simulate \
    --out "$T/c147obs" --start "$START" --dec "$CDEC" --channels-per-subband 2 --times 12 \
    --gains-seed 7 --noise-jy 0.05 --sources "$T/3c147.txt" >/dev/null
export ABSURD_QUEUE_NAME=calauto-$$ CONTIMG_PRODUCTS_DIR=$T/products-auto
cat >"$T/auto-chains.json" <<CHAINS
{"calibrator": ["convert-uvh5-to-ms", "calibration-solve"],
 "target": ["convert-uvh5-to-ms", "calibration-apply"]}
CHAINS
export CONTIMG_CHAINS_FILE=$T/auto-chains.json
run "register the transit's own queue" "$CONTIMG" queue create "calauto-$$"
out=$("$CONTIMG" ingest "$T/c147obs" --chain auto)
if [[ $out == *"(chain calibrator: 3C147 transits 0."*" deg from the pointing)"* ]]; then
    ok "ingest --chain auto: 3C147's transit starts the calibrator chain"
else
    bad "ingest --chain auto on 3C147's transit: $out"
fi
out=$("$CONTIMG" ingest "$T/tobs" --chain auto)
if [[ $out == *"(chain target)"* ]]; then
    ok "ingest --chain auto: a field without a calibrator starts the target chain"
else
    bad "ingest --chain auto on a target: $out"
fi
mpirun -q --allow-run-as-root --oversubscribe -x CONTIMG_CHAINS_FILE -x ABSURD_QUEUE_NAME \
    -x CONTIMG_PRODUCTS_DIR -x CONTIMG_STATE_DIR -x ABSURD_RETRY_BACKOFF_BASE \
    -x ABSURD_RETRY_BACKOFF_MAX -np 2 "$CONTIMG" run --drain >"$T/auto.log" 2>&1 ||
    bad "the transit's engine run: $(tail -5 "$T/auto.log")"
same "the transit's tasks completed: convert x2, solve, apply" \
    "calibration-apply completed 1,calibration-solve completed 1,convert-uvh5-to-ms completed 2" \
    "$(task_counts "calauto-$$")"
cal=$(q "SELECT result->'outputs'->>'caltable_path' FROM absurd.tasks
          WHERE queue_name = 'calauto-$$' AND task_name = 'calibration-solve'")
run "solved with no model given, against the catalogue's 3C147: the simulator's gains, 1 % and 1 deg" \
    "$CHECK_CAL" "$cal" 7 0.01 1.0 96 0.05

echo "test_calibration: $failed failed"
[ $failed -eq 0 ]
