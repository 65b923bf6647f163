#!/usr/bin/env bash
# test_standard_chain.sh CONTIMG -- the "standard" chain end to end on a small night under
# mpirun (issue 18): convert, flag-rfi, calibration-solve, calibration-apply, imaging,
# validation, crossmatch, photometry, publish, on a database of its own.
#
# The sky is fixed (ICRS): twelve point sources of 1.5-6 Jy along the strip three drift
# scans of DSA-110 cover (309 s apart: 1.29 deg of RA each), with per-antenna gains the
# calibration must take out. Its positions are the reference catalogue (CONTIMG_REFCAT)
# and the calibration model. After `contimg ingest` (CONTIMG_CHAIN=standard) and
# `mpirun -np 3 contimg run --drain`: every task completed, and every product row there
# once -- visibilities, caltables, images, catalogues, validations (passed), the sources
# crossmatched, photometry points, the published files -- with no temporary file left.
set -u
CONTIMG=${1:?usage: test_standard_chain.sh CONTIMG}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
# shellcheck source=tests/cli_lib.sh
. "$HERE/cli_lib.sh"
own_database std
export ABSURD_QUEUE_NAME=std CONTIMG_PRODUCTS_DIR=$T/products
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 CONTIMG_CHAIN=standard
munge -n >/dev/null 2>&1 || export PMIX_MCA_psec=${PMIX_MCA_psec:-^munge}
run "migrate the database of this test" "$CONTIMG" db migrate --no-default-schedules
run "create the queue" "$CONTIMG" queue create std

SIM=(--dec 55 --antennas 48 --times 4 --channels-per-subband 1 --noise-jy 0.05 --gains-seed 5)
STARTS=(2026-11-22T10:00:00 2026-11-22T10:05:09 2026-11-22T10:10:18)
# Where the first scan points: a probe of its phase centre (its default source there).
run "simulate the probe" "$CONTIMG" simulate --out "$T/probe" --start "${STARTS[0]}" "${SIM[@]}" \
    >/dev/null
run "convert the probe" "$CONTIMG" convert "$T/probe" --out "$T/probe.hdf5" >/dev/null
"$CONTIMG" image "$T/probe.hdf5" --out "$T/probe" --size 128 --cell 20 --niter 0 --json \
    >"$T/probe.json" 2>"$T/probe.err" || bad "probe image: $(cat "$T/probe.err")"
