"""Fixture API for bench/cli: one small JSON document (also after ?ms=N of work at /work) and a
paged CMDB-style host list.

HTTP/1.1 with keep-alive, so clients that reuse connections can. Prints its port on stdout.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SMALL = json.dumps({"status": "ok", "service": "inventory", "version": "1.4.2"}).encode()
PAGES = 100


def page(n, per_page):
    start = (n - 1) * per_page
    hosts = [
        {
            "id": i,
            "hostname": f"web{i:05d}",
            "os_type": "linux" if i % 3 else "windows",
            "status": "active",
            "net": {"ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", "vlan": 100 + i % 7},
            "owner": {"team": "ops", "email": "ops@example.com"},
        }
        for i in range(start, start + per_page)
    ] if 1 <= n <= PAGES else []
    return json.dumps({"hosts": hosts, "page": n, "per_page": per_page, "total_pages": PAGES}).encode()


CACHE = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body are separate writes: without this, Nagle + delayed ACK add ~40 ms to
    # every keep-alive response and every client measures the same stall
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/small":
            body = SMALL
        elif url.path == "/work":
            # a service that takes some time to answer (?ms=N), as a real health check does
            time.sleep(int(parse_qs(url.query).get("ms", ["0"])[0]) / 1000)
            body = SMALL
        elif url.path == "/api/v1/hosts":
            q = parse_qs(url.query)
            n = int(q.get("page", ["1"])[0])
            per = int(q.get("per_page", ["50"])[0])
            key = (n, per)
            if key not in CACHE:
                CACHE[key] = page(n, per)
            body = CACHE[key]
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()
