# shellcheck shell=bash
# Sourced by scripts/test: dnsmasq (Debian's dnsmasq-base) as an authoritative-only DNS server on
# 127.0.0.1 for the `opskit net dns` tests. It answers from the records below and contacts
# nothing (--no-resolv, --no-hosts); --local=/test/ makes unknown names under `test` NXDOMAIN
# rather than REFUSED. 10.0.0.11 and fd00::11 are data in answers, never dialled.
#
# Exports:
#   OPSKIT_TEST_DNS_SERVER   127.0.0.1:PORT of the server (UDP and TCP)

if ! command -v dnsmasq >/dev/null 2>&1 && [ ! -x /usr/sbin/dnsmasq ] && [ "$(id -u)" = 0 ]; then
  (apt-get install -y dnsmasq-base >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y dnsmasq-base >/dev/null; })
fi
_dnsmasq_bin=$(command -v dnsmasq || echo /usr/sbin/dnsmasq)

if [ -x "$_dnsmasq_bin" ]; then
  _dnsmasq_dir="$OPSKIT_TEST_TMP/dnsmasq"
  mkdir -p "$_dnsmasq_dir"
  _dnsmasq_port=$(free_port)
  # --user: dnsmasq drops privileges to `nobody` by default when root; keep the current user so
  # the pid/log files in the temp dir stay writable.
  "$_dnsmasq_bin" --keep-in-foreground --port="$_dnsmasq_port" --listen-address=127.0.0.1 \
    --bind-interfaces --no-resolv --no-hosts --user="$(id -un)" \
    --pid-file="$_dnsmasq_dir/dnsmasq.pid" --log-facility="$_dnsmasq_dir/dnsmasq.log" \
    --address=/web01.test/10.0.0.11 --address=/web01.test/fd00::11 \
    --mx-host=test,mail.test,10 --txt-record=test,"v=spf1 -all" \
    --ptr-record=11.0.0.10.in-addr.arpa,web01.test --local=/test/ \
    --cname=www.test,web01.test --srv-host=_http._tcp.test,web01.test,8080,10,5 \
    2>"$_dnsmasq_dir/stderr" &
  _dnsmasq_pid=$!

  _dnsmasq_stop() {
    kill "$_dnsmasq_pid" 2>/dev/null || true
    wait "$_dnsmasq_pid" 2>/dev/null || true
  }
  on_exit _dnsmasq_stop

  # Wait (with a deadline) until it answers an A query over UDP.
  for _try in $(seq 1 100); do
    if python3 - "$_dnsmasq_port" <<'PY' 2>/dev/null; then
import socket, struct, sys
q = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p for p in b"web01.test".split(b".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.5)
s.sendto(q, ("127.0.0.1", int(sys.argv[1])))
r = s.recv(512)
sys.exit(0 if r[:2] == b"\x12\x34" and struct.unpack(">H", r[6:8])[0] >= 1 else 1)
PY
      break
    fi
    if [ "$_try" = 100 ]; then
      echo "dnsmasq did not answer on port $_dnsmasq_port:" >&2
      cat "$_dnsmasq_dir/stderr" "$_dnsmasq_dir/dnsmasq.log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.1
  done

  export OPSKIT_TEST_DNS_SERVER="127.0.0.1:$_dnsmasq_port"
  echo "dnsmasq on $OPSKIT_TEST_DNS_SERVER"
else
  echo "dnsmasq: not started (needs dnsmasq-base, installed when run as root); the DNS tests will skip, or fail under CI=true" >&2
fi
