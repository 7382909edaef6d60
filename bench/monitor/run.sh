#!/usr/bin/env bash
# bench/monitor: the monitor engine on this machine, all on loopback.
#   (a) `opskit monitor run` with MONITORS (10,000) HTTP monitors at INTERVAL (30 s) for one
#       interval of start-up spread plus STEADY (180) seconds of steady state: p99 lateness of
#       check starts (the daemon's own figure and, independently, the target server's request
#       log), checks skipped, peak resident memory (VmHWM).
#   (b) one pass over TARGETS (2,000) HTTP targets at concurrency CONC (64):
#       `opskit monitor check --concurrency CONC` vs Prometheus' blackbox_exporter driven by
#       `curl --parallel --parallel-max CONC` on /probe?module=http_2xx, vs the seeds' sequential
#       `requests` loop; median of RUNS (3) runs, probes per second and ratios.
# The targets are one nginx (Debian nginx-light) listening on ADDRS (20) loopback addresses
# 127.0.0.2… × PORTS (100) ports from PORT_BASE (20000): 2,000 distinct origins, so in (b) no
# tool gets a kept-alive connection from one target to the next; in (a) each origin serves 5
# monitors' paths.
# Usage: [PART=a|b|all] [STEADY=180] [RUNS=3] [OPSKIT_BIN=path] bash bench/monitor/run.sh   (as root: installs
# nginx-light, prometheus-blackbox-exporter and python3-requests when missing). Not part of
# scripts/test.
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=bench/monitor

PART=${PART:-all}
MONITORS=${MONITORS:-10000}
INTERVAL=${INTERVAL:-30}
STEADY=${STEADY:-180}
TARGETS=${TARGETS:-2000}
CONC=${CONC:-64}
RUNS=${RUNS:-3}
ADDRS=${ADDRS:-20}
PORTS=${PORTS:-100}
PORT_BASE=${PORT_BASE:-20000}
ORIGINS=$((ADDRS * PORTS))

# --- peers -------------------------------------------------------------------------------------
need_pkgs=()
command -v nginx >/dev/null || need_pkgs+=(nginx-light)
command -v prometheus-blackbox-exporter >/dev/null || need_pkgs+=(prometheus-blackbox-exporter)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  # Debian starts a freshly installed service unless policy-rc.d says no: we start our own.
  made_policy=0
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made_policy=1; }
  apt-get install -y "${need_pkgs[@]}" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "${need_pkgs[@]}" >/dev/null; }
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
python3 -c 'import requests' 2>/dev/null || pip install --quiet requests

if [ -n "${OPSKIT_BIN:-}" ]; then # a release binary built earlier (e.g. a copy, so others' builds don't swap it mid-run)
  OPSKIT=$OPSKIT_BIN
else
  echo "building target/release/opskit..." >&2
  cargo build --release --quiet -p opskit
  OPSKIT=$PWD/target/release/opskit
fi

