#!/usr/bin/env bash
# opskit serve vs FastAPI + uvicorn (written the way the seeds write it) vs a bare axum hello-world,
# all on this machine, all driven by wrk over loopback with 64 connections.
#   GET /api/v1/servers/{id} with a bearer token, and GET /api/v1/servers?per_page=50.
# With PG=1 (the default when PostgreSQL is installed), the same on a throwaway PostgreSQL: two
# opskit serve replicas with the read cache on (kept coherent by LISTEN/NOTIFY), loaded at once by
# two wrk (half the threads and connections each, req/s added up), against FastAPI on the same
# PostgreSQL (psycopg, a connection per request as the seeds do).
# Prints medians of $RUNS runs (requests/s and p99 latency) and the ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-8s}
RUNS=${RUNS:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
N_SERVERS=${N_SERVERS:-1000}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1 || true)
PG=${PG:-$([ -n "$PGBIN" ] && echo 1 || echo 0)}

command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
python3 -c 'import fastapi, uvicorn, jwt' 2>/dev/null || pip install --quiet fastapi uvicorn pyjwt
[ "$PG" = 1 ] && { python3 -c 'import psycopg' 2>/dev/null || pip install --quiet "psycopg[binary]"; }

# BUILD=0 runs the binaries already in target/release (say which commit they are in the record)
if [ "${BUILD:-1}" = 1 ]; then
  cargo build --release --quiet -p opskit
  [ "${HELLO:-1}" = 1 ] && cargo build --release --quiet -p opskit-server --example hello
fi

TMP=$(mktemp -d /tmp/opskit-bench-server.XXXXXX)
PIDS=()
PGDIR=""
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true
  if [ -n "$PGDIR" ]; then runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$PGDIR"; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_up() { for _ in $(seq 1 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }

P_OPS=$(free_port); P_FA=$(free_port); P_HELLO=$(free_port)

# opskit serve: rate limiting stays on (its cost is part of the figure), with a quota the load cannot exhaust
OPSKIT_ADMIN_PASSWORD=bench-password-1 target/release/opskit serve --bind "127.0.0.1:$P_OPS" \
  --database "sqlite://$TMP/opskit.db" --rate-limit 2000000000 --log-format json 2>"$TMP/opskit.log" &
PIDS+=($!)
# HELLO=0 leaves the hello-world ceiling out
if [ "${HELLO:-1}" = 1 ]; then
  target/release/examples/hello "127.0.0.1:$P_HELLO" &
  PIDS+=($!)
fi
wait_up "http://127.0.0.1:$P_OPS/health"
[ "${HELLO:-1}" = 1 ] && wait_up "http://127.0.0.1:$P_HELLO/"

# seed the inventory through the API, then copy the same rows into the FastAPI database
python3 bench/server/seed.py "$P_OPS" "$N_SERVERS" "$TMP/" sqlite "$TMP/fastapi.db"
TOKEN=$(cat "$TMP/token"); ID=$(cat "$TMP/id")
FA_TOKEN=$(python3 -c 'import jwt,time; print(jwt.encode({"sub":"admin","exp":int(time.time())+3600},"secret",algorithm="HS256"))')

BENCH_DB="$TMP/fastapi.db" python3 -m uvicorn --app-dir bench/server fastapi_app:app \
  --host 127.0.0.1 --port "$P_FA" --log-level warning &
PIDS+=($!)
wait_up "http://127.0.0.1:$P_FA/health"

# sanity: both APIs answer the same row
curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$P_OPS/api/v1/servers/$ID" | grep -q "$ID"
curl -fsS -H "Authorization: Bearer $FA_TOKEN" "http://127.0.0.1:$P_FA/api/v1/servers/$ID" | grep -q "$ID"

if [ "$PG" = 1 ]; then
  # a throwaway PostgreSQL (RECIPES.md): two opskit replicas on database opskit, FastAPI on fastapi
  P_PG=$(free_port); P_R1=$(free_port); P_R2=$(free_port); P_FAPG=$(free_port)
  PGDIR=$(mktemp -d /tmp/opskit-bench-pg.XXXXXX); chown postgres "$PGDIR"
  runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w start \
    -o "-k $PGDIR -p $P_PG -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null
  python3 -c 'import psycopg,sys
