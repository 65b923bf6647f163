#!/usr/bin/env bash
# test_status_page.sh -- the status page of `contimg serve` in a real browser (Debian's
# headless Chromium) after a drained demo run (`contimg demo`: convert, flag-rfi, imaging
# on MPI ranks).
#
#   bash tests/test_status_page.sh /path/to/contimg OUTPUT_DIR
#
# The page, once its scripts have run, shows the run's three tasks by id, each completed,
# its image's row with the QA verdict and its quick look, which the server gives as a PNG
# from under the products directory only. The screenshot is kept as
# OUTPUT_DIR/status-page.png (and the rendered page as status-page.html).
set -u
CONTIMG=${1:?usage: test_status_page.sh CONTIMG OUTPUT_DIR}
OUT=${2:?usage: test_status_page.sh CONTIMG OUTPUT_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
# shellcheck source=tests/cli_lib.sh
. "$HERE/cli_lib.sh"
mkdir -p "$OUT"
URL=$("$CONTIMG" db url)
export ABSURD_QUEUE_NAME=pagetest-$$
run "register the queue" "$CONTIMG" queue create "$ABSURD_QUEUE_NAME"
"$CONTIMG" demo >"$T/demo.out" 2>&1 || bad "the demo: $(tail -5 "$T/demo.out")"
GROUP=$(q "SELECT params->'inputs'->>'group_id' FROM absurd.tasks
            WHERE queue_name = '$ABSURD_QUEUE_NAME' AND task_name = 'imaging'")
IDS=$(q "SELECT string_agg(task_id::text, ' ' ORDER BY seq) FROM absurd.tasks
          WHERE queue_name = '$ABSURD_QUEUE_NAME' AND status = 'completed'")
same "the demo drained: convert, flag-rfi, imaging completed" 3 "$(wc -w <<<"$IDS")"
"$CONTIMG" serve --listen 127.0.0.1:0 >"$T/serve.out" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$T/serve.out" && break; sleep 0.05; done
PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$T/serve.out")
B=http://127.0.0.1:$PORT
browser() { chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --virtual-time-budget=8000 "$@" \
    2>>"$T/chromium.err"; }
browser --dump-dom "$B/" >"$OUT/status-page.html"
"/usr/bin/python3" - "$OUT/status-page.html" "$GROUP" $IDS <<'PY' && ok "the page, rendered: the run's tasks by id, completed; its image with QA and quick look" || bad "the page, rendered: see $OUT/status-page.html"
import html.parser, sys
page, group, ids = sys.argv[1], sys.argv[2], sys.argv[3:]
class Rows(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.row, self.cell, self.imgs, self.table = [], None, None, [], []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.table.append(a.get("id"))
        elif tag == "tr":
            self.row = []
        elif tag == "td" and self.row is not None:
            self.cell = ""
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
    def handle_endtag(self, tag):
        if tag == "td" and self.row is not None and self.cell is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        elif tag == "tr" and self.row:
            self.rows.append((self.table[-1] if self.table else None, self.row))
            self.row = None
    def handle_data(self, d):
        if self.cell is not None:
            self.cell += d
p = Rows()
p.feed(open(page).read())
tasks = [r for t, r in p.rows if t == "tasks"]
for i in ids:
    row = [r for r in tasks if i in r]
    assert row and "completed" in row[0] and group in row[0], (i, row)
images = [r for t, r in p.rows if t == "images" and group in r]
assert images and "pass" in images[0], images
assert any("quicklook" in s and group.replace(":", "%3A") in s for s in p.imgs), p.imgs
print("     %d task rows, image row %s" % (len(tasks), images[0][:4]))
PY
png=$(q "SELECT replace(image_path, '.fits', '.png') FROM products.images WHERE group_id = '$GROUP'")
curl -s -o "$T/q.png" -w '%{http_code} %{content_type}' "$B/api/quicklook?path=$png" >"$T/code"
same "the quick look: a PNG from under the products directory" "200 image/png PNG" \
    "$(cat "$T/code") $(head -c 4 "$T/q.png" | tail -c 3)"
same "nothing from outside it: 404" 404 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$B/api/quicklook?path=$png/../../../../etc/passwd.png")"
same "nor what is not a quick look: 404" 404 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$B/api/quicklook?path=${png%.png}.fits")"
ln -s "$T/q.png" "$(dirname "$png")/escape-$$.png"
same "nor a link out of the products directory: 404" 404 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$B/api/quicklook?path=$(dirname "$png")/escape-$$.png")"
rm -f "$(dirname "$png")/escape-$$.png"
browser --window-size=1280,1400 --screenshot="$OUT/status-page.png" "$B/" >/dev/null
run "the screenshot kept: $OUT/status-page.png" \
    "/usr/bin/python3" -c 'import sys; d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n" and len(d) > 20000, len(d)' "$OUT/status-page.png"
echo "test_status_page: $failed failed"
[ "$failed" -eq 0 ]
