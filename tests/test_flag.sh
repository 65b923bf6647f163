#!/usr/bin/env bash
# test_flag.sh -- `contimg flag` on simulated observations with interference of known mask
# (simulate.h's ct_sim_rfi: transmitters in ~2 % of channels at 0.5-2 x RFI_JY on every
# baseline, one broadband burst integration at 0.5 x RFI_JY of one phase across the band,
# spikes in 1e-3 of samples at 0.2-1 x RFI_JY, one dead antenna), as the flagging stage
# meets them.
#
#   bash tests/test_flag.sh /path/to/contimg /path/to/check_flags
#
# 1. Against the mask (tests/check_flags.c): at least 95 % of the interference above 5
#    sigma flagged (the dead antenna's samples with it), each kind on its own too, at most
#    3 % of the clean samples;
#    the data and weights the input's, bit for bit, and the input's flags kept; the dead
#    antenna named in the QA; on 2 and 3 ranks the same bytes as on one.
# 2. An observation without interference: at most 1 % flagged.
# 3. The image: flagged, the sources where and as bright as they are (check_image.py: 0.1
#    px, 1 % at the centre, 2 % after the primary beam); unflagged, the same check fails
#    (the dead antenna's zeros weigh the fluxes down) -- so it proves something.
# 4. Bad input and the gate: usage errors exit 2, a missing file 4, a gate at 1 % fails
#    with "qa gate" (exit 2) and writes nothing.
# 5. Through the engine (flag-rfi, a stage of its own): a chain convert -> flag-rfi ->
#    imaging images the flagged file with its sources right; a chain whose flag-rfi gate
#    is at 1 % records qa_failed with the reason and stops there.
set -u
CONTIMG=${1:?usage: test_flag.sh CONTIMG CHECK_FLAGS}
CHECK=${2:?usage: test_flag.sh CONTIMG CHECK_FLAGS}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export PMIX_MCA_psec=^munge
# shellcheck source=tests/cli_lib.sh
. "$HERE/cli_lib.sh"
MPIRUN=(mpirun -q --allow-run-as-root --oversubscribe)

ANT=24 CH=8 NT=12 SEED=7 RFI=10 NOISE=1
cat >"$T/sky.txt" <<'SRC'
0 0 10.0
0.6 0.3 2.0
-0.4 -0.5 1.5 nof
SRC
SIM=(--dec 55 --start 2026-11-22T10:00:00 --antennas $ANT --channels-per-subband $CH --times $NT
    --noise-jy $NOISE --sources "$T/sky.txt" --relative)
run "simulate with interference" "$CONTIMG" simulate --out "$T/rfi" "${SIM[@]}" \
    --rfi-seed $SEED --rfi-jy $RFI >/dev/null
run "simulate without" "$CONTIMG" simulate --out "$T/clean" "${SIM[@]}" >/dev/null
run "convert both (the dead antenna's zero autocorrelations pass the conversion's gate: they are flagging's to flag)" bash -c '"$1" convert "$2/rfi" --out "$2/rfi.hdf5" >/dev/null &&
    "$1" convert "$2/clean" --out "$2/clean.hdf5" >/dev/null' _ "$CONTIMG" "$T"

# ---- 1. against the mask ----------------------------------------------------------------
"$CONTIMG" flag "$T/rfi.hdf5" --out "$T/f1.hdf5" --json >"$T/f1.json" 2>"$T/f1.err" ||
    bad "flag: $(cat "$T/f1.err")"
run "written atomically: FLAGGED, no temporary left" \
    bash -c '[ -f "$1/f1.hdf5" ] && ! ls "$1"/*.tmp* >/dev/null 2>&1' _ "$T"
run "recall >= 95 % of the interference above 5 sigma, false positives <= 3 %, data untouched" \
    bash -c 'set -o pipefail; "$1" "$2/f1.hdf5" "$2/rfi.hdf5" "$2/rfi" '"$ANT $CH $NT $SEED $RFI $NOISE"' 0.95 0.03 \
        | tee "$2/check1.json"' _ "$CHECK" "$T"
run "the QA: one dead antenna (the simulator's), fractions per subband and time" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
dead = [a["antenna"] for a in r["antennas"] if a["state"] == "dead"]
assert len(dead) == 1, r["antennas"]
assert len(r["subband_fraction"]) == 16 and len(r["time_fraction"]) == int(sys.argv[2]), r
assert r["gate_passed"] and 0.05 < r["fraction"] < 0.3, r["fraction"]
print("     dead antenna %d; %.2f %% flagged; the burst integration %.0f %% flagged" %
      (dead[0], 100 * r["fraction"], 100 * max(r["time_fraction"])))
' "$T/f1.json" $NT
# The burst is delay-free (one phase across the band): each baseline's background along
# frequency takes it in; only the array-wide search finds it. Every kind on its own:
run "each kind found: the dead antenna and the transmitters >= 99 %, the burst >= 95 % (in $(
    "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["burst_cells"])' "$T/f1.json"
) burst cells), spikes >= 80 %" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["dead"][1] >= 0.99 and r["transmitter"][1] >= 0.99, r
assert r["burst"][0] > 0 and r["burst"][1] >= 0.95, r
assert r["spike"][1] >= 0.8, r
' "$T/check1.json"
for n in 2 3; do
    "${MPIRUN[@]}" -np $n "$CONTIMG" flag "$T/rfi.hdf5" --out "$T/f$n.hdf5" >/dev/null \
        2>"$T/f$n.err" || bad "flag on $n ranks: $(cat "$T/f$n.err")"
    run "on $n ranks (baselines dealt over them): the same bytes as on one" \
        cmp "$T/f1.hdf5" "$T/f$n.hdf5"
