#!/usr/bin/env bash
# test_housekeeping.sh -- retention, stale rows and the default schedules, on a database of
# its own (other tests' rows and files are not its to judge) and an engine under mpirun.
#
#   bash tests/test_housekeeping.sh /path/to/contimg
#
# 1. Products rows and their files, aged by hand (the rows' updated_at, the files' mtimes):
#    a housekeeping task drained by the engine removes exactly what retention says -- the
#    old visibility file with its flagged and calibrated copies, the old image with every
#    file imaging wrote, old logs -- and marks their rows; it keeps what is young, what an
#    unfinished task still reads, a file rewritten since its row, a file outside the
#    products directory and files no row names; it removes the rows whose files are gone.
# 2. A second run changes nothing. With the products directory gone (an unmounted disk)
#    it removes nothing and fails, permanent, saying why.
# 3. A dry run reports and removes nothing; settings come from the task's config.
# 4. `contimg db migrate` installs the default schedules (housekeeping, the nightly
#    mosaic) once, never over an operator's change.
# 5. The nightly chain's planning step spawns the complete science-tier windows.
set -u
CONTIMG=${1:?usage: test_housekeeping.sh CONTIMG}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
# shellcheck source=tests/cli_lib.sh
. "$HERE/cli_lib.sh"
own_database hk
export ABSURD_QUEUE_NAME=hk CONTIMG_PRODUCTS_DIR=$T/products
export CONTIMG_LOGS_DIR=$T/logs
run "migrate the database of this test" "$CONTIMG" db migrate
P=$T/products
spawn() { "$CONTIMG" task spawn "$@" >/dev/null; } # spawn ARGS...: quietly
mkdir -p "$P/vis" "$P/images" "$P/caltables" "$P/mosaics" "$T/logs" "$T/elsewhere"

# age FILE... DAYS: the files' modification time DAYS days ago
age() {
    local days=${*: -1} f
    for f in "${@:1:$#-1}"; do
        mkdir -p "$(dirname "$f")" && echo "$f" >"$f" && touch -d "$days days ago" "$f"
    done
}
vis_row() { # vis_row GROUP PATH DAYS
    q "INSERT INTO products.visibilities (group_id, path, qa_passed, updated_at, created_at)
       VALUES ('$1', '$2', true, now() - interval '$3 days', now() - interval '$3 days')"
}
image_row() { # image_row PREFIX GROUP DAYS
    q "INSERT INTO products.images (image_path, group_id, pb_path, qa_passed, updated_at, created_at)
       VALUES ('$1-image.fits', '$2', '$1-image-pb.fits', true, now() - interval '$3 days',
               now() - interval '$3 days')"
}
image_files() { # image_files PREFIX DAYS: every file imaging writes, and the catalogue beside
    local s
    for s in dirty.fits psf.fits model.fits residual.fits image.fits image-pb.fits image.png \
        sources.csv; do
        age "$1-$s" "$2"
    done
}
# Old (10 d > 7 d): the file, its flagged and calibrated copies go; the row is marked.
age "$P/vis/2026-01-01T00:00:00.hdf5" "$P/vis/2026-01-01T00:00:00.flagged.hdf5" \
    "$P/vis/2026-01-01T00:00:00.cal.hdf5" 10
vis_row 2026-01-01T00:00:00 "$P/vis/2026-01-01T00:00:00.hdf5" 10
# Young (3 d): kept.
age "$P/vis/2026-01-02T00:00:00.hdf5" 3
vis_row 2026-01-02T00:00:00 "$P/vis/2026-01-02T00:00:00.hdf5" 3
# Old, but an imaging task still waits to read it: kept.
age "$P/vis/2026-01-03T00:00:00.hdf5" 10
vis_row 2026-01-03T00:00:00 "$P/vis/2026-01-03T00:00:00.hdf5" 10
"$CONTIMG" queue create hk-later >/dev/null
run "an imaging task in another queue still to read one of them" spawn \
    --queue hk-later --name imaging \
    --params "{\"inputs\": {\"vis_path\": \"$P/vis/2026-01-03T00:00:00.hdf5\"}}"
# An old row whose file was rewritten since (a rerun not yet committed): kept, not marked.
age "$P/vis/2026-01-04T00:00:00.hdf5" 0
vis_row 2026-01-04T00:00:00 "$P/vis/2026-01-04T00:00:00.hdf5" 10
# An old row whose file lies outside the products directory: not ours to remove.
age "$T/elsewhere/2026-01-05T00:00:00.hdf5" 10
vis_row 2026-01-05T00:00:00 "$T/elsewhere/2026-01-05T00:00:00.hdf5" 10
# Images: 40 d (> 30) go with every file; 20 d stay; a young row whose files are gone is
# removed; so is a caltable row whose file is gone. A mosaic row with its file stays.
image_files "$P/images/2026-01-01T00:00:00" 40
image_row "$P/images/2026-01-01T00:00:00" 2026-01-01T00:00:00 40
image_files "$P/images/2026-01-02T00:00:00" 20
image_row "$P/images/2026-01-02T00:00:00" 2026-01-02T00:00:00 20
image_row "$P/images/2026-01-06T00:00:00" 2026-01-06T00:00:00 1
q "INSERT INTO products.caltables (path, group_id, kind) VALUES ('$P/caltables/gone.cal.h5',
   '2026-01-06T00:00:00', 'bandpass')"
