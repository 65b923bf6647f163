#!/usr/bin/env bash
# test_science.sh CONTIMG TEST_SOURCES -- the stages after imaging under the engine, on a
# database of its own: a night of twelve images of one field (test_sources --night: 90
# reference sources at 20-200 sigma, ten varying with a modulation index of 0.21, each
# image off in flux scale by a 5 % rms) through validation, crossmatch and photometry,
# drained by `mpirun -np 2 contimg run --drain`.
#
# 1. validation: every image passed (offset, flux scale and completeness against the
#    catalogue), one products.catalogs row per image, its sources rows and the CSV beside
#    the image agreeing; crossmatch: every source matched to its catalogue entry.
# 2. photometry: one point per source per image; each image's flux-scale factor within
#    1 % of the error put in, and the normalized light curves of the constant sources
#    flat to their noise (the 5 % errors gone).
# 3. variability: all ten variables flagged, at most 1 % of the constant sources.
# 4. the same tasks again (new keys): every row once (upserts), the same figures.
# 5. without CONTIMG_REFCAT: validation records no_catalog, the others finish saying so.
set -u
CONTIMG=${1:?usage: test_science.sh CONTIMG TEST_SOURCES}
MAKER=${2:?usage: test_science.sh CONTIMG TEST_SOURCES}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
# shellcheck source=tests/cli_lib.sh
. "$HERE/cli_lib.sh"
own_database sci
export ABSURD_QUEUE_NAME=sci CONTIMG_PRODUCTS_DIR=$T/products
export CONTIMG_REFCAT=$T/night/refcat.csv OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run "migrate the database of this test" "$CONTIMG" db migrate --no-default-schedules
run "create the queue" "$CONTIMG" queue create sci
mkdir -p "$T/night" "$T/products/images"
run "write the night" "$MAKER" --night "$T/night" 12
# The images where imaging would put them: inside the products directory.
for f in "$T"/night/img-*.fits; do cp "$f" "$T/products/images/"; done

