#!/usr/bin/env bash
# test_publish.sh CONTIMG -- publishing products to the archive (issue 18), on a database
# of its own:
# 1. paths: a file outside the products directory and one with ".." are refused at once
#    (exit 2, nothing staged); a staged link that leads out fails at its first attempt,
#    nothing copied.
# 2. an unwritable destination: each attempt keeps its error, the next waits its backoff
#    (10 s, then 20 s), the third leaves the file failed -- and still in staging.
# 3. two publishers at once over 200 files: each file published exactly once (one attempt
#    each, every one in the archive, the two reports adding up).
# 4. a publisher that died: its stale claim is taken over; a file already renamed into
#    the archive before the crash (gone from staging) is recorded as published.
set -u
CONTIMG=${1:?usage: test_publish.sh CONTIMG}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
# shellcheck source=tests/cli_lib.sh
. "$HERE/cli_lib.sh"
own_database pub
P=$T/products A=$T/archive
export CONTIMG_PRODUCTS_DIR=$P CONTIMG_ARCHIVE_DIR=$A
run "migrate the database of this test" "$CONTIMG" db migrate --no-default-schedules
mkdir -p "$P/images" "$P/elsewhere" "$T/outside"

# 1. Paths.
echo secret >"$T/outside/x.fits"
expect_exit 2 "not under the products directory" "a file outside the products directory" \
    "$CONTIMG" publish --stage "$T/outside/x.fits"
expect_exit 2 "without . or .. components" "a path with .." \
    "$CONTIMG" publish --stage "$P/images/../../outside/x.fits"
same "nothing staged for them" "0" "$(q "SELECT count(*) FROM products.publications")"
ln -s "$T/outside/x.fits" "$P/images/link.fits"
"$CONTIMG" publish --stage "$P/images/link.fits" >"$T/link.out" 2>&1
same "a link that leads out: failed at its first attempt, nothing copied" "failed|1|f|f" \
    "$(q "SELECT status, attempts, last_error IS NULL FROM products.publications
           WHERE src_path = '$P/images/link.fits'")|$([ -e "$A/images/link.fits" ] && echo t || echo f)"

# 2. An unwritable destination: the archive's images directory is a file.
mkdir -p "$A"
echo blocker >"$A/images"
echo data >"$P/images/2026-12-07T01:00:00-image.fits"
F=$P/images/2026-12-07T01:00:00-image.fits
"$CONTIMG" publish --stage "$F" >"$T/u1.out" 2>&1
same "first attempt: exit 1, the error kept, staged again" "staged|1|t" \
    "$(q "SELECT status, attempts, last_error LIKE '%publish%' FROM products.publications
           WHERE src_path = '$F'")"
same "the next attempt after 10 s" "t" \
    "$(q "SELECT next_attempt_at - updated_at BETWEEN interval '9 s' AND interval '11 s'
            FROM products.publications WHERE src_path = '$F'")"
"$CONTIMG" publish >"$T/u1b.out" 2>&1
same "not due yet: nothing claimed" "0 claimed: 0 published, 0 to retry, 0 failed" "$(head -1 "$T/u1b.out")"
q "UPDATE products.publications SET next_attempt_at = now() WHERE src_path = '$F'" >/dev/null
"$CONTIMG" publish >/dev/null 2>&1
same "second attempt: backoff doubled to 20 s" "staged|2|t" \
    "$(q "SELECT status, attempts, next_attempt_at - updated_at BETWEEN interval '19 s' AND interval '21 s'
            FROM products.publications WHERE src_path = '$F'")"
q "UPDATE products.publications SET next_attempt_at = now() WHERE src_path = '$F'" >/dev/null
"$CONTIMG" publish >"$T/u3.out" 2>&1
same "third attempt: failed, exit 1, the error kept, the file still staged" "1|failed|3|t|t" \
    "$?|$(q "SELECT status, attempts, last_error <> '' FROM products.publications
               WHERE src_path = '$F'")|$([ -f "$F" ] && echo t || echo f)"
rm -f "$A/images"

# 3. Two publishers at once.
for i in $(seq -w 1 200); do echo "file $i" >"$P/elsewhere/f$i.fits"; done
"$CONTIMG" publish --stage "$P"/elsewhere/f*.fits --limit 1 >/dev/null 2>&1 # stage (and move one)
"$CONTIMG" publish --limit 1000 --json >"$T/pa.json" 2>&1 &
pa=$!
"$CONTIMG" publish --limit 1000 --json >"$T/pb.json" 2>&1 &
pb=$!
wait $pa $pb
same "each of 200 files published once, at its first attempt" "200|1|1" \
    "$(q "SELECT count(*), min(attempts), max(attempts) FROM products.publications
           WHERE src_path LIKE '$P/elsewhere/%' AND status = 'published'")"
same "all 200 in the archive, whole; the staged files kept for retention" "200|200" \
    "$(find "$A/elsewhere" -name 'f*.fits' | wc -l)|$(find "$P/elsewhere" -type f | wc -l)"
same "the archived copies are the staged files" "file 137" "$(cat "$A/elsewhere/f137.fits")"
total=$(python3 -c 'import json, sys
print(sum(len(json.load(open(f))["published"]) for f in sys.argv[1:]))' "$T/pa.json" "$T/pb.json")
same "the two publishers' reports add up (199 after the one staged)" "199" "$total"

# 4. A publisher that died mid-move.
echo late >"$P/images/late.fits"
"$CONTIMG" publish --stage "$P/images/late.fits" --limit 1 >/dev/null 2>&1 || true
q "UPDATE products.publications SET status = 'publishing', claimed_by = 'dead:1',
          claimed_at = now() - interval '1 hour', attempts = 1, published_at = NULL
    WHERE src_path = '$P/images/late.fits'" >/dev/null
rm -f "$P/images/late.fits" # copied and renamed, then crashed; retention took the staged one
"$CONTIMG" publish >/dev/null 2>&1
same "a stale claim taken over; the file already archived recorded as published" \
    "published|2|late" \
    "$(q "SELECT status, attempts FROM products.publications WHERE src_path = '$P/images/late.fits'")|$(cat "$A/images/late.fits")"
same "no temporary file left" "" "$(find "$A" "$P" -name '*.tmp-*')"
[ "$failed" -eq 0 ] || exit 1
