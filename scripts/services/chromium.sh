# shellcheck shell=bash
# Sourced by scripts/test: Debian's Chromium, for the status-page test that loads /status of a
# running `opskit serve` in a real headless browser (crates/opskit/tests/opskit/status_browser.rs).
# Nothing is started here: each test runs its own short-lived headless browser.
#
# Exports:
#   OPSKIT_TEST_CHROMIUM   the chromium binary

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y chromium >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; })
fi

if command -v chromium >/dev/null 2>&1; then
  OPSKIT_TEST_CHROMIUM="$(command -v chromium)"
  export OPSKIT_TEST_CHROMIUM
else
  echo "chromium is not installed (run scripts/test as root to install it): the status-page browser test will skip, or fail under CI=true" >&2
fi
