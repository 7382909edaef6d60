#!/usr/bin/env bash
# bench/cli/many.sh: many URLs at once (issue 17). 1,000 GETs against the local fixture server,
# each side writing one result line per URL:
#   opskit http GET --input urls.txt --concurrency 32      (one process, connections reused)
#   the seeds' sequential requests loop (requests_many.py: one Session, one URL after another)
#   xargs -n 1 -P 32 curl -w ...                           (one curl process per URL, 32 at once)
# Two lists: (1) /small, answered at once; (2) /work?ms=10, a service that takes 10 ms.
# Prints medians and ratios. Target: opskit faster than both. Loopback only.
# RUNS=5 N=1000 WORK_MS=10 by default; BUILD=0 uses the release binary already built.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/cli
RUNS=${RUNS:-5}
N=${N:-1000}
WORK_MS=${WORK_MS:-10}

need() { command -v "$1" >/dev/null 2>&1; }
if [ "$(id -u)" = 0 ]; then
  need hyperfine && need curl || { apt-get update -qq && apt-get install -y -qq hyperfine curl; }
  python3 -c 'import requests' 2>/dev/null || pip install -q requests
fi
for t in hyperfine curl xargs python3; do need "$t" || { echo "missing $t" >&2; exit 1; }; done

[ "${BUILD:-1}" = 0 ] || cargo build --release -p opskit --locked >&2
OPSKIT=$PWD/target/release/opskit

TMP=$(mktemp -d /tmp/opskit-bench-many.XXXXXX)
python3 $HERE/server.py >"$TMP/port" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$TMP"' EXIT
for _ in $(seq 1 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
PORT=$(cat "$TMP/port")
BASE=http://127.0.0.1:$PORT
curl -sf "$BASE/small" >/dev/null

for i in $(seq 1 "$N"); do echo "$BASE/small?n=$i"; done >"$TMP/small.txt"
for i in $(seq 1 "$N"); do echo "$BASE/work?ms=$WORK_MS&n=$i"; done >"$TMP/work.txt"

W='%{url_effective} %{http_code} %{time_total} %{size_download}\n'
for list in small work; do
  echo "== $N URLs: $list ($RUNS runs each)" >&2
  hyperfine --warmup 1 --runs "$RUNS" --export-json "$TMP/$list.json" \
    -n opskit "$OPSKIT http GET --input $TMP/$list.txt --concurrency 32 > $TMP/$list.opskit" \
    -n requests "python3 $HERE/requests_many.py $TMP/$list.txt > $TMP/$list.requests" \
    -n 'xargs curl' "xargs -n 1 -P 32 curl -s -o /dev/null -w '$W' < $TMP/$list.txt > $TMP/$list.curl" >&2
  # every side answered every URL with a 200
  [ "$(grep -c '"status":200' "$TMP/$list.opskit")" = "$N" ] || { echo "opskit: not $N answers" >&2; exit 1; }
  [ "$(grep -c '"status": 200' "$TMP/$list.requests")" = "$N" ] || { echo "requests: not $N answers" >&2; exit 1; }
  [ "$(grep -c ' 200 ' "$TMP/$list.curl")" = "$N" ] || { echo "curl: not $N answers" >&2; exit 1; }
done

python3 - "$TMP/small.json" "$TMP/work.json" "$N" "$WORK_MS" <<'PY'
import json, statistics, sys
n, work = sys.argv[3], sys.argv[4]
ok = True
for path, title in ((sys.argv[1], f"{n} URLs answered at once"), (sys.argv[2], f"{n} URLs, {work} ms of work each")):
    t = {r["command"]: statistics.median(r["times"]) * 1000 for r in json.load(open(path))["results"]}
    print(f"\n{title}: median wall time")
    print(f"{'tool':<12}{'median ms':>11}{'vs opskit':>11}")
    for k, v in t.items():
        print(f"{k:<12}{v:>11.1f}{v / t['opskit']:>10.2f}x")
    met = t["opskit"] < t["requests"] and t["opskit"] < t["xargs curl"]
    ok = ok and met
    print(f"target (opskit faster than both): {'met' if met else 'MISSED'}")
sys.exit(0 if ok else 1)
PY