read -r RA0 DEC0 < <(python3 -c 'import json, sys
r = json.load(open(sys.argv[1]))
print(r["centre_ra_deg"], r["centre_dec_deg"])' "$T/probe.json")
# The sky: twelve sources from 0.6 deg before the first centre to 0.6 deg past the last.
python3 - "$RA0" "$DEC0" "$T" <<'PY'
import json, math, sys
ra0, dec0, t = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
src = []
for k in range(12):
    dra = -0.55 + k * (2 * 1.29 + 1.1) / 11          # degrees of RA on the sky
    ddec = 0.35 * math.sin(1.7 * k)
    ra = (ra0 + dra / math.cos(math.radians(dec0))) % 360
    src.append((f"STD{k:02d}", ra, dec0 + ddec, 1.5 + 4.5 * ((k * 7) % 12) / 11))
open(f"{t}/sky.txt", "w").write("".join(f"{r:.7f} {d:.7f} {s:.4f}\n" for _, r, d, s in src))
open(f"{t}/refcat.csv", "w").write("name,ra_deg,dec_deg,flux_jy\n" +
                                   "".join(f"{n},{r:.7f},{d:.7f},{s:.4f}\n" for n, r, d, s in src))
chains = {"standard": [
    "convert-uvh5-to-ms", "flag-rfi",
    {"task": "calibration-solve", "config": {"model": [[r, d, s] for _, r, d, s in src]}},
    "calibration-apply",
    {"task": "imaging", "config": {"size": 256, "cell_arcsec": 20, "niter": 500,
                                   "threshold_jy": 0.1}},
    {"task": "validation", "config": {"thresholds": {"min_matches": 2}}},
    "crossmatch",
    {"task": "photometry", "config": {"min_refs": 2}},
    "publish"]}
json.dump(chains, open(f"{t}/chains.json", "w"))
PY
export CONTIMG_REFCAT=$T/refcat.csv CONTIMG_CHAINS_FILE=$T/chains.json CONTIMG_ARCHIVE_DIR=$T/archive
for s in "${STARTS[@]}"; do
    run "simulate $s" "$CONTIMG" simulate --out "$T/night" --start "$s" "${SIM[@]}" \
        --sources "$T/sky.txt" >/dev/null
done
run "ingest the night (standard chain)" "$CONTIMG" ingest "$T/night"
drain "$T/drain.log" CONTIMG_DATABASE_URL ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR CONTIMG_REFCAT \
    CONTIMG_CHAINS_FILE CONTIMG_ARCHIVE_DIR
same "every step of the chain completed for each of the three observations" \
    "calibration-apply completed 3,calibration-solve completed 3,convert-uvh5-to-ms completed 3,crossmatch completed 3,flag-rfi completed 3,imaging completed 3,photometry completed 3,publish completed 3,validation completed 3" \
    "$(task_counts std)"
q "SELECT task_name, status, error FROM absurd.tasks WHERE status <> 'completed'" | sed 's/^/    /'
same "one row per product: visibilities, caltables, images, catalogues, validations, photometry" \
    "3|3|3|3|3|3" \
    "$(q "SELECT (SELECT count(*) FROM products.visibilities), (SELECT count(*) FROM products.caltables),
                 (SELECT count(*) FROM products.images), (SELECT count(*) FROM products.catalogs),
                 (SELECT count(*) FROM products.validations),
                 (SELECT count(*) FROM products.photometry_images)")"
same "each written once" "1|1|1|1|1|1" \
    "$(q "SELECT (SELECT max(n_writes) FROM products.visibilities),
                 (SELECT max(n_writes) FROM products.caltables),
                 (SELECT max(n_writes) FROM products.images), (SELECT max(n_writes) FROM products.catalogs),
                 (SELECT max(n_writes) FROM products.validations),
                 (SELECT max(n_writes) FROM products.photometry_images)")"
q "SELECT group_id, status, n_matches, round(offset_arcsec::numeric, 2),
          round(flux_ratio::numeric, 3), completeness, reason
     FROM products.validations ORDER BY group_id" | sed 's/^/    /'
same "every image validated: passed" "passed 3" \
    "$(q "SELECT string_agg(status || ' ' || n, ',') FROM (SELECT status, count(*) n
            FROM products.validations GROUP BY 1) x")"
# (Sources without a catalogue entry are the small array's CLEAN artefacts: 48 antennas,
# four integrations.) The crossmatch stage's matches are validation's, image by image.
same "crossmatch: as many sources matched per image as validation counted, all in the field" \
    "t" "$(q "SELECT bool_and(x.m = v.n_matches AND v.completeness = 1 AND v.n_matches >= 3)
                FROM products.validations v
                JOIN (SELECT image_path, count(ref_id) m FROM products.sources GROUP BY 1) x
                USING (image_path)")"
same "photometry: each catalogue source in an image measured once there" "t" \
    "$(q "SELECT count(*) > 0 AND count(*) = count(DISTINCT (ref_id, image_path)) FROM products.photometry")"
same "published: each image, its primary-beam twin and its catalogue, once, in the archive" \
    "9|9|1|9|9" \
    "$(q "SELECT count(*), count(*) FILTER (WHERE status = 'published'), max(attempts),
                 count(DISTINCT dest_path) FROM products.publications")|$(
        find "$T/archive" -type f \( -name '*-image.fits' -o -name '*-image-pb.fits' -o -name '*-sources.csv' \) | wc -l)"
same "no temporary file left" "" "$(find "$T/products" "$T/archive" -name '*.tmp-*')"
[ "$failed" -eq 0 ] || exit 1