with psycopg.connect(sys.argv[1], autocommit=True) as c:
    c.execute("CREATE DATABASE opskit"); c.execute("CREATE DATABASE fastapi")' "postgresql://postgres@127.0.0.1:$P_PG/postgres"
  for port in "$P_R1" "$P_R2"; do
    OPSKIT_ADMIN_PASSWORD=bench-password-1 target/release/opskit serve --bind "127.0.0.1:$port" \
      --database "postgres://postgres@127.0.0.1:$P_PG/opskit" --rate-limit 2000000000 --log-format json \
      2>"$TMP/opskit-pg-$port.log" &
    PIDS+=($!)
    wait_up "http://127.0.0.1:$port/health"
  done
  # seed through replica 1 (the cache on both stays coherent), copy the rows for FastAPI
  python3 bench/server/seed.py "$P_R1" "$N_SERVERS" "$TMP/pg_" postgres "postgresql://postgres@127.0.0.1:$P_PG/fastapi"
  PG_TOKEN=$(cat "$TMP/pg_token"); PG_ID=$(cat "$TMP/pg_id")
  BENCH_PG_DSN="postgresql://postgres@127.0.0.1:$P_PG/fastapi" python3 -m uvicorn --app-dir bench/server \
    fastapi_pg_app:app --host 127.0.0.1 --port "$P_FAPG" --log-level warning &
  PIDS+=($!)
  wait_up "http://127.0.0.1:$P_FAPG/health"
  # sanity: both replicas (one token: the signing key is in the database) and FastAPI answer the row
  for port in "$P_R1" "$P_R2"; do
    curl -fsS -H "Authorization: Bearer $PG_TOKEN" "http://127.0.0.1:$port/api/v1/servers/$PG_ID" | grep -q "$PG_ID"
  done
  curl -fsS -H "Authorization: Bearer $FA_TOKEN" "http://127.0.0.1:$P_FAPG/api/v1/servers/$PG_ID" | grep -q "$PG_ID"
fi

# one wrk run -> "rps p99_ms"
run_wrk() {
  local url=$1 token=$2 threads=${3:-$THREADS} conns=${4:-$CONNS} out
  out=$(wrk -t"$threads" -c"$conns" -d"$DURATION" --latency ${token:+-H "Authorization: Bearer $token"} "$url")
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx responses from $url" >&2; echo "$out" >&2; exit 1; fi
  echo "$out" | awk '
    /Requests\/sec/ {rps=$2}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); p=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v); p=v} else if (v ~ /s$/) {sub(/s/,"",v); p=v*1000}}
    END {printf "%s %.3f\n", rps, p}'
}
# two wrk at once, one per replica, half the threads and connections each -> "rps_sum p99_max"
run_wrk_pair() {
  local half_t=$(( THREADS / 2 > 0 ? THREADS / 2 : 1 )) half_c=$(( CONNS / 2 ))
  run_wrk "$1" "$3" "$half_t" "$half_c" >"$TMP/wrk1" & local p1=$!
  run_wrk "$2" "$3" "$half_t" "$half_c" >"$TMP/wrk2" & local p2=$!
  wait "$p1"; wait "$p2"
  cat "$TMP/wrk1" "$TMP/wrk2" | awk 'NF == 2 {r += $1; n++; if ($2 > p) p = $2} END {if (n != 2) exit 1; printf "%s %.3f\n", r, p}'
}

declare -A RPS P99
SCEN=(fa_get ops_get hello fa_list ops_list)
[ "${HELLO:-1}" = 1 ] || SCEN=(fa_get ops_get fa_list ops_list)
declare -A URL=(
  [fa_get]="http://127.0.0.1:$P_FA/api/v1/servers/$ID"
  [ops_get]="http://127.0.0.1:$P_OPS/api/v1/servers/$ID"
  [hello]="http://127.0.0.1:$P_HELLO/"
  [fa_list]="http://127.0.0.1:$P_FA/api/v1/servers?page=3&per_page=50"
  [ops_list]="http://127.0.0.1:$P_OPS/api/v1/servers?page=3&per_page=50"
)
declare -A TOK=([fa_get]=$FA_TOKEN [ops_get]=$TOKEN [hello]="" [fa_list]=$FA_TOKEN [ops_list]=$TOKEN)
# on PostgreSQL the opskit scenarios load both replicas at once (URL and URL2)
declare -A URL2
if [ "$PG" = 1 ]; then
  SCEN+=(fa_pg_get ops_pg_get fa_pg_list ops_pg_list)
  URL[fa_pg_get]="http://127.0.0.1:$P_FAPG/api/v1/servers/$PG_ID"
  URL[ops_pg_get]="http://127.0.0.1:$P_R1/api/v1/servers/$PG_ID"
  URL2[ops_pg_get]="http://127.0.0.1:$P_R2/api/v1/servers/$PG_ID"
  URL[fa_pg_list]="http://127.0.0.1:$P_FAPG/api/v1/servers?page=3&per_page=50"
  URL[ops_pg_list]="http://127.0.0.1:$P_R1/api/v1/servers?page=3&per_page=50"
  URL2[ops_pg_list]="http://127.0.0.1:$P_R2/api/v1/servers?page=3&per_page=50"
  TOK+=([fa_pg_get]=$FA_TOKEN [ops_pg_get]=$PG_TOKEN [fa_pg_list]=$FA_TOKEN [ops_pg_list]=$PG_TOKEN)