spawn_night() { # spawn_night TAG: validation -> crossmatch, and photometry, per image
    local i img group vid
    for i in $(seq 0 11); do
        img=$T/products/images/img-$(printf %02d "$i").fits
        group=$(printf "2026-12-07T%02d:%02d:00" $((2 + i / 3)) $(((i % 3) * 20)))
        vid=$("$CONTIMG" task spawn --name validation --idempotency-key "v-$1-$i" \
            --params "{\"inputs\": {\"group_id\": \"$group\", \"image_path\": \"$img\"}}") ||
            bad "spawn validation $i"
        "$CONTIMG" task spawn --name crossmatch --idempotency-key "x-$1-$i" --depends-on "$vid" \
            --params "{\"inputs\": {\"group_id\": \"$group\", \"image_path\": \"$img\",
                       \"catalog_path\": \"$T/products/images/$group-sources.csv\"}}" >/dev/null ||
            bad "spawn crossmatch $i"
        "$CONTIMG" task spawn --name photometry --idempotency-key "p-$1-$i" \
            --params "{\"inputs\": {\"group_id\": \"$group\", \"image_path\": \"$img\"}}" \
            >/dev/null || bad "spawn photometry $i"
    done
}
check_all() { # check_all: sections 1-3 on what the database holds now
    same "every task completed" "crossmatch completed 12,photometry completed 12,validation completed 12" \
        "$(q "SELECT string_agg(task_name || ' ' || status || ' ' || n, ',' ORDER BY task_name)
                FROM (SELECT task_name, status, count(*) n FROM absurd.tasks
                       WHERE task_name IN ('validation', 'crossmatch', 'photometry')
                         AND idempotency_key LIKE '%-$1-%' GROUP BY 1, 2) x")"
    same "validation: 12 images, all passed" "passed 12" \
        "$(q "SELECT string_agg(status || ' ' || n, ',') FROM (SELECT status, count(*) n
                FROM products.validations GROUP BY 1) x")"
    same "one catalogue row per image, 90 sources each" "12|1080" \
        "$(q "SELECT count(*), sum(n_sources) FROM products.catalogs")"
    same "source rows: 90 per image, once" "1080|1080" \
        "$(q "SELECT count(*), count(DISTINCT (image_path, idx)) FROM products.sources")"
    same "crossmatch: every source its catalogue entry, within 1 arcsec" "1080|0" \
        "$(q "SELECT count(ref_id), count(*) FILTER (WHERE ref_sep_arcsec > 1) FROM products.sources")"
    same "validation figures: offsets under 0.2 arcsec, flux scale within 7 %, complete" "t" \
        "$(q "SELECT bool_and(offset_arcsec < 0.2 AND abs(flux_ratio - 1) < 0.07
                              AND completeness = 1) FROM products.validations")"
    local csv rows
    csv=$(tail -n +2 "$T/products/images/2026-12-07T02:00:00-sources.csv" | wc -l)
    rows=$(q "SELECT n_sources FROM products.catalogs WHERE group_id = '2026-12-07T02:00:00'")
    same "the CSV beside the image holds the catalogue's rows" "$rows" "$csv"
    same "photometry: one point per source per image" "1080|90|12" \
        "$(q "SELECT count(*), count(DISTINCT ref_id), count(DISTINCT image_path) FROM products.photometry")"
    # Each image's factor against the scale error put in.
    local worst
    worst=$(while IFS=, read -r kind name value; do
        [ "$kind" = scale ] || continue
        q "SELECT abs(factor / $value - 1) FROM products.photometry_images
            WHERE image_path LIKE '%/$name.fits'"
    done <"$T/night/night.csv" | sort -g | tail -1)
    if [ -n "$worst" ] && awk -v w="$worst" 'BEGIN { exit !(w < 0.01) }'; then
        ok "every image's flux-scale factor within 1 % of the error put in (worst $worst)"
    else bad "a flux-scale factor off by $worst"; fi
    # Constant sources: normalized light curves flat to their noise.
    local flat
    flat=$(q "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v.std_jy / v.mean_jy)
                FROM products.variability v WHERE v.ref_id >= 'SRC010'")
    if [ -n "$flat" ] && awk -v f="$flat" 'BEGIN { exit !(f < 0.02) }'; then
        ok "constant sources' normalized scatter: median $flat (5 % before normalization)"
    else bad "constant sources scatter by $flat after normalization"; fi
    same "variability: the ten variables flagged" "10" \
        "$(q "SELECT count(*) FROM products.variability WHERE is_variable AND ref_id < 'SRC010'")"
    local falsev
    falsev=$(q "SELECT count(*) FILTER (WHERE is_variable), count(*) FROM products.variability
                 WHERE ref_id >= 'SRC010'")
    same "no constant source of 80 flagged (at most 1 % allowed)" "0|80" "$falsev"
}

spawn_night a
drain "$T/drain1.log" CONTIMG_DATABASE_URL ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR CONTIMG_REFCAT
check_all a
q "SELECT ref_id, n, round(v::numeric, 3), round(m::numeric, 3), round(z::numeric, 1), is_variable
     FROM products.variability ORDER BY z DESC LIMIT 12" | sed 's/^/    /'

# 4. The same work again: the same rows, rewritten in place.
spawn_night b
drain "$T/drain2.log" CONTIMG_DATABASE_URL ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR CONTIMG_REFCAT
check_all b
same "every row written twice, none added" "2|2|2" \
    "$(q "SELECT min(c.n_writes), min(v.n_writes), min(p.n_writes)
            FROM products.catalogs c JOIN products.validations v USING (image_path)
            JOIN products.photometry_images p USING (image_path)")"

# 5. No reference catalogue.
unset CONTIMG_REFCAT
img=$T/products/images/img-00.fits
"$CONTIMG" task spawn --name validation --idempotency-key v-none \
    --params "{\"inputs\": {\"group_id\": \"2026-12-07T02:00:00\", \"image_path\": \"$img\"}}" >/dev/null
"$CONTIMG" task spawn --name photometry --idempotency-key p-none \
    --params "{\"inputs\": {\"group_id\": \"2026-12-07T02:00:00\", \"image_path\": \"$img\"}}" >/dev/null
drain "$T/drain3.log" CONTIMG_DATABASE_URL ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR
same "without a catalogue: validation records no_catalog" "no_catalog" \
    "$(q "SELECT status FROM products.validations WHERE group_id = '2026-12-07T02:00:00'")"
same "without a catalogue: photometry completes, saying so, the light curves kept" \
    "completed|t|1080" \
    "$(q "SELECT status, result->>'message' LIKE 'no reference catalogue%',
                 (SELECT count(*) FROM products.photometry)
            FROM absurd.tasks WHERE idempotency_key = 'p-none'")"

# A damaged image: corrupt_input, not retried; nothing written for it.
printf 'SIMPLE  = not a FITS file' >"$T/products/images/bad.fits"
export CONTIMG_REFCAT=$T/night/refcat.csv
"$CONTIMG" task spawn --name validation --idempotency-key v-bad \
    --params "{\"inputs\": {\"group_id\": \"2026-12-07T09:00:00\", \"image_path\": \"$T/products/images/bad.fits\"}}" >/dev/null
drain "$T/drain4.log" CONTIMG_DATABASE_URL ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR CONTIMG_REFCAT
same "a damaged image: failed as corrupt_input at the first attempt, no row" \
    "failed|corrupt_input|1|0" \
    "$(q "SELECT status, error_category, attempt,
                 (SELECT count(*) FROM products.catalogs WHERE group_id = '2026-12-07T09:00:00')
            FROM absurd.tasks WHERE idempotency_key = 'v-bad'")"
same "no temporary file left" "" "$(find "$T/products" -name '*.tmp-*')"
[ "$failed" -eq 0 ] || exit 1
