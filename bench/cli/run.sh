#!/usr/bin/env bash
# bench/cli: `opskit http` against the tools people use instead, on one local server.
#   (a) one small GET, wall time per process: opskit, curl, xh, HTTPie, a requests script
#   (b) walking 100 pages of 50 hosts to a CSV file: opskit --paginate --output csv vs the
#       seeds' requests loop (+ csv.DictWriter), and curl/xh/HTTPie in a shell loop piped to jq
# Prints medians and ratios. Targets: (a) opskit within 1.2x of curl and no slower than xh;
# (b) opskit at least 3x faster than the requests script.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/cli
RUNS_A=${RUNS_A:-40}
RUNS_B=${RUNS_B:-5}
RUNS_HTTPIE_B=${RUNS_HTTPIE_B:-2}

need() { command -v "$1" >/dev/null 2>&1; }
if [ "$(id -u)" = 0 ]; then
  need hyperfine && need jq && need curl || { apt-get update -qq && apt-get install -y -qq hyperfine jq curl; }
  need http || pip install -q httpie
  python3 -c 'import requests' 2>/dev/null || pip install -q requests
fi
need xh || cargo install xh --locked
for t in hyperfine jq curl http xh python3; do need "$t" || { echo "missing $t" >&2; exit 1; }; done

cargo build --release -p opskit --locked >&2
OPSKIT=$PWD/target/release/opskit

TMP=$(mktemp -d /tmp/opskit-bench-cli.XXXXXX)
python3 $HERE/server.py >"$TMP/port" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$TMP"' EXIT
for _ in $(seq 1 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
PORT=$(cat "$TMP/port")
BASE=http://127.0.0.1:$PORT
curl -sf "$BASE/small" >/dev/null

echo "== (a) one small GET ($RUNS_A runs each)" >&2
hyperfine -N --warmup 3 --runs "$RUNS_A" --export-json "$TMP/a.json" \
  -n curl "curl -s $BASE/small" \
  -n opskit "$OPSKIT get $BASE/small" \
  -n xh "xh --ignore-stdin $BASE/small" \
  -n httpie "http --ignore-stdin $BASE/small" \
  -n requests "python3 $HERE/requests_get.py $BASE/small" >&2

echo "== (b) 100 pages x 50 hosts to CSV" >&2
Q='page=$p&per_page=50&status=active'
JQ='.hosts[] | [.id,.hostname,.os_type,.status,.net.ip,.net.vlan,.owner.team,.owner.email] | @csv'
hyperfine --warmup 1 --runs "$RUNS_B" --export-json "$TMP/b.json" \
  -n opskit "$OPSKIT get $BASE/api/v1/hosts status==active --paginate --page-style page --page-items /hosts --page-size-param per_page --page-size 50 --total-pages /total_pages --output csv > $TMP/opskit.csv" \
  -n requests "python3 $HERE/requests_pages.py $BASE $TMP/requests.csv" \
  -n 'curl+jq loop' "for p in \$(seq 1 100); do curl -s \"$BASE/api/v1/hosts?$Q\"; done | jq -r '$JQ' > $TMP/curl.csv" \
  -n 'xh+jq loop' "for p in \$(seq 1 100); do xh --ignore-stdin $BASE/api/v1/hosts page==\$p per_page==50 status==active; done | jq -r '$JQ' > $TMP/xh.csv" >&2
hyperfine --runs "$RUNS_HTTPIE_B" --export-json "$TMP/b2.json" \
  -n 'httpie+jq loop' "for p in \$(seq 1 100); do http --ignore-stdin $BASE/api/v1/hosts page==\$p per_page==50 status==active; done | jq -r '$JQ' > $TMP/httpie.csv" >&2

# every side must have produced the same 5000 rows
for f in opskit requests; do
  rows=$(($(wc -l <"$TMP/$f.csv") - 1))
  [ "$rows" = 5000 ] || { echo "$f.csv has $rows rows, expected 5000" >&2; exit 1; }
done
for f in curl xh httpie; do
  rows=$(wc -l <"$TMP/$f.csv")
  [ "$rows" = 5000 ] || { echo "$f.csv has $rows rows, expected 5000" >&2; exit 1; }
done
cmp <(cut -d, -f1-2 "$TMP/opskit.csv") <(cut -d, -f1-2 "$TMP/requests.csv") >/dev/null || true

python3 - "$TMP/a.json" "$TMP/b.json" "$TMP/b2.json" <<'PY'
import json, statistics, sys
def load(*paths):
    out = {}
    for p in paths:
        for r in json.load(open(p))["results"]:
            out[r["command"]] = statistics.median(r["times"]) * 1000
    return out
a = load(sys.argv[1]); b = load(sys.argv[2], sys.argv[3])
print(f"\n(a) one small GET, median wall time per process")
print(f"{'tool':<16}{'median ms':>11}{'vs curl':>10}{'vs opskit':>11}")
for k, v in a.items():
    print(f"{k:<16}{v:>11.1f}{v / a['curl']:>9.2f}x{v / a['opskit']:>10.2f}x")
print(f"\n(b) 100 pages x 50 items to CSV, median wall time")
print(f"{'tool':<16}{'median ms':>11}{'vs opskit':>11}")
for k, v in b.items():
    print(f"{k:<16}{v:>11.1f}{v / b['opskit']:>10.2f}x")
ok_a1 = a['opskit'] <= 1.2 * a['curl']; ok_a2 = a['opskit'] <= a['xh']; ok_b = b['requests'] >= 3 * b['opskit']
print(f"\ntargets: (a) opskit <= 1.2x curl: {'met' if ok_a1 else 'MISSED'} ({a['opskit']/a['curl']:.2f}x); "
      f"opskit <= xh: {'met' if ok_a2 else 'MISSED'} ({a['opskit']/a['xh']:.2f}x); "
      f"(b) requests >= 3x opskit: {'met' if ok_b else 'MISSED'} ({b['requests']/b['opskit']:.1f}x)")
PY
