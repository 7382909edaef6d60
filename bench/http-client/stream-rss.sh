#!/usr/bin/env bash
# Peak RSS of `opskit get URL | wc -c` for a large body (issue 18, finding 3): the body must be
# streamed, so memory stays flat whatever its size. Also the capped buffered path (--filter).
#
#   bench/http-client/stream-rss.sh [SIZE_MIB]     (default 2048 = 2 GiB)
#
# Uses target/debug/opskit unless OPSKIT=path is set; a local python3 server on 127.0.0.1:0
# sends SIZE_MIB MiB of bytes. Measured with /usr/bin/time -v (Maximum resident set size).
# Exits 1 when the streamed run peaks at 64 MiB or more.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB="${1:-2048}"
OPSKIT="${OPSKIT:-target/debug/opskit}"
[ -x "$OPSKIT" ] || cargo build -q -p opskit
tmp="$(mktemp -d)"
trap 'kill "${srv:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
cat > "$tmp/server.py" <<'PY'
import http.server, socketserver, sys
size = int(sys.argv[1]) * 1024 * 1024
block = b"x" * (1024 * 1024)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ctype = "application/json" if self.path.startswith("/json") else "application/octet-stream"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        left = size
        try:
            while left > 0:
                n = min(left, len(block))
                self.wfile.write(block[:n])
                left -= n
        except BrokenPipeError:
            pass
    def log_message(self, *a):
        pass
with socketserver.TCPServer(("127.0.0.1", 0), H) as s:
    print(s.server_address[1], flush=True)
    s.serve_forever()
PY
python3 "$tmp/server.py" "$SIZE_MIB" > "$tmp/port" &
srv=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
port="$(cat "$tmp/port")"
rss() { grep "Maximum resident set size" "$1" | awk '{print $NF}'; }

/usr/bin/time -v -o "$tmp/raw.time" "$OPSKIT" get "http://127.0.0.1:$port/bin" | wc -c > "$tmp/raw.bytes"
/usr/bin/time -v -o "$tmp/cap.time" "$OPSKIT" get "http://127.0.0.1:$port/json" --filter . \
    > /dev/null 2> "$tmp/cap.err" || true

raw_kb="$(rss "$tmp/raw.time")"; cap_kb="$(rss "$tmp/cap.time")"
printf '%-48s %14s %14s\n' "case" "bytes out" "peak RSS"
printf '%-48s %14s %11s MiB\n' "opskit get URL | wc -c  (${SIZE_MIB} MiB body)" "$(cat "$tmp/raw.bytes")" "$((raw_kb / 1024))"
printf '%-48s %14s %11s MiB\n' "opskit get URL --filter .  (JSON, 256M cap)" "error: $(grep -c 'byte cap' "$tmp/cap.err") line" "$((cap_kb / 1024))"
[ "$(cat "$tmp/raw.bytes")" -eq $((SIZE_MIB * 1024 * 1024)) ] || { echo "short body"; exit 1; }
[ "$raw_kb" -lt $((64 * 1024)) ] || { echo "FAIL: streamed run peaked at ${raw_kb} kB (limit 64 MiB)"; exit 1; }
echo "ok: streamed peak under 64 MiB"
