#!/usr/bin/env bash
# The README's Python receiver snippet (## notify) verifies what `opskit webhook sign` produces,
# and refuses a tampered body: proof that a receiver in another language can check our webhooks.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v python3 >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then echo "python3 is required for this check" >&2; exit 1; fi
  echo "skipping: python3 not installed"; exit 0
fi

cargo build -q -p opskit --locked
bin=target/debug/opskit
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The first ```python block after "## notify" in the README.
awk '/^## notify/{s=1} s&&/^```python/{p=1;next} p&&/^```/{exit} p' README.md > "$work/receiver.py"
grep -q 'def verify' "$work/receiver.py"

secret="whsec_$(python3 -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())')"
printf '{"event":"backup.done","host":"db-1","note":"caf\xc3\xa9"}' > "$work/body.json"
HOOK_SECRET="$secret" "$bin" webhook sign --secret env:HOOK_SECRET --data "@$work/body.json" > "$work/headers.txt"

cat >> "$work/receiver.py" <<'PY'

import sys
secret, headers_file, body_file = sys.argv[1:4]
headers = {}
for line in open(headers_file):
    name, _, value = line.partition(":")
    headers[name.strip().lower()] = value.strip()
body = open(body_file, "rb").read()
ok = verify(secret, headers, body)
tampered = verify(secret, headers, body.replace(b"db-1", b"db-2"))
print(f"genuine verified: {ok}; tampered verified: {tampered}")
sys.exit(0 if ok and not tampered else 1)
PY
python3 "$work/receiver.py" "$secret" "$work/headers.txt" "$work/body.json"
