#!/usr/bin/env python3
"""Tools for the status page (`/status` of `opskit serve --monitor-config`), not tests.

    scripts/status-page.py screenshot [--out docs/status-page.png]
        Remakes the README's screenshot: eight monitors in three groups, one of them down with an
        open incident, 30 days of history. Needs Chromium (scripts/services/chromium.sh installs
        it; OPSKIT_TEST_CHROMIUM or `chromium` on PATH).

    scripts/status-page.py measure [--monitors 200] [--runs 20]
        Times GET /status with N monitors, each with 30 daily and 24 hourly uptime buckets and 60
        results, on SQLite; prints the median, min, max and the page size.

Both run the opskit binary given by --opskit (default target/release/opskit: build it first with
`cargo build --release`) on loopback ports only, with a throwaway database in a temporary
directory. The history is written straight into the database between a first start (which
creates the schema) and a second one.
"""

import argparse
import http.server
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

DAY = 86_400_000
HOUR = 3_600_000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def now_ms():
    return int(time.time() * 1000)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def up_service():
    """A TCP listener that accepts and drops every connection: a service that is up."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)

    def run():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            c.close()

    threading.Thread(target=run, daemon=True).start()
    return "127.0.0.1:%d" % s.getsockname()[1]


def unhealthy_service():
    """An HTTP service whose /health answers 503: its condition fails."""

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"db pool exhausted"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return "127.0.0.1:%d" % srv.server_address[1]


class Serve:
    """`opskit serve` on 127.0.0.1:0, its address read from its JSON log."""

    def __init__(self, opskit, workdir, config, extra=()):
        self.db_path = os.path.join(workdir, "serve.db")
        env = dict(os.environ)
        env.pop("OPSKIT_DATABASE", None)
        env.pop("OPSKIT_LOG", None)
        env["OPSKIT_ADMIN_PASSWORD"] = "status-page-script-1"
        self.proc = subprocess.Popen(
            [opskit, "serve", "--bind", "127.0.0.1:0", "--database", "sqlite://" + self.db_path,
             "--log-format", "json", "--rate-limit", "0", "--monitor-config", config, *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        self.addr = None
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("fields", {}).get("message") == "opskit serve listening":
                self.addr = v["fields"]["addr"]
                break
        if self.addr is None:
            self.stop()
            sys.exit("opskit serve did not start:\n" + "".join(seen))
        # keep draining stderr so the server never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def get(self, path, timeout=30):
        with urllib.request.urlopen("http://%s%s" % (self.addr, path), timeout=timeout) as r:
            return r.status, r.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def with_schema(opskit, workdir, config, write_history):
    """Starts serve once (it creates the schema), stops it, writes history, starts it again."""
    first = Serve(opskit, workdir, config)
    db_path = first.db_path
    first.stop()
    db = sqlite3.connect(db_path)
    with db:
        write_history(db)
    db.close()
    return Serve(opskit, workdir, config, ["--status-page", "public"])


def wait_for_page(serve, needles, seconds=60):
    deadline = time.monotonic() + seconds
    body = b""
    while time.monotonic() < deadline:
        try:
            status, body = serve.get("/status", timeout=5)
            if status == 200 and all(n.encode() in body for n in needles):
                return body
        except OSError:
            pass
        time.sleep(0.25)
    sys.exit("the status page never showed %r:\n%s" % (needles, body[:2000].decode(errors="replace")))


def chromium_binary():
    for c in (os.environ.get("OPSKIT_TEST_CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser")):
        if c:
            return c
    sys.exit("Chromium not found: run scripts/services/chromium.sh as root, or set OPSKIT_TEST_CHROMIUM")


def screenshot(args):
    chromium = chromium_binary()
    monitors = [
        ("Web", "shop-frontend", True), ("Web", "checkout-api", True), ("Web", "payments-api", False),
        ("Data", "postgres-primary", True), ("Data", "redis-cache", True), ("Data", "search-cluster", True),
        ("Internal", "ci-runner", True), ("Internal", "vpn-gateway", True),
    ]
    bad_days = {(2, 0): 200, (2, 1): 40, (4, 3): 12, (1, 12): 9, (5, 20): 3, (7, 6): 25}
    up, unhealthy = up_service(), unhealthy_service()
    # the alert goes to a webhook nobody listens on: it is recorded (with the failed condition)
    # whether or not it is delivered
    toml = '[destinations.ops]\ntype = "webhook"\nurl = "http://127.0.0.1:%d/hook"\n\n' % closed_port()
    for group, name, ok in monitors:
        if ok:
            toml += '[[monitor]]\nname = "%s"\ngroup = "%s"\nkind = "tcp"\ntarget = "%s"\ninterval = "1h"\n\n' % (name, group, up)
        else:
            toml += ('[[monitor]]\nname = "%s"\ngroup = "%s"\nkind = "http"\ntarget = "http://%s/health"\n'
                     'interval = "1s"\nconditions = [".status == 200"]\nalerts = ["ops"]\n\n') % (name, group, unhealthy)

    def history(db):
        now = now_ms()
        today = now - now % DAY
        for mi, (_, name, _) in enumerate(monitors):
            for d in range(30):
                bad = bad_days.get((mi, d), 0)
                db.execute("INSERT INTO uptime_buckets (monitor, span, bucket_ms, up, down, unknown, latency_sum_ms) VALUES (?, 'day', ?, ?, ?, 0, ?)",
                           (name, today - d * DAY, 1440 - bad, bad, 1440.0 * (20.0 + mi * 7.0)))
            for h in range(24):
                db.execute("INSERT INTO uptime_buckets (monitor, span, bucket_ms, up, down, unknown, latency_sum_ms) VALUES (?, 'hour', ?, 60, 0, 0, 1500.0)",
                           (name, now - now % HOUR - h * HOUR))
            db.execute("INSERT INTO monitor_state (monitor, status, consecutive_failures, consecutive_successes, last_check_ms, last_response_time_ms) VALUES (?, 'up', 0, 60, ?, ?)",
                       (name, now - 30_000, 20.0 + mi * 6.0))
            for i in range(60):
                base = 18.0 + mi * 6.0
                wobble = (i * 37 + mi * 11) % 23
                db.execute("INSERT INTO results (monitor, at_ms, status, response_time_ms) VALUES (?, ?, 'up', ?)",
                           (name, now - (120 - i * 2) * 60_000, base + wobble + (40.0 if i % 17 == 5 else 0.0)))

    with tempfile.TemporaryDirectory() as work:
        config = os.path.join(work, "monitor.toml")
        with open(config, "w") as f:
            f.write(toml)
        serve = with_schema(args.opskit, work, config, history)
        try:
            wait_for_page(serve, ["Open incidents", "Failed condition"])
            out = os.path.abspath(args.out)
            subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-default-apps", "--disable-extensions",
                 "--user-data-dir=" + os.path.join(work, "chromium"),
                 "--screenshot=" + out, "--window-size=1200,1600", "--hide-scrollbars",
                 "http://%s/status" % serve.addr],
                check=True, timeout=90, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            serve.stop()
    print("wrote %s (%d bytes)" % (out, os.path.getsize(out)))


def measure(args):
    n = args.monitors
    up = up_service()
    toml = "".join(
        '[[monitor]]\nname = "m%03d"\ngroup = "g%d"\nkind = "tcp"\ntarget = "%s"\ninterval = "1h"\n\n' % (i, i % 10, up)
        for i in range(n))

    def history(db):
        now = now_ms()
        for i in range(n):
            m = "m%03d" % i
            db.execute("INSERT INTO monitor_state (monitor, status, consecutive_failures, consecutive_successes, last_check_ms, last_response_time_ms) VALUES (?, 'up', 0, 1, ?, 5.0) ON CONFLICT (monitor) DO NOTHING", (m, now))
            for d in range(1, 30):
                db.execute("INSERT INTO uptime_buckets (monitor, span, bucket_ms, up, down, unknown, latency_sum_ms) VALUES (?, 'day', ?, 1440, 1, 0, 7200.0)", (m, now - now % DAY - d * DAY))
            for h in range(1, 24):
                db.execute("INSERT INTO uptime_buckets (monitor, span, bucket_ms, up, down, unknown, latency_sum_ms) VALUES (?, 'hour', ?, 60, 0, 0, 300.0)", (m, now - now % HOUR - h * HOUR))
            for r in range(60):
                db.execute("INSERT INTO results (monitor, at_ms, status, response_time_ms) VALUES (?, ?, 'up', 5.0)", (m, now - 3_600_000 - r * 60_000))

    with tempfile.TemporaryDirectory() as work:
        config = os.path.join(work, "monitor.toml")
        with open(config, "w") as f:
            f.write(toml)
        serve = with_schema(args.opskit, work, config, history)
        try:
            wait_for_page(serve, ["m%03d" % (n - 1)])
            times, size = [], 0
            for _ in range(args.runs):
                t = time.perf_counter()
                status, body = serve.get("/status")
                times.append((time.perf_counter() - t) * 1000)
                if status != 200:
                    sys.exit("GET /status answered %d" % status)
                size = len(body)
        finally:
            serve.stop()
    print("GET /status, %d monitors: median %.1f ms (min %.1f, max %.1f) over %d, %d bytes"
          % (n, statistics.median(times), min(times), max(times), args.runs, size))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--opskit", default=os.path.join(ROOT, "target", "release", "opskit"),
                   help="the opskit binary (default: target/release/opskit)")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("screenshot", help="remake docs/status-page.png")
    s.add_argument("--out", default=os.path.join(ROOT, "docs", "status-page.png"))
    m = sub.add_parser("measure", help="time GET /status with many monitors")
    m.add_argument("--monitors", type=int, default=200)
    m.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    if not os.access(args.opskit, os.X_OK):
        sys.exit("%s is not an executable: build it with `cargo build --release`, or pass --opskit" % args.opskit)
    {"screenshot": screenshot, "measure": measure}[args.cmd](args)


if __name__ == "__main__":
    main()