fi
for run in $(seq 1 "$RUNS"); do
  for s in "${SCEN[@]}"; do
    if [ -n "${URL2[$s]:-}" ]; then
      read -r r p < <(run_wrk_pair "${URL[$s]}" "${URL2[$s]}" "${TOK[$s]}")
    else
      read -r r p < <(run_wrk "${URL[$s]}" "${TOK[$s]}")
    fi
    [ -n "${r:-}" ] || { echo "wrk gave no figure for $s" >&2; exit 1; }
    RPS[$s]+="$r "; P99[$s]+="$p "
    echo "run $run $s: $r req/s, p99 $p ms" >&2
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
declare -A MR MP
for s in "${SCEN[@]}"; do MR[$s]=$(echo "${RPS[$s]}" | median); MP[$s]=$(echo "${P99[$s]}" | median); done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", a/b}'; }

echo
echo "wrk -t$THREADS -c$CONNS -d$DURATION, median of $RUNS runs, $N_SERVERS servers, $(nproc) cores"
printf '%-34s %12s %10s\n' "scenario" "req/s" "p99 ms"
printf '%-34s %12.0f %10.2f\n' "FastAPI+uvicorn GET by id" "${MR[fa_get]}" "${MP[fa_get]}"
printf '%-34s %12.0f %10.2f\n' "opskit serve GET by id" "${MR[ops_get]}" "${MP[ops_get]}"
[ "${HELLO:-1}" = 1 ] && printf '%-34s %12.0f %10.2f\n' "axum hello-world (ceiling)" "${MR[hello]}" "${MP[hello]}"
printf '%-34s %12.0f %10.2f\n' "FastAPI+uvicorn list per_page=50" "${MR[fa_list]}" "${MP[fa_list]}"
printf '%-34s %12.0f %10.2f\n' "opskit serve list per_page=50" "${MR[ops_list]}" "${MP[ops_list]}"
echo
echo "GET by id: opskit / FastAPI  = $(ratio "${MR[ops_get]}" "${MR[fa_get]}")x   (target >= 20x)"
[ "${HELLO:-1}" = 1 ] && echo "GET by id: opskit / hello    = $(awk -v a="${MR[ops_get]}" -v b="${MR[hello]}" 'BEGIN {printf "%.2f", a/b}')   (target >= 0.5)"
echo "list 50:   opskit / FastAPI  = $(ratio "${MR[ops_list]}" "${MR[fa_list]}")x"
if [ "$PG" = 1 ]; then
  echo
  echo "PostgreSQL (same run): two opskit replicas, cache on, two wrk -t$(( THREADS / 2 > 0 ? THREADS / 2 : 1 )) -c$(( CONNS / 2 )) at once (req/s added, p99 the worse)"
  printf '%-34s %12s %10s\n' "scenario" "req/s" "p99 ms"
  printf '%-34s %12.0f %10.2f\n' "FastAPI+psycopg GET by id" "${MR[fa_pg_get]}" "${MP[fa_pg_get]}"
  printf '%-34s %12.0f %10.2f\n' "opskit x2 on PG GET by id" "${MR[ops_pg_get]}" "${MP[ops_pg_get]}"
  printf '%-34s %12.0f %10.2f\n' "FastAPI+psycopg list per_page=50" "${MR[fa_pg_list]}" "${MP[fa_pg_list]}"
  printf '%-34s %12.0f %10.2f\n' "opskit x2 on PG list per_page=50" "${MR[ops_pg_list]}" "${MP[ops_pg_list]}"
  echo
  echo "PG GET by id: opskit / FastAPI = $(ratio "${MR[ops_pg_get]}" "${MR[fa_pg_get]}")x   (target >= 30x)"
  echo "PG GET by id: opskit PG / SQLite = $(awk -v a="${MR[ops_pg_get]}" -v b="${MR[ops_get]}" 'BEGIN {printf "%.2f", a/b}')   (target >= 0.70)"
  echo "PG list 50:   opskit / FastAPI = $(ratio "${MR[ops_pg_list]}" "${MR[fa_pg_list]}")x   (target >= 30x)"
  echo "PG list 50:   opskit PG / SQLite = $(awk -v a="${MR[ops_pg_list]}" -v b="${MR[ops_list]}" 'BEGIN {printf "%.2f", a/b}')   (target >= 0.70)"
  for port in "$P_R1" "$P_R2"; do
    echo "replica $port: $(curl -fsS -H "Authorization: Bearer $PG_TOKEN" "http://127.0.0.1:$port/metrics" | grep -E '^opskit_server_cache_(hits_total|misses_total|enabled) ' | tr '\n' ' ')"
  done
fi
