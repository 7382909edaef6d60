#!/usr/bin/env bash
# bench/apis: the seeds' "Sync GitHub Issues" exercise, 1,000 items (200 of them pull requests)
# from a local GitHub stand-in to CSV:
#   - the seeds' GitHubClient style: requests.Session and a page loop (Python venv, requests
#     from PyPI), csv.DictWriter;
#   - `opskit github issues octo/hello --output csv`, cold (--no-cache), and warm (the ETag cache
#     of a previous run: every page is a free 304).
# Both must write the same 800 rows. Prints medians and ratios; target: opskit at least 5x faster.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/apis
RUNS=${RUNS:-15}

command -v hyperfine >/dev/null || { [ "$(id -u)" = 0 ] && apt-get install -y -qq hyperfine; }
# OPSKIT_BIN=path skips the build (an already built release binary)
if [ -z "${OPSKIT_BIN:-}" ]; then
  cargo build --release -p opskit --locked >&2
fi
OPSKIT=${OPSKIT_BIN:-$PWD/target/release/opskit}

TMP=$(mktemp -d /tmp/opskit-bench-apis.XXXXXX)
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$TMP"' EXIT
python3 -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install -q requests
PY=$TMP/venv/bin/python

python3 $HERE/github_fixture.py 1000 >"$TMP/port" &
SERVER=$!
for _ in $(seq 1 100); do [ -s "$TMP/port" ] && break; sleep 0.05; done
BASE=http://127.0.0.1:$(cat "$TMP/port")
export GITHUB_API_URL=$BASE GH_TOKEN=ghp_bench XDG_CACHE_HOME=$TMP/cache OPSKIT_CONFIG=$TMP/none.toml

# the warm cache: one run fills it
"$OPSKIT" github issues octo/hello --output csv >/dev/null

hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$TMP/r.json" \
  -n 'seeds GitHubClient (requests)' "$PY $HERE/seeds_github_export.py $BASE octo/hello $TMP/seeds.csv" \
  -n 'opskit (cold, --no-cache)' "sh -c '$OPSKIT github issues octo/hello --no-cache --output csv > $TMP/opskit.csv'" \
  -n 'opskit (warm ETag cache)' "sh -c '$OPSKIT github issues octo/hello --output csv > $TMP/warm.csv'" >&2

for f in seeds opskit warm; do
  rows=$(($(wc -l <"$TMP/$f.csv") - 1))
  [ "$rows" = 800 ] || { echo "$f.csv has $rows rows, expected 800" >&2; exit 1; }
done
cmp "$TMP/seeds.csv" "$TMP/opskit.csv" || { echo "the CSV files differ" >&2; exit 1; }
cmp "$TMP/opskit.csv" "$TMP/warm.csv"

python3 - "$TMP/r.json" <<'PY'
import json, statistics, sys
res = {r["command"]: statistics.median(r["times"]) * 1000 for r in json.load(open(sys.argv[1]))["results"]}
seeds = res["seeds GitHubClient (requests)"]
print(f"\n1,000 GitHub issues (10 pages) to CSV, median wall time")
print(f"{'':<32}{'median ms':>11}{'seeds / this':>14}")
for k, v in res.items():
    print(f"{k:<32}{v:>11.1f}{seeds / v:>13.1f}x")
PY