done

# ---- 2. no interference --------------------------------------------------------------------
"$CONTIMG" flag "$T/clean.hdf5" --out "$T/fc.hdf5" --json >"$T/fc.json" 2>"$T/fc.err" ||
    bad "flag the clean observation: $(cat "$T/fc.err")"
run "no interference: at most 1 % flagged, no antenna judged bad" "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["fraction"] <= 0.01, r["fraction"]
assert r["burst_cells"] == 0, r["burst_cells"]
assert all(a["state"] == "ok" for a in r["antennas"]), r["antennas"]
print("     %.3f %% flagged" % (100 * r["fraction"]))
' "$T/fc.json"

# ---- 3. the image --------------------------------------------------------------------------
IMG=(--size 512 --cell 20 --niter 2000 --threshold 0.02)
"$CONTIMG" image "$T/f1.hdf5" --out "$T/if" "${IMG[@]}" >/dev/null 2>"$T/if.err" ||
    bad "image the flagged observation: $(cat "$T/if.err")"
run "flagged: the sources where and as bright as they are" \
    "$PY" "$HERE/check_image.py" sources "$T/if" "$T/sky.txt"
"$CONTIMG" image "$T/rfi.hdf5" --out "$T/iu" "${IMG[@]}" >/dev/null 2>"$T/iu.err" ||
    bad "image the unflagged observation: $(cat "$T/iu.err")"
if "$PY" "$HERE/check_image.py" sources "$T/iu" "$T/sky.txt" >"$T/iu.out" 2>&1; then
    bad "unflagged, the same check passes: it proves nothing"
else
    ok "unflagged, the same check fails ($(grep -c FAIL "$T/iu.out") of its checks)"
fi

# ---- 4. bad input and the gate -------------------------------------------------------------
expect_exit 2 "out" "flag without --out" "$CONTIMG" flag "$T/rfi.hdf5"
expect_exit 2 "number" "flag --threshold abc" "$CONTIMG" flag "$T/rfi.hdf5" --out "$T/x.hdf5" \
    --threshold abc
expect_exit 2 "eta" "flag --eta 1" "$CONTIMG" flag "$T/rfi.hdf5" --out "$T/x.hdf5" --eta 1
expect_exit 4 "" "flag a missing file" "$CONTIMG" flag "$T/none.hdf5" --out "$T/x.hdf5"
expect_exit 2 "qa gate" "a gate at 1 % fails" "$CONTIMG" flag "$T/rfi.hdf5" --out "$T/x.hdf5" \
    --max-fraction 0.01
run "the failed gate wrote nothing" bash -c '! ls "$1"/x.hdf5* >/dev/null 2>&1' _ "$T"

# ---- 5. through the engine ------------------------------------------------------------------
# Two observations with interference on two chains: "flagged" (convert, flag-rfi, imaging)
# images the flagged file; "strict" (flag-rfi's gate at 1 %) stops after the gate fails.
URL=$("$CONTIMG" db url)
run "simulate a second observation with interference" "$CONTIMG" simulate --out "$T/rfi2" \
    "${SIM[@]/2026-11-22T10:00:00/2026-11-22T11:00:00}" --rfi-seed $SEED --rfi-jy $RFI >/dev/null
cat >"$T/chains.json" <<'CHAINS'
{"flagged": ["convert-uvh5-to-ms", "flag-rfi",
             {"task": "imaging", "config": {"size": 512, "cell_arcsec": 20, "niter": 2000,
                                            "threshold_jy": 0.02}}],
 "strict": ["convert-uvh5-to-ms", {"task": "flag-rfi", "config": {"max_fraction": 0.01}},
            "imaging"]}
CHAINS
export CONTIMG_CHAINS_FILE=$T/chains.json ABSURD_QUEUE_NAME=flagtest-$$
export CONTIMG_PRODUCTS_DIR=$T/products
run "register the queue" "$CONTIMG" queue create "flagtest-$$"
run "ingest the first on the flagged chain" "$CONTIMG" ingest "$T/rfi" --chain flagged
run "ingest the second on the strict chain" "$CONTIMG" ingest "$T/rfi2" --chain strict
drain "$T/engine.log" CONTIMG_CHAINS_FILE ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR
same "every task completed: 2 converts, 2 flag-rfi, 1 imaging (the strict chain stopped)" \
    "convert-uvh5-to-ms completed 2,flag-rfi completed 2,imaging completed 1" \
    "$(task_counts "flagtest-$$")"
same "flag-rfi's results: both name the dead antenna; one success, one qa_failed by the gate" \
    "qa_failed qa gate 1,success  1" \
    "$(q "SELECT string_agg(result->>'status' || ' ' || coalesce(substr(result->'metrics'->>'reason', 1, 7), '')
                           || ' ' || jsonb_array_length(result->'metrics'->'bad_antennas'), ','
                           ORDER BY result->>'status')
            FROM absurd.tasks WHERE queue_name = 'flagtest-$$' AND task_name = 'flag-rfi'")"
img=$(q "SELECT params->'outputs'->>'image_prefix' FROM absurd.tasks
          WHERE queue_name = 'flagtest-$$' AND task_name = 'imaging'")
src=$(q "SELECT params->'inputs'->>'vis_path' FROM absurd.tasks
          WHERE queue_name = 'flagtest-$$' AND task_name = 'imaging'")
run "the image was made from the flagged file" bash -c '[[ "$1" == *.flagged.hdf5 ]]' _ "$src"
run "through the engine: the sources where and as bright as they are" \
    "$PY" "$HERE/check_image.py" sources "$img" "$T/sky.txt"

echo "test_flag: $failed failed"
[ $failed -eq 0 ]
