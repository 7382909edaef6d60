#!/usr/bin/env bash
# The alert that `opskit monitor run` delivers to a signed webhook destination is verified by the
# Standard Webhooks reference library (Python package `standardwebhooks`, from PyPI):
# `Webhook(secret).verify(body, headers)` accepts the request as delivered and refuses it once
# the body is tampered with. Proof that any Standard Webhooks receiver can check our alerts.
#
# Needs python3 (with venv) and network access to PyPI the first time; with CI=true a missing
# tool fails the check instead of skipping it.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing() {
  if [ "${CI:-}" = "true" ]; then echo "monitor-webhook-verify: $1" >&2; exit 1; fi
  echo "skipping: $1"; exit 0
}
command -v python3 >/dev/null 2>&1 || missing "python3 is required"

work=$(mktemp -d /tmp/opskit-monitor-webhook.XXXXXX)
daemon=""
receiver=""
# Runs on every exit: a killed child's status (143) must not become the script's (set -e).
stop() {
  local rc=$?
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  if [ -n "$receiver" ]; then kill "$receiver" 2>/dev/null || true; wait "$receiver" 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$rc"
}
trap stop EXIT

# The reference library, in a virtual environment of its own (the system Python stays as is).
PY=python3
if ! python3 -c 'import standardwebhooks' 2>/dev/null; then
  python3 -m venv "$work/venv" 2>/dev/null || missing "python3 -m venv is not available"
  "$work/venv/bin/pip" install --quiet standardwebhooks >/dev/null 2>&1 \
    || missing "cannot install standardwebhooks from PyPI"
  PY="$work/venv/bin/python"
fi

cargo build -q -p opskit --locked
bin=$PWD/target/debug/opskit

# A receiver on a free loopback port: it stores each request's headers and raw body, answers 200.
cat > "$work/receiver.py" <<'PY'
import http.server, json, os, sys
out = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        n = len([f for f in os.listdir(out) if f.endswith(".body")])
        with open(os.path.join(out, f"{n}.headers.json"), "w") as f:
            json.dump({k.lower(): v for k, v in self.headers.items()}, f)
        with open(os.path.join(out, f"{n}.body.tmp"), "wb") as f:
            f.write(body)
        os.rename(os.path.join(out, f"{n}.body.tmp"), os.path.join(out, f"{n}.body"))
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(os.path.join(out, "port.tmp"), "w") as f:
    f.write(str(s.server_address[1]))
os.rename(os.path.join(out, "port.tmp"), os.path.join(out, "port"))
s.serve_forever()
PY
mkdir "$work/got"
"$PY" "$work/receiver.py" "$work/got" &
receiver=$!
for _ in $(seq 1 200); do [ -f "$work/got/port" ] && break; sleep 0.05; done
[ -f "$work/got/port" ] || { echo "the receiver did not start" >&2; exit 1; }
port=$(cat "$work/got/port")

# A monitor of a closed loopback port alerts at the first failure.
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
secret="whsec_$(python3 -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())')"
cat > "$work/monitor.toml" <<TOML
[destinations.hook]
type = "webhook"
url = "http://127.0.0.1:$port/hook"
secret = "env:HOOK_SECRET"

[[monitor]]
name = "db"
kind = "tcp"
target = "127.0.0.1:$closed"
interval = "1s"
timeout = "500ms"
alerts = [{ destination = "hook", failure_threshold = 1 }]
TOML
HOOK_SECRET="$secret" "$bin" monitor run --config "$work/monitor.toml" \
  --database "sqlite://$work/monitor.db" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 1 600); do [ -f "$work/got/0.body" ] && break; sleep 0.1; done
if [ ! -f "$work/got/0.body" ]; then
  echo "no alert delivered within 60 s; daemon log:" >&2
  cat "$work/daemon.log" >&2
  exit 1
fi
kill "$daemon"; wait "$daemon" 2>/dev/null || true; daemon=""

"$PY" - "$secret" "$work/got/0.headers.json" "$work/got/0.body" <<'PY'
import json, sys
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
secret, headers_file, body_file = sys.argv[1:4]
headers = json.load(open(headers_file))
body = open(body_file, "rb").read()
for h in ("webhook-id", "webhook-timestamp", "webhook-signature"):
    assert h in headers, f"missing header {h}: {headers}"
payload = Webhook(secret).verify(body, headers)
assert payload["type"] == "monitor.trigger" and payload["monitor"] == "db", payload
tampered = body.replace(b'"db"', b'"web"', 1)
assert tampered != body
try:
    Webhook(secret).verify(tampered, headers)
except WebhookVerificationError:
    pass
else:
    sys.exit("a tampered body was accepted")
try:
    Webhook("whsec_" + "QUJD" * 8).verify(body, headers)
except WebhookVerificationError:
    pass
else:
    sys.exit("another secret was accepted")
print(f"standardwebhooks verified {headers['webhook-id']} ({payload['type']} of {payload['monitor']}); a tampered body and another secret are refused")
PY
