#!/usr/bin/env bash
# bench/http-client: opskit-http vs Python requests (seed style) vs httpx.AsyncClient,
# against one local server on loopback:
#   (a) 2,000 GETs at concurrency 64     (b) walking 100 pages of 50 items
# Usage: bench/http-client/run.sh [runs]   (default 5 runs per tool and job; prints medians)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-5}"
N=2000
CONC=64
PER_PAGE=50
HERE=bench/http-client

python3 -c 'import requests, httpx' 2>/dev/null || pip install -q requests httpx

echo "building release examples (opskit-http bench_server, bench_client)..." >&2
cargo build --release -q -p opskit-http --examples
BIN=target/release/examples

TMP="$(mktemp -d)"
"$BIN/bench_server" > "$TMP/port" &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
for _ in $(seq 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
PORT="$(head -1 "$TMP/port")"
BASE="http://127.0.0.1:$PORT"
curl -fsS "$BASE/items/1" > /dev/null

run() { # name job command...
    local name="$1" job="$2"; shift 2
    "$@" >> "$TMP/$name.$job"
}

# warm-up (not measured)
"$BIN/bench_client" "$BASE/" gets 200 "$CONC" > /dev/null
python3 "$HERE/bench_httpx.py" "$BASE" gets 200 "$CONC" > /dev/null

for r in $(seq "$RUNS"); do
    echo "run $r/$RUNS" >&2
    run opskit gets "$BIN/bench_client" "$BASE/" gets "$N" "$CONC"
    run httpx gets python3 "$HERE/bench_httpx.py" "$BASE" gets "$N" "$CONC"
    run requests gets python3 "$HERE/bench_requests.py" "$BASE" gets "$N"
    run requests-threads gets python3 "$HERE/bench_requests.py" "$BASE" gets-threads "$N" "$CONC"
    run opskit pages "$BIN/bench_client" "$BASE/" pages "$PER_PAGE"
    run httpx pages python3 "$HERE/bench_httpx.py" "$BASE" pages "$PER_PAGE"
    run requests pages python3 "$HERE/bench_requests.py" "$BASE" pages "$PER_PAGE"
done

python3 - "$TMP" "$RUNS" <<'PY'
import statistics, sys, os
tmp, runs = sys.argv[1], sys.argv[2]
def med(name, job):
    with open(os.path.join(tmp, f"{name}.{job}")) as f:
        return statistics.median(float(x) for x in f if x.strip())
rows = [
    ("(a) 2,000 GETs, concurrency 64", "gets",
     [("opskit-http", "opskit"), ("httpx.AsyncClient", "httpx"),
      ("requests.Session (seed style, sequential)", "requests"),
      ("requests.Session + 64 threads", "requests-threads")]),
    ("(b) 100 pages x 50 items", "pages",
     [("opskit-http", "opskit"), ("httpx.AsyncClient", "httpx"),
      ("requests.Session (seed style)", "requests")]),
]
print(f"median of {runs} runs; ratio = tool time / opskit-http time (higher = opskit faster)")
print(f"{'job':34} {'tool':44} {'median s':>9} {'req/s':>9} {'ratio':>7}")
for title, job, tools in rows:
    base = med("opskit", job)
    for label, key in tools:
        m = med(key, job)
        rate = f"{2000 / m:9.0f}" if job == "gets" else f"{'-':>9}"
        print(f"{title:34} {label:44} {m:9.3f} {rate} {m / base:6.1f}x")
PY
