#!/usr/bin/env bash
# Property-based fuzzing of `opskit serve` from its own /openapi.json (schemathesis, from PyPI):
# fails on any 5xx, any undocumented status code or content type, or any response that breaks
# the published schema.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v schemathesis >/dev/null 2>&1 && ! command -v st >/dev/null 2>&1; then
  pip install --quiet schemathesis >/dev/null 2>&1 || pip install --quiet --break-system-packages schemathesis
fi
ST=$(command -v schemathesis || command -v st)

cargo build --quiet -p opskit
BIN=$PWD/target/debug/opskit
TMP=$(mktemp -d /tmp/opskit-schemathesis.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
DB="sqlite://$TMP/fuzz.db"
PASSWORD="fuzz-admin-password"

# The monitors API is fuzzed with the engine on (--monitor), standing by: the leader lease is
# held first by a holder that never lets go, so no monitor the generator creates is ever checked
# (a schema-valid monitor may name any host, and the checks talk to loopback only).
"$BIN" monitor status --database "$DB" >/dev/null 2>&1 || true # creates the monitor's tables
python3 - "$TMP/fuzz.db" <<'PY'
import sqlite3, sys, time
now = int(time.time() * 1000)
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO leader_lease (name, holder, token, since_ms, renewed_ms, expires_ms) "
           "VALUES ('monitor', 'schemathesis-standby', 1, ?, ?, ?)", (now, now, now + 10 * 86400000))
db.commit()
PY

OPSKIT_ADMIN_PASSWORD=$PASSWORD "$BIN" serve --bind "127.0.0.1:$PORT" --database "$DB" \
  --rate-limit 0 --login-rate-limit 0 --monitor >"$TMP/serve.log" 2>&1 &
SERVER_PID=$!
stop() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; rm -rf "$TMP"; }
trap stop EXIT

for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null

# An operator API key: long-lived, so the run cannot outlive an access token.
KEY=$("$BIN" apikey --database "$DB" create schemathesis --role admin 2>/dev/null)

# One stored monitor with results, uptime and an incident with its alert (written as the engine
# writes them), so the schemas of /results, /uptime and /incidents are checked on real rows.
curl -fsS -o /dev/null -X POST "http://127.0.0.1:$PORT/api/v1/monitors" -H "Authorization: Bearer $KEY" \
  -H 'content-type: application/json' \
  -d "{\"name\": \"seeded\", \"kind\": \"tcp\", \"target\": \"127.0.0.1:$PORT\", \"interval\": \"1h\"}"
python3 - "$TMP/fuzz.db" <<'PY'
import json, sqlite3, sys, time
now = int(time.time() * 1000)
day, hour = now - now % 86400000, now - now % 3600000
db = sqlite3.connect(sys.argv[1], timeout=30)
for i, status in enumerate(["up", "down", "down", "up"]):
    db.execute("INSERT INTO results (monitor, at_ms, status, response_time_ms, reason) VALUES (?, ?, ?, ?, ?)",
               ("seeded", now - (4 - i) * 60000, status, 1.5, None if status == "up" else "connection refused"))
for span, bucket in (("hour", hour), ("day", day)):
    db.execute("INSERT INTO uptime_buckets (monitor, span, bucket_ms, up, down, unknown, latency_sum_ms) "
               "VALUES ('seeded', ?, ?, 2, 2, 0, 6.0)", (span, bucket))
db.execute("INSERT INTO monitor_state (monitor, status, consecutive_failures, consecutive_successes, "
           "last_check_ms, last_reason, last_response_time_ms) VALUES ('seeded', 'up', 0, 1, ?, NULL, 1.5)", (now - 60000,))
db.execute("INSERT INTO incidents (id, monitor, started_ms, resolved_ms, reason) VALUES "
           "('inc_seeded', 'seeded', ?, ?, 'connection refused')", (now - 180000, now - 60000))
payload = json.dumps({"failed_condition": {"condition": "connected", "values": {"connected": False}}})
db.execute("INSERT INTO outbox (id, seq, monitor, destination, incident_id, event, payload, created_ms, "
           "attempts, next_attempt_ms, delivered_ms) VALUES ('msg_seeded', 1, 'seeded', 'hook', 'inc_seeded', "
           "'trigger', ?, ?, 1, ?, ?)", (payload, now - 180000, now - 180000, now - 179000))
db.commit()
PY

# Two answers are correct for a schema-valid request and are allowed: 412 when If-Match names an
# ETag the server does not have, and 422 when an Idempotency-Key is reused with another body (the
# generator reuses header values). Everything else keeps schemathesis' defaults.
cat >"$TMP/schemathesis.toml" <<'TOML'
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "422", "429"]
TOML

# run from the temp dir so schemathesis' example database does not land in the repository
cd "$TMP"
"$ST" --config-file "$TMP/schemathesis.toml" run "http://127.0.0.1:$PORT/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $KEY" \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-40}" \
  --seed 1 \
  --request-timeout 10 \
  "$@"
