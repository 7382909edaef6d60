#!/usr/bin/env bash
# Transfer a 1 GiB file of random data over loopback: opskit net send/receive (BLAKE3 by
# default, verified by the receiver; and with --checksum sha256) vs the seeds' plain Python
# raw-socket loop (4 KiB sendall/recv, no checksum at all) vs iperf3 (memory to memory, no file,
# no checksum: the ceiling). Also prints this machine's one-thread BLAKE3 and SHA-256 speeds.
#
# usage: bench/net/transfer.sh            (RUNS=5 SIZE_MIB=1024 BENCH_DIR=/dev/shm to change)
# Needs: iperf3 (apt-get install -y iperf3), python3. Builds `cargo build --release -p opskit`
# and the hash_speed example of opskit-net (SKIP_BUILD=1 to use what is built).
# Targets (issue 16): opskit >= 1.5x faster than the Python loop, >= 1/2 of iperf3's rate.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-1024}
HERE="$ROOT/bench/net"

command -v iperf3 >/dev/null || { echo "iperf3 missing: apt-get install -y iperf3" >&2; exit 1; }
if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$ROOT" && cargo build --release -p opskit >&2 &&
    cargo build --release -p opskit-net --example hash_speed >&2)
fi
OPSKIT=${OPSKIT:-"$ROOT/target/release/opskit"}

# Files live on tmpfs by default so the disk does not set the pace (fsync is a no-op there).
BASE=${BENCH_DIR:-/dev/shm}
[[ -d "$BASE" && -w "$BASE" ]] || BASE=${TMPDIR:-/tmp}
WORK=$(mktemp -d "$BASE/opskit-xfer-bench.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$WORK/src" "$WORK/dst"
SRC="$WORK/src/data.bin"
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom > "$SRC"
BYTES=$(stat -c %s "$SRC")
WANT=$(sha256sum "$SRC" | cut -d' ' -f1)

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_file() { for _ in $(seq 1 500); do [[ -s "$1" ]] && return 0; sleep 0.02; done; echo "timeout waiting for $1" >&2; return 1; }
check_out() {
  local got
  got=$(sha256sum "$WORK/dst/data.bin" | cut -d' ' -f1)
  [[ "$got" == "$WANT" ]] || { echo "$1: received file differs!" >&2; exit 1; }
  rm -f "$WORK/dst/data.bin"
}

run_opskit() {
  local extra=("$@")
  rm -f "$WORK/rx.err"
  "$OPSKIT" net receive --bind 127.0.0.1:0 --dir "$WORK/dst" --once --overwrite >/dev/null 2>"$WORK/rx.err" &
  local rx=$!
  PIDS+=("$rx")
  wait_file "$WORK/rx.err"
  local addr
  addr=$(grep -o '127\.0\.0\.1:[0-9]*' "$WORK/rx.err" | head -1)
  local t0 t1
  t0=$(now)
  "$OPSKIT" net send "${extra[@]}" "$SRC" "$addr" >/dev/null
  wait "$rx"
  t1=$(now)
  check_out opskit
  echo "$t1 - $t0" | bc -l
}

run_python() {
  local buf=$1 hash=${2:-}
  rm -f "$WORK/port"
  python3 "$HERE/python_recv.py" "$WORK/port" "$WORK/dst" "$buf" &
  local rx=$!
  PIDS+=("$rx")
  wait_file "$WORK/port"
  local t0 t1
  t0=$(now)
  python3 "$HERE/python_send.py" "$SRC" 127.0.0.1 "$(cat "$WORK/port")" "$buf" $hash
  wait "$rx"
  t1=$(now)
  check_out "python $buf"
  echo "$t1 - $t0" | bc -l
}

run_iperf3() {
  local port
  port=$(free_port)
  iperf3 -s -1 -B 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  local srv=$!
  PIDS+=("$srv")
  # Wait until it listens (without connecting: a one-off server would count that as its test).
  for _ in $(seq 1 250); do
    ss -ltnH "sport = :$port" | grep -q . && break
    sleep 0.02
  done
  local out
  out=$(iperf3 -c 127.0.0.1 -p "$port" -n "$BYTES" -J)
  wait "$srv" || true
  # seconds the receiver needed for the bytes
  python3 -c 'import json,sys; d=json.loads(sys.stdin.read())["end"]["sum_received"]; print(d["seconds"])' <<<"$out"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A MED
TOOLS=${TOOLS:-"opskit opskit_sha256 python_4k_nohash iperf3"}
for tool in $TOOLS; do
  times=()
  for _ in $(seq 1 "$RUNS"); do
    case $tool in
      opskit) t=$(run_opskit) ;;
      opskit_sha256) t=$(run_opskit --checksum sha256) ;;
      python_4k) t=$(run_python 4096) ;;
      python_4k_nohash) t=$(run_python 4096 nohash) ;;
      iperf3) t=$(run_iperf3) ;;
    esac
    times+=("$t")
  done
  MED[$tool]=$(printf '%s\n' "${times[@]}" | median)
  echo "$tool: runs ${times[*]} s" >&2
done

echo
echo "1 file of $SIZE_MIB MiB over 127.0.0.1, median of $RUNS runs, files in $BASE ($(nproc) CPUs)"
printf '%-40s %10s %10s %14s\n' tool "seconds" "MB/s" "time / opskit"
row() {
  local name=$1 tool=$2
  [[ -n "${MED[$tool]:-}" ]] || return 0
  local t=${MED[$tool]} rate speed
  rate=$(echo "$BYTES / $t / 1000000" | bc -l)
  speed=$(echo "$t / ${MED[opskit]}" | bc -l)
  printf '%-40s %10.3f %10.0f %13.2fx\n' "$name" "$t" "$rate" "$speed"
}
row "opskit net send/receive (blake3)" opskit
row "opskit net send --checksum sha256" opskit_sha256
row "python seeds, 4 KiB, sha256" python_4k
row "python seeds, 4 KiB, NO checksum" python_4k_nohash
row "iperf3 (no file, no checksum)" iperf3
if [[ -n "${MED[python_4k_nohash]:-}" ]]; then
  echo "opskit vs the seeds' Python loop: $(echo "${MED[python_4k_nohash]} / ${MED[opskit]}" | bc -l | cut -c1-5)x faster (target >= 1.5)"
fi
if [[ -n "${MED[iperf3]:-}" ]]; then
  echo "opskit / iperf3 rate: $(echo "${MED[iperf3]} / ${MED[opskit]}" | bc -l | cut -c1-5) (target >= 0.5)"
fi
HASH_SPEED="$ROOT/target/release/examples/hash_speed"
if [[ -x "$HASH_SPEED" ]]; then
  echo "this machine's hash speeds (target/release/examples/hash_speed):"
  "$HASH_SPEED" 1024
fi