TMP=$(mktemp -d /tmp/opskit-bench-monitor.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
now() { date +%s.%N; }
origin() { # index -> host:port
  echo "127.0.0.$((2 + $1 / PORTS)):$((PORT_BASE + $1 % PORTS))"
}

# Every origin must be free before nginx takes it.
python3 - "$ADDRS" "$PORTS" "$PORT_BASE" <<'PY'
import socket, sys
a, p, base = map(int, sys.argv[1:])
for i in range(a):
    for j in range(p):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((f"127.0.0.{2 + i}", base + j))
        except OSError as e:
            sys.exit(f"127.0.0.{2 + i}:{base + j} is taken ({e}): set PORT_BASE")
        finally:
            s.close()
PY

# nginx: every origin answers any path with 200 and a small JSON body; (a) logs each request's
# arrival time ($msec, ms resolution), (b) logs nothing.
start_nginx() { # log(on|off)
  local conf="$TMP/nginx-$1.conf" log="access_log off;"
  [ "$1" = on ] && log="log_format stamp '\$msec \$uri \$status'; access_log $TMP/access.log stamp buffer=256k flush=1s;"
  {
    echo "worker_processes 2; worker_rlimit_nofile 65536; pid $TMP/nginx.pid; error_log $TMP/nginx-error.log warn;"
    echo "events { worker_connections 16384; }"
    echo "http { $log keepalive_timeout 75s; keepalive_requests 100000;"
    echo "  client_body_temp_path $TMP/nginx-tmp; proxy_temp_path $TMP/nginx-tmp; fastcgi_temp_path $TMP/nginx-tmp;"
    echo "  server {"
    for ((i = 0; i < ORIGINS; i++)); do echo "    listen $(origin "$i") backlog=4096;"; done
    echo "    location / { default_type application/json; return 200 '{\"status\":\"UP\"}\n'; }"
    echo "  }"
    echo "}"
  } >"$conf"
  mkdir -p "$TMP/nginx-tmp"
  nginx -c "$conf" -p "$TMP" -g 'daemon off;' &
  NGINX=$!
  PIDS+=("$NGINX")
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://$(origin $((ORIGINS - 1)))/up" 2>/dev/null && return 0; sleep 0.1; done
  echo "nginx did not start" >&2; cat "$TMP/nginx-error.log" >&2; return 1
}
stop_nginx() { kill "$NGINX" 2>/dev/null || true; wait "$NGINX" 2>/dev/null || true; }

# --- (a) 10,000 monitors at a 30 s interval ----------------------------------------------------
part_a() {
  local cfg="$TMP/monitors.toml" port
  port=$(free_port)
  {
    printf '[settings]\nconcurrency = %s\n\n[defaults]\ninterval = "%ss"\ntimeout = "5s"\n' "$CONC" "$INTERVAL"
    for ((j = 0; j < MONITORS; j++)); do
      printf '\n[[monitor]]\nname = "m%05d"\nkind = "http"\ntarget = "http://%s/m/%d"\n' "$j" "$(origin $((j % ORIGINS)))" "$j"
    done
  } >"$cfg"
  start_nginx on
  local t_start t_steady t_end pid
  t_start=$(now)
  "$OPSKIT" monitor run --config "$cfg" --database "sqlite://$TMP/monitor.db" --listen "127.0.0.1:$port" \
    >"$TMP/daemon.out" 2>"$TMP/daemon.err" &
  pid=$!
  PIDS+=("$pid")
  echo "(a) $MONITORS monitors every ${INTERVAL}s: ${INTERVAL}s of start-up spread, then ${STEADY}s of steady state..." >&2
  sleep "$INTERVAL"
  t_steady=$(now)
  local cpu0 cpu1 tck
  tck=$(getconf CLK_TCK)
  cpu0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local rss_max=0 rss
  for ((s = 0; s < STEADY; s += 5)); do
    sleep 5
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
  done
  t_end=$(now)
  cpu1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  local hwm metrics=""
  hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  metrics=$(curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null || true)
  kill -TERM "$pid"
  wait "$pid" || true
  sleep 1.5 # nginx flushes its log buffer every second
  stop_nginx
  local d_p99 d_skipped d_checks
  if grep -q '^opskit_monitor_schedule_lateness_seconds{quantile="0.99"}' <<<"$metrics"; then # no pipe: grep -q would SIGPIPE echo under pipefail
    d_p99=$(echo "$metrics" | awk '/^opskit_monitor_schedule_lateness_seconds\{quantile="0.99"\}/ {printf "%.1f", $2 * 1000}')
    d_skipped=$(echo "$metrics" | awk '/^opskit_monitor_checks_skipped_total/ {print $2}')
    d_checks=$(echo "$metrics" | awk '/^opskit_monitor_checks_total/ {s += $2} END {print s}')
    src="/metrics"
  else # the daemon's last line on SIGTERM
    local line
    line=$(grep 'scheduler stopped' "$TMP/daemon.err" | tail -1)
    d_p99=$(echo "$line" | sed -n 's/.*lateness_p99_ms=\([0-9.]*\).*/\1/p')
    d_skipped=$(echo "$line" | sed -n 's/.*skipped=\([0-9]*\).*/\1/p')
    d_checks=$(echo "$line" | sed -n 's/.* checks=\([0-9]*\).*/\1/p')
    src="its log line on SIGTERM"
  fi
  local server
  server=$(python3 "$HERE/lateness.py" "$TMP/access.log" "$INTERVAL" "$t_steady" "$t_end" "$MONITORS")
  echo
  echo "(a) $MONITORS HTTP monitors, interval ${INTERVAL}s, concurrency $CONC, ${STEADY}s steady state after ${INTERVAL}s of spread, $(nproc) cores"
  echo "    daemon ($src), whole run incl. start-up: checks=$d_checks skipped=$d_skipped lateness_p99_ms=$d_p99"
  echo "    target server's log, steady state: $server"
  echo "    memory: VmHWM=$((hwm / 1024)) MB, max sampled VmRSS=$((rss_max / 1024)) MB; daemon CPU in steady state: $(awk -v c=$((cpu1 - cpu0)) -v t="$tck" -v a="$t_steady" -v b="$t_end" 'BEGIN {printf "%.0f%% of one core", 100 * c / t / (b - a)}')"
  grep -v -E 'opskit monitor: (running|stopping|heartbeat receiver)|scheduler stopped' "$TMP/daemon.err" | tail -5 | sed 's/^/    daemon stderr: /' || true
}

# --- (b) one pass over 2,000 targets -------------------------------------------------------------
part_b() {
  local bb_port cfg="$TMP/targets.toml"
  bb_port=$(free_port)
  : >"$TMP/urls"; : >"$TMP/bb.curl"; : >"$TMP/direct.curl"
  {
    printf '[settings]\nconcurrency = %s\n\n[defaults]\ntimeout = "5s"\n' "$CONC"
    for ((i = 0; i < TARGETS; i++)); do
      printf '\n[[monitor]]\nname = "t%05d"\nkind = "http"\ntarget = "http://%s/t/%d"\n' "$i" "$(origin $((i % ORIGINS)))" "$i"
    done
  } >"$cfg"
  for ((i = 0; i < TARGETS; i++)); do
    local o; o=$(origin $((i % ORIGINS)))
    echo "http://$o/t/$i" >>"$TMP/urls"
    printf 'url = "http://127.0.0.1:%s/probe?module=http_2xx&target=http%%3A%%2F%%2F%s%%2Ft%%2F%d"\noutput = "/dev/null"\n' "$bb_port" "${o/:/%3A}" "$i" >>"$TMP/bb.curl"
    printf 'url = "http://%s/t/%d"\noutput = "/dev/null"\n' "$o" "$i" >>"$TMP/direct.curl"
  done
  start_nginx off
  printf 'modules:\n  http_2xx: {prober: http, timeout: 5s}\n' >"$TMP/bb.yml"
  prometheus-blackbox-exporter --config.file="$TMP/bb.yml" --web.listen-address="127.0.0.1:$bb_port" \
    --log.level=warn >"$TMP/bb.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "http://127.0.0.1:$bb_port/metrics" 2>/dev/null && break; sleep 0.1; done

  # Untimed pass: every probe of every tool must succeed before anything is timed.
  "$OPSKIT" monitor check --config "$cfg" --concurrency "$CONC" -o json >/dev/null \
    || { echo "opskit monitor check: not every target is up" >&2; exit 1; }
  local ok
  ok=$(sed 's/^output = .*//' "$TMP/bb.curl" | curl -s --no-progress-meter --parallel --parallel-max "$CONC" -K - | grep -c '^probe_success 1$' || true)
  [ "$ok" = "$TARGETS" ] || { echo "blackbox_exporter: $ok of $TARGETS probes succeeded" >&2; exit 1; }

  local -A T
  codes() { curl -s --no-progress-meter --parallel --parallel-max "$CONC" -K "$1" -w '%{http_code}\n' | grep -c '^200$' || true; }
  for run in $(seq 1 "$RUNS"); do
    local t0 t1 n
    t0=$(now); "$OPSKIT" monitor check --config "$cfg" --concurrency "$CONC" -o json >/dev/null; t1=$(now)
    T[opskit]+="$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.3f", a - b}') "
    t0=$(now); n=$(codes "$TMP/bb.curl"); t1=$(now)
    [ "$n" = "$TARGETS" ] || { echo "blackbox run $run: $n of $TARGETS answered 200" >&2; exit 1; }
    T[blackbox]+="$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.3f", a - b}') "
    t0=$(now); n=$(codes "$TMP/direct.curl"); t1=$(now)
    [ "$n" = "$TARGETS" ] || { echo "driver run $run: $n of $TARGETS answered 200" >&2; exit 1; }
    T[driver]+="$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.3f", a - b}') "
    t0=$(now); python3 "$HERE/seeds_loop.py" "$TMP/urls" >/dev/null; t1=$(now)
    T[python]+="$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.3f", a - b}') "
    echo "run $run: opskit $(echo "${T[opskit]}" | awk '{print $NF}')s, blackbox $(echo "${T[blackbox]}" | awk '{print $NF}')s, driver alone $(echo "${T[driver]}" | awk '{print $NF}')s, python $(echo "${T[python]}" | awk '{print $NF}')s" >&2
  done
  stop_nginx
  local -A M
  for k in opskit blackbox driver python; do M[$k]=$(echo "${T[$k]}" | median); done
  pps() { awk -v n="$TARGETS" -v t="$1" 'BEGIN {printf "%.0f", n / t}'; }
  echo
  echo "(b) one pass over $TARGETS HTTP targets ($ORIGINS origins), concurrency $CONC, median of $RUNS runs, $(nproc) cores"
  printf '%-58s %10s %10s %14s\n' "tool" "median s" "probes/s" "opskit ÷ tool"
  printf '%-58s %10.3f %10s %14s\n' "opskit monitor check --concurrency $CONC" "${M[opskit]}" "$(pps "${M[opskit]}")" "1.0x"
  printf '%-58s %10.3f %10s %14s\n' "blackbox_exporter $(prometheus-blackbox-exporter --version 2>&1 | awk 'NR==1 {print $3}') (curl --parallel-max $CONC)" "${M[blackbox]}" "$(pps "${M[blackbox]}")" "$(awk -v a="${M[blackbox]}" -v b="${M[opskit]}" 'BEGIN {printf "%.1fx", a / b}')"
  printf '%-58s %10.3f %10s %14s\n' "seeds' requests loop (sequential)" "${M[python]}" "$(pps "${M[python]}")" "$(awk -v a="${M[python]}" -v b="${M[opskit]}" 'BEGIN {printf "%.1fx", a / b}')"
  printf '%-58s %10.3f %10s %14s\n' "(driver alone: curl --parallel-max $CONC straight to targets)" "${M[driver]}" "$(pps "${M[driver]}")" "-"
  echo "runs (s): opskit ${T[opskit]}| blackbox ${T[blackbox]}| driver ${T[driver]}| python ${T[python]}"
}

case "$PART" in
  a) part_a ;;
  b) part_b ;;
  all) part_b; part_a ;;
  *) echo "PART must be a, b or all" >&2; exit 2 ;;
esac