age "$P/mosaics/m1.fits" 1
q "INSERT INTO products.mosaics (mosaic_id, path) VALUES ('m1', '$P/mosaics/m1.fits')"
# Files no row names, however old, are not retention's.
age "$P/vis/2025-12-01T00:00:00.hdf5" "$P/images/unrelated.fits" 90
# Logs: 20 d go, 1 d stays; a directory in the logs is left alone.
age "$T/logs/old.log" 20
age "$T/logs/new.log" 1
mkdir -p "$T/logs/sub" && touch -d "30 days ago" "$T/logs/sub"

"$CONTIMG" queue create hk >/dev/null
snapshot() { (cd "$T" && find products elsewhere logs -type f | sort) >"$1"; }
snapshot "$T/before"
run "spawn a housekeeping task" spawn --name housekeeping
drain "$T/drain1.log" CONTIMG_DATABASE_URL ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR CONTIMG_LOGS_DIR
same "the task completed" "housekeeping completed 1" "$(task_counts hk)"
snapshot "$T/after"
same "removed: exactly the old visibility file and its copies, the old image's 7 files and its catalogue, the old log" \
    "logs/old.log
products/images/2026-01-01T00:00:00-dirty.fits
products/images/2026-01-01T00:00:00-image-pb.fits
products/images/2026-01-01T00:00:00-image.fits
products/images/2026-01-01T00:00:00-image.png
products/images/2026-01-01T00:00:00-model.fits
products/images/2026-01-01T00:00:00-psf.fits
products/images/2026-01-01T00:00:00-residual.fits
products/images/2026-01-01T00:00:00-sources.csv
products/vis/2026-01-01T00:00:00.cal.hdf5
products/vis/2026-01-01T00:00:00.flagged.hdf5
products/vis/2026-01-01T00:00:00.hdf5" "$(comm -23 "$T/before" "$T/after")"
same "nothing appeared" "" "$(comm -13 "$T/before" "$T/after")"
same "visibility rows: the old one marked, the rest kept as they were" \
    "2026-01-01T00:00:00 retention: older than 7 d|2026-01-02T00:00:00 |2026-01-03T00:00:00 |2026-01-04T00:00:00 |2026-01-05T00:00:00 " \
    "$(q "SELECT string_agg(group_id || ' ' || coalesce(expired_reason, ''), '|' ORDER BY group_id)
            FROM products.visibilities")"
same "image rows: the old one marked, the one whose files are gone removed" \
    "2026-01-01T00:00:00 true|2026-01-02T00:00:00 false" \
    "$(q "SELECT string_agg(group_id || ' ' || (expired_at IS NOT NULL), '|' ORDER BY group_id)
            FROM products.images")"
same "the caltable row whose file is gone removed; the mosaic kept" "0|1" \
    "$(q "SELECT (SELECT count(*) FROM products.caltables) || '|' ||
                 (SELECT count(*) FROM products.mosaics)")"
result() { q "SELECT result->'metrics'->$1 FROM absurd.tasks WHERE idempotency_key = '$2'"; }
q "UPDATE absurd.tasks SET idempotency_key = 'first' WHERE queue_name = 'hk'"
same "the result says so: expired, forgotten, files and logs removed, files kept" \
    '{"images": 1, "visibilities": 1}|{"images": 1, "caltables": 1}|11|1|2' \
    "$(result "'expired'" first)|$(result "'forgotten'" first)|$(result "'files_removed'" first)|$(result "'logs_removed'" first)|$(q "SELECT jsonb_array_length(result->'metrics'->'kept') FROM absurd.tasks WHERE idempotency_key = 'first'")"
kept=$(result "'kept'" first)
python3 - "$kept" "$T" <<'PY' && ok "the kept files say why: modified since, outside the products directory" || bad "kept: $kept"
import json, sys
kept, t = json.loads(sys.argv[1]), sys.argv[2]
assert {(k['path'], k['why']) for k in kept} == {
    (t + '/products/vis/2026-01-04T00:00:00.hdf5', 'modified since its row was written'),
    (t + '/elsewhere/2026-01-05T00:00:00.hdf5', 'outside the products directory')}, kept
PY

# ---- 2. again: nothing; the disk gone: nothing, and a failure that says why ---------------
run "a second housekeeping task" spawn --name housekeeping --idempotency-key again
drain "$T/drain2.log" CONTIMG_DATABASE_URL ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR CONTIMG_LOGS_DIR
snapshot "$T/again"
same "the second run removes no file" "" "$(comm -3 "$T/after" "$T/again")"
same "and changes no row" "0|{}|{}" \
    "$(result "'files_removed'" again)|$(result "'expired'" again)|$(result "'forgotten'" again)"
