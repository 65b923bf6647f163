# bench_lib.sh -- what the bench scripts share (sourced): wall-clock timing, awk
# arithmetic, and JSON fields without jq.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
# jget FILE KEY[.KEY...]: a field of a JSON file ("null" when absent).
jget() {
    python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("null" if v is None else v)' "$1" "$2"
}
