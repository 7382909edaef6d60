#!/usr/bin/env bash
# `uptime` on 50 SSH targets (one OpenSSH sshd listening on 50 loopback ports), three ways:
#   opskit ssh run (release build, --forks 32), parallel-ssh -p 32 (Debian pssh), and a
#   sequential paramiko script written the way the seeds write it (host key pre-trusted).
# Prints each run's wall time, the medians and the ratios. Run as root (sshd, apt-get).
#   RUNS=5 TARGETS=50 bench/ssh/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-5}
TARGETS=${TARGETS:-50}

if [ "$(id -u)" != 0 ]; then echo "run as root (starts sshd, installs peers)" >&2; exit 1; fi
need_apt=()
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v parallel-ssh >/dev/null || need_apt+=(pssh)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get install -y "${need_apt[@]}" >/dev/null 2>&1 || { apt-get update >/dev/null; apt-get install -y "${need_apt[@]}" >/dev/null; }
fi
python3 -c 'import paramiko' 2>/dev/null || pip install paramiko >/dev/null 2>&1 ||
  pip install --break-system-packages paramiko >/dev/null

cargo build --release -p opskit >/dev/null 2>&1 || cargo build --release -p opskit
OPSKIT=$PWD/target/release/opskit

d=$(mktemp -d /tmp/opskit-bench-ssh.XXXXXX)
sshd_pids=()
# A throwaway login user with a plain shell, so every tool pays the same small remote start-up
# (root's shell start-up files on these machines cost ~0.3 s per login and would dominate).
user="opskit-b$$"
cleanup() {
  for p in "${sshd_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  userdel -f -r "$user" 2>/dev/null || true
  rm -rf "$d"
}
trap cleanup EXIT

mkdir -p /run/sshd
useradd -m -s /bin/sh "$user"
usermod -p "*" "$user"   # no password, but not locked (sshd refuses locked accounts)
ssh-keygen -q -t ed25519 -N '' -f "$d/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -f "$d/client"
cp "$d/client.pub" "$d/authorized_keys"
chmod 755 "$d"; chmod 644 "$d/authorized_keys"
ports=$(python3 - "$TARGETS" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)
# sshd listens on at most 16 sockets, so the targets are spread over several sshd processes.
sshd_pids=()
set -- $ports
n=0
while [ $# -gt 0 ]; do
  n=$((n + 1))
  {
    for _ in $(seq 1 12); do [ $# -gt 0 ] && { echo "Port $1"; shift; }; done
    cat <<CONF
ListenAddress 127.0.0.1
HostKey $d/host_ed25519
PidFile $d/sshd$n.pid
AuthorizedKeysFile $d/authorized_keys
PasswordAuthentication no
StrictModes no
UsePAM no
MaxStartups 200:30:400
CONF
  } >"$d/sshd$n.config"
  /usr/sbin/sshd -D -e -f "$d/sshd$n.config" 2>"$d/sshd$n.log" &
  sshd_pids+=($!)
done
hostkey=$(cut -d' ' -f1,2 "$d/host_ed25519.pub")
: >"$d/known_hosts"
: >"$d/hosts"
for p in $ports; do
  echo "[127.0.0.1]:$p $hostkey" >>"$d/known_hosts"
  echo "$user@127.0.0.1:$p" >>"$d/hosts"
  for i in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$p),1).close()" 2>/dev/null && break
    [ "$i" = 100 ] && { echo "sshd is not listening on $p" >&2; cat "$d"/sshd*.log >&2; exit 1; }
    sleep 0.05
  done
done

run_opskit() {
  "$OPSKIT" ssh run --hosts-file "$d/hosts" -i "$d/client" --no-agent --known-hosts "$d/known_hosts" \
    --forks 32 -- uptime >"$d/opskit.out"
}
run_pssh() {
  parallel-ssh -p 32 -h "$d/hosts" -x "-i $d/client" -O "UserKnownHostsFile=$d/known_hosts" \
    -O StrictHostKeyChecking=yes -O BatchMode=yes uptime >"$d/pssh.out"
}
run_paramiko() {
  python3 bench/ssh/paramiko_seq.py "$user" "$d/client" "$d/known_hosts" $ports
}

# Check each side works (and the outcome counts) before timing.
run_opskit || { cat "$d/opskit.out"; exit 1; }
tail -1 "$d/opskit.out"
run_pssh; grep -c SUCCESS "$d/pssh.out" | sed 's/$/ pssh successes/'
run_paramiko && echo "paramiko ok"

declare -A times
for tool in opskit pssh paramiko; do times[$tool]=""; done
for i in $(seq 1 "$RUNS"); do
  for tool in opskit pssh paramiko; do
    s=$(date +%s.%N)
    "run_$tool"
    e=$(date +%s.%N)
    times[$tool]="${times[$tool]} $(python3 -c "print(f'{$e-$s:.3f}')")"
  done
done

python3 - "${times[opskit]}" "${times[pssh]}" "${times[paramiko]}" "$TARGETS" "$RUNS" <<'PY'
import statistics, sys
names = ["opskit ssh run (--forks 32)", "parallel-ssh -p 32", "paramiko, sequential"]
runs = [[float(x) for x in a.split()] for a in sys.argv[1:4]]
med = [statistics.median(r) for r in runs]
print(f"\nuptime on {sys.argv[4]} targets, {sys.argv[5]} runs each (wall seconds)")
print(f"{'tool':32} {'median':>8}  {'runs':40} {'vs opskit':>9}")
for n, r, m in zip(names, runs, med):
    print(f"{n:32} {m:8.3f}  {' '.join(f'{x:.2f}' for x in r):40} {m/med[0]:8.1f}x")
PY