for i in 1 2 3 4; do
    age "$P/vis/2026-02-0${i}T00:00:00.hdf5" 1
    vis_row "2026-02-0${i}T00:00:00" "$P/vis/2026-02-0${i}T00:00:00.hdf5" 1
done
mv "$P" "$T/unmounted"
rows_before=$(q "SELECT (SELECT count(*) FROM products.visibilities) + (SELECT count(*) FROM products.images)")
run "housekeeping with the products disk gone" spawn --name housekeeping \
    --idempotency-key unmounted
drain "$T/drain3.log" CONTIMG_DATABASE_URL ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR CONTIMG_LOGS_DIR
same "it failed, permanent, on its first attempt" "failed|permanent|1" \
    "$(q "SELECT concat_ws('|', status, error_category, attempt) FROM absurd.tasks
           WHERE idempotency_key = 'unmounted'")"
grep -q "is the products disk mounted" <<<"$(q "SELECT error FROM absurd.tasks WHERE idempotency_key = 'unmounted'")" &&
    ok "its error says why" || bad "error: $(q "SELECT error FROM absurd.tasks WHERE idempotency_key = 'unmounted'")"
same "no row removed" "$rows_before" \
    "$(q "SELECT (SELECT count(*) FROM products.visibilities) + (SELECT count(*) FROM products.images)")"
mv "$T/unmounted" "$P"

# ---- 3. a dry run, and settings from the task ---------------------------------------------
age "$P/images/2026-01-02T00:00:00-image.fits" 20
run "a dry run at 10 days for images" spawn --name housekeeping \
    --idempotency-key dry --params '{"config": {"image_days": 10, "dry_run": true}}'
drain "$T/drain4.log" CONTIMG_DATABASE_URL ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR CONTIMG_LOGS_DIR
same "it would expire the 20-day image, and removes nothing" "1|t|f" \
    "$(q "SELECT concat_ws('|', result->'metrics'->'expired'->>'images',
                          (SELECT bool_and(expired_at IS NULL) FROM products.images
                            WHERE group_id = '2026-01-02T00:00:00'),
                          result->>'message' NOT LIKE 'dry run:%')
            FROM absurd.tasks WHERE idempotency_key = 'dry'")"
[ -f "$P/images/2026-01-02T00:00:00-image.fits" ] && ok "its files are still there" ||
    bad "a dry run removed a file"
expect_exit 2 "config.vis_dayz is not a setting" "a setting it does not know: refused at spawn" \
    "$CONTIMG" task spawn --name housekeeping --params '{"config": {"vis_dayz": 3}}'

# ---- 4. the default schedules --------------------------------------------------------------
same "db migrate installed the defaults for the queue" \
    "housekeeping 30 3 * * * hk housekeeping|nightly-mosaic 0 15 * * * hk mosaic-plan" \
    "$(q "SELECT string_agg(concat_ws(' ', schedule_name, cron, queue_name, task_name), '|'
                           ORDER BY schedule_name) FROM absurd.schedules")"
run "an operator moves housekeeping" "$CONTIMG" schedule add housekeeping --cron '0 4 * * *' \
    --task housekeeping --queue hk
run "migrate again" "$CONTIMG" db migrate
same "the operator's change stands" "0 4 * * *" \
    "$(q "SELECT cron FROM absurd.schedules WHERE schedule_name = 'housekeeping'")"

# ---- 5. the nightly chain: its planning step spawns the complete science windows ----------
# 100 images that passed QA (the files need not exist: the mosaic itself is test_engine's),
# alone in the table, so that they make the planner's first window.
q "DELETE FROM products.images"
q "INSERT INTO products.images (image_path, group_id, qa_passed)
   SELECT '$T/night/' || g || '-image.fits', g, true
     FROM (SELECT to_char(timestamp '2026-03-01' + i * interval '5 min',
                          'YYYY-MM-DD\"T\"HH24:MI:SS') g FROM generate_series(0, 99) i) x"
run "the nightly schedule's task, as it fires" spawn --name mosaic-plan --idempotency-key night \
    --params "$(q "SELECT params FROM absurd.schedules WHERE schedule_name = 'nightly-mosaic'")"
drain "$T/drain5.log" CONTIMG_DATABASE_URL ABSURD_QUEUE_NAME CONTIMG_PRODUCTS_DIR CONTIMG_LOGS_DIR
same "it completed and spawned one science mosaic of the 100 images" \
    "completed|science_2026-03-01T00:00:00_2026-03-01T08:15:00|100" \
    "$(q "SELECT concat_ws('|', p.status, m.params->'inputs'->>'mosaic_id',
                          jsonb_array_length(m.params->'inputs'->'images'))
            FROM absurd.tasks p JOIN absurd.tasks m ON m.task_name = 'create-mosaic'
           WHERE p.idempotency_key = 'night'")"

[ "$failed" -eq 0 ] || { echo "$failed check(s) failed" >&2; exit 1; }
echo "all housekeeping checks passed"
