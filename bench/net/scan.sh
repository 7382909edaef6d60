#!/usr/bin/env bash
# A full 65,535-port TCP connect scan of 127.0.0.1 with a few listeners, three ways:
#   opskit net scan --ports all (release build, concurrency sized from the open-file limit),
#   nmap -sT -p- -T4 (Debian), and RustScan (`cargo install rustscan`, greppable mode).
# Every run's open-port set is checked: opskit's must equal nmap's and contain the listeners
# (the script fails otherwise); a RustScan set that differs is reported (extra ports are false
# positives, e.g. TCP self-connects). Prints each run's wall time, the medians and the ratios.
# As root it runs in a network namespace of its own (`unshare -n`, loopback only), so listeners
# that other programs open and close on 127.0.0.1 meanwhile cannot make the tools disagree;
# NETNS=0 scans the machine's own 127.0.0.1 instead.
#   RUNS=5 LISTENERS=5 RUSTSCAN=/path/to/rustscan bench/net/scan.sh   (SKIP_BUILD=1: use the existing release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
LISTENERS=${LISTENERS:-5}
HOST=127.0.0.1

command -v nmap >/dev/null || {
  [ "$(id -u)" = 0 ] || { echo "nmap is missing: apt-get install -y nmap" >&2; exit 1; }
  apt-get install -y nmap >/dev/null 2>&1 || { apt-get update >/dev/null; apt-get install -y nmap >/dev/null; }
}
RUSTSCAN=${RUSTSCAN:-$(command -v rustscan || echo "$HOME/.cargo/bin/rustscan")}
if [ ! -x "$RUSTSCAN" ]; then
  echo "RustScan not found: cargo install rustscan (or set RUSTSCAN=/path/to/rustscan)" >&2
  exit 1
fi

if [ -z "${OPSKIT_BENCH_IN_NETNS:-}" ]; then
  [ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -p opskit >/dev/null 2>&1 || cargo build --release -p opskit
  if [ "${NETNS:-1}" = 1 ] && [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    exec unshare -n env OPSKIT_BENCH_IN_NETNS=1 RUSTSCAN="$RUSTSCAN" bash "$0" "$@"
  fi
else
  ip link set lo up
fi
OPSKIT=$PWD/target/release/opskit
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

d=$(mktemp -d /tmp/opskit-bench-net.XXXXXX)
listener_pid=""
cleanup() {
  [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$d"
}
trap cleanup EXIT

# Listeners on random loopback ports that accept and close connections (each tool connects once
# per run; accepting keeps the backlog from filling).
python3 - "$LISTENERS" "$d/listeners" <<'PY' &
import socket, sys, threading
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1024); socks.append(s)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write("\n".join(str(s.getsockname()[1]) for s in socks) + "\n")
import os; os.rename(sys.argv[2] + ".tmp", sys.argv[2])
def serve(s):
    while True:
        c, _ = s.accept(); c.close()
for s in socks:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
threading.Event().wait()
PY
listener_pid=$!
for _ in $(seq 1 100); do [ -s "$d/listeners" ] && break; sleep 0.05; done
sort -n "$d/listeners" -o "$d/listeners"

now() { date +%s.%N; }
run_opskit() {
  "$OPSKIT" net scan "$HOST" --ports all --output json --no-progress 2>"$d/opskit.err" |
    python3 -c 'import json,sys; print("\n".join(str(r["port"]) for r in json.load(sys.stdin) if r["state"]=="open"))' |
    sort -n
}
run_nmap() {
  nmap -sT -p- -T4 -n -Pn --open -oG - "$HOST" 2>/dev/null |
    grep -o '[0-9]*/open/tcp' | cut -d/ -f1 | sort -n
}
run_rustscan() {
  "$RUSTSCAN" -a "$HOST" -r 1-65535 -g --no-banner -u 65535 2>/dev/null |
    grep -o '\[.*\]' | tr -d '[] ' | tr ',' '\n' | grep -v '^$' | sort -n
}

declare -A times
for tool in opskit nmap rustscan; do times[$tool]=""; done
rustscan_note=""
for run in $(seq 1 "$RUNS"); do
  for tool in opskit nmap rustscan; do
    t0=$(now)
    "run_$tool" >"$d/$tool.$run"
    t1=$(now)
    dt=$(python3 -c "print(f'{$t1-$t0:.3f}')")
    times[$tool]="${times[$tool]} $dt"
    printf 'run %d  %-9s %7ss  %s open\n' "$run" "$tool" "$dt" "$(wc -l <"$d/$tool.$run")"
  done
  if ! comm -23 "$d/listeners" "$d/opskit.$run" | diff -q - /dev/null >/dev/null; then
    echo "FAIL: opskit missed a listener in run $run" >&2; cat "$d/opskit.err" >&2; exit 1
  fi
  if ! diff -q "$d/opskit.$run" "$d/nmap.$run" >/dev/null; then
    echo "FAIL: opskit and nmap disagree in run $run:" >&2
    diff "$d/opskit.$run" "$d/nmap.$run" >&2 || true
    exit 1
  fi
  if ! diff -q "$d/opskit.$run" "$d/rustscan.$run" >/dev/null; then
    extra=$(comm -13 "$d/opskit.$run" "$d/rustscan.$run" | tr '\n' ' ')
    missing=$(comm -23 "$d/opskit.$run" "$d/rustscan.$run" | tr '\n' ' ')
    rustscan_note="$rustscan_note
  run $run: RustScan's set differs from nmap/opskit: extra [${extra% }] missing [${missing% }]"
  fi
done

median() { python3 -c 'import statistics,sys; print(f"{statistics.median(map(float, sys.argv[1:])):.3f}")' "$@"; }
m_opskit=$(median ${times[opskit]})
m_nmap=$(median ${times[nmap]})
m_rustscan=$(median ${times[rustscan]})
echo
echo "open ports (every run, opskit = nmap): $(tr '\n' ' ' <"$d/opskit.1")"
echo "listeners started by this script:     $(tr '\n' ' ' <"$d/listeners")"
[ -n "$rustscan_note" ] && echo "RustScan:${rustscan_note}"
echo "opskit: $(tail -1 "$d/opskit.err")"
echo
printf '%-34s %10s %14s\n' "tool (full 65,535-port scan)" "median s" "vs opskit"
printf '%-34s %10s %14s\n' "opskit net scan --ports all" "$m_opskit" "1.00x"
printf '%-34s %10s %14s\n' "nmap -sT -p- -T4" "$m_nmap" "$(python3 -c "print(f'{$m_nmap/$m_opskit:.2f}x slower' if $m_nmap>=$m_opskit else f'{$m_opskit/$m_nmap:.2f}x faster')")"
printf '%-34s %10s %14s\n' "rustscan -r 1-65535 -g" "$m_rustscan" "$(python3 -c "print(f'{$m_rustscan/$m_opskit:.2f}x slower' if $m_rustscan>=$m_opskit else f'{$m_opskit/$m_rustscan:.2f}x faster')")"
echo "($RUNS runs each, interleaved; $(nproc) CPUs; $(uname -r); $([ -n "${OPSKIT_BENCH_IN_NETNS:-}" ] && echo "own network namespace" || echo "host network namespace"))"
