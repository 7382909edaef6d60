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

OPSKIT_ADMIN_PASSWORD=$PASSWORD "$BIN" serve --bind "127.0.0.1:$PORT" --database "$DB" \
  --rate-limit 0 --login-rate-limit 0 >"$TMP/serve.log" 2>&1 &
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
