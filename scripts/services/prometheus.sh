# shellcheck shell=bash
# Sourced by scripts/test: Debian's Prometheus on 127.0.0.1 for the `opskit prom` tests. It
# scrapes itself every second and evaluates a rules file every second that holds one alert that
# always fires (`expr: vector(1)`) and one recording rule; a second job scrapes a loopback port
# nobody listens on, so one target is always down; a third scrapes the /metrics of a test
# `opskit serve` (built here, basic auth as admin), unless the binary cannot be built.
#
# Exports:
#   OPSKIT_TEST_PROMETHEUS_URL    http://127.0.0.1:PORT (ready: answers /-/ready and has scraped `up`)
#   OPSKIT_TEST_PROMETHEUS_SERVE  1 when it scrapes the test `opskit serve` (job "opskit")

if ! command -v prometheus >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y prometheus >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y prometheus >/dev/null; })
fi

if command -v prometheus >/dev/null 2>&1; then
  _prom_dir="$OPSKIT_TEST_TMP/prometheus"
  mkdir -p "$_prom_dir/tsdb"
  _prom_port=$(free_port)
  _prom_down_port=$(free_port)

  # a test `opskit serve` to scrape (its /metrics wants a credential: the admin's, by basic auth)
  _prom_serve_pid=
  _prom_serve_job=
  if cargo build -q -p opskit --locked 2>"$_prom_dir/build.log"; then
    _prom_serve_port=$(free_port)
    _prom_serve_pw="pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    OPSKIT_ADMIN_PASSWORD=$_prom_serve_pw target/debug/opskit serve --bind "127.0.0.1:$_prom_serve_port" \
      --database "sqlite://$_prom_dir/serve.db" >"$_prom_dir/serve.log" 2>&1 &
    _prom_serve_pid=$!
    for _try in $(seq 1 300); do
      if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$_prom_serve_port/health', timeout=1)" 2>/dev/null; then
        break
      fi
      if [ "$_try" = 300 ]; then echo "opskit serve did not start:" >&2; cat "$_prom_dir/serve.log" >&2; exit 1; fi
      sleep 0.1
    done
    _prom_serve_job="- job_name: opskit
  basic_auth: {username: admin, password: \"$_prom_serve_pw\"}
  static_configs: [{targets: [\"127.0.0.1:$_prom_serve_port\"]}]"
  else
    echo "note: opskit could not be built; Prometheus scrapes itself only" >&2
  fi
  cat >"$_prom_dir/rules.yml" <<'YAML'
groups:
- name: opskit-test
  interval: 1s
  rules:
  - alert: OpskitTestAlwaysFiring
    expr: vector(1)
    labels: {severity: info}
    annotations: {summary: "always firing, for the opskit prom tests"}
  - record: opskit_test:up:sum
    expr: sum(up)
YAML
  cat >"$_prom_dir/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$_prom_dir/rules.yml"]
scrape_configs:
- job_name: prometheus
  static_configs: [{targets: ["127.0.0.1:$_prom_port"]}]
- job_name: nothing-listens
  static_configs: [{targets: ["127.0.0.1:$_prom_down_port"]}]
$_prom_serve_job
YAML
  prometheus --config.file="$_prom_dir/prometheus.yml" --storage.tsdb.path="$_prom_dir/tsdb" \
    --web.listen-address="127.0.0.1:$_prom_port" >"$_prom_dir/prometheus.log" 2>&1 &
  _prom_pid=$!

  _prom_stop() {
    kill "$_prom_pid" $_prom_serve_pid 2>/dev/null || true
    wait "$_prom_pid" $_prom_serve_pid 2>/dev/null || true
  }
  on_exit _prom_stop

  # Ready (with a deadline): /-/ready answers, it has scraped itself (up == 1) and the alert
  # fires, so tests need not wait.
  for _try in $(seq 1 300); do
    if python3 - "$_prom_port" "$([ -n "$_prom_serve_pid" ] && echo 2 || echo 1)" <<'PY' 2>/dev/null; then break; fi
import json, sys, urllib.parse, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
urllib.request.urlopen(base + "/-/ready", timeout=1).read()
up = urllib.parse.quote('up{job=~"prometheus|opskit"} == 1')
body = json.load(urllib.request.urlopen(base + "/api/v1/query?query=" + up, timeout=1))
alerts = json.load(urllib.request.urlopen(base + "/api/v1/alerts", timeout=1))
firing = [a for a in alerts["data"]["alerts"] if a["state"] == "firing"]
sys.exit(0 if len(body["data"]["result"]) == int(sys.argv[2]) and firing else 1)
PY
    if [ "$_try" = 300 ]; then
      echo "prometheus did not become ready on port $_prom_port:" >&2
      cat "$_prom_dir/prometheus.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  export OPSKIT_TEST_PROMETHEUS_URL="http://127.0.0.1:$_prom_port"
  if [ -n "$_prom_serve_pid" ]; then export OPSKIT_TEST_PROMETHEUS_SERVE=1; fi
fi
