"""A GitHub REST API stand-in for bench/apis: GET /repos/octo/hello/issues with 1,000 open
items (every fifth a pull request, as GitHub mixes them in), Link paging with per_page kept
(default 30, at most 100), x-ratelimit-* headers, ETag and 304 on If-None-Match.

Page bodies are built once at start-up, so the server is not what is measured. HTTP/1.1 with
keep-alive. Prints its port on stdout.
"""
import hashlib
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

TOTAL = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


def item(n):
    month, day = 1 + n % 12, 1 + n % 28
    v = {
        "id": 1_000_000 + n, "node_id": f"I_kw{n}", "number": n,
        "title": f"Issue {n}: disk usage above 90% on web{n % 40:02d}",
        "body": "Seen by the monitor.\n\n" + "details " * 40, "state": "open",
        "state_reason": None, "locked": False,
        "labels": [{"id": 1, "name": "bug", "color": "d73a4a"}] if n % 3 == 0 else [],
        "assignee": None, "assignees": [],
        "user": {"login": f"user{n % 7}", "id": n % 7, "type": "User", "site_admin": False},
        "milestone": None, "comments": n % 4,
        "created_at": f"2026-{month:02d}-{day:02d}T{n % 24:02d}:00:00Z",
        "updated_at": f"2026-{month:02d}-{day:02d}T{(n + 1) % 24:02d}:00:00Z",
        "closed_at": None, "author_association": "MEMBER",
        "html_url": f"https://github.com/octo/hello/issues/{n}",
        "url": f"https://api.github.com/repos/octo/hello/issues/{n}",
    }
    if n % 5 == 0:
        v["pull_request"] = {"url": f"https://api.github.com/repos/octo/hello/pulls/{n}",
                             "html_url": f"https://github.com/octo/hello/pull/{n}"}
    return v


ITEMS = [item(n) for n in range(TOTAL, 0, -1)]
PAGES = {}


def page(number, per_page):
    key = (number, per_page)
    if key not in PAGES:
        start = (number - 1) * per_page
        body = json.dumps(ITEMS[start:start + per_page]).encode()
        PAGES[key] = (body, '"%s"' % hashlib.sha1(body).hexdigest())
    return PAGES[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body are separate writes: without this, Nagle + delayed ACK stall keep-alive
    # answers and every client measures the same stall (see bench/cli/server.py)
    disable_nagle_algorithm = True
    used = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        u = urlparse(self.path)
        if u.path != "/repos/octo/hello/issues":
            return self.reply(404, b'{"message":"Not Found"}', {})
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        per_page = max(1, min(100, int(q.get("per_page", 30))))
        number = max(1, int(q.get("page", 1)))
        last = max(1, -(-TOTAL // per_page))
        body, etag = page(number, per_page)
        headers = {"etag": etag}
        links = []
        base = f"http://{self.headers['host']}/repositories/1296269/issues?"
        if number < last:
            links.append(f'<{base}{urlencode({**q, "page": number + 1})}>; rel="next"')
            links.append(f'<{base}{urlencode({**q, "page": last})}>; rel="last"')
        if links:
            headers["link"] = ", ".join(links)
        if self.headers.get("if-none-match") == etag:
            return self.reply(304, b"", headers, count=False)
        self.reply(200, body, headers)

    def reply(self, status, body, headers, count=True):
        if count:
            Handler.used += 1
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("x-ratelimit-limit", "5000")
        self.send_header("x-ratelimit-remaining", str(5000 - Handler.used))
        self.send_header("x-ratelimit-used", str(Handler.used))
        self.send_header("x-ratelimit-reset", str(int(time.time()) + 3600))
        self.send_header("x-ratelimit-resource", "core")
        if status != 304:
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(body)))
        self.end_headers()
        if status != 304:
            self.wfile.write(body)

    # /repositories/{id}/issues is the same list (the form GitHub's Link headers use)
    def parse_request(self):
        ok = super().parse_request()
        if ok and self.path.startswith("/repositories/1296269/issues"):
            self.path = "/repos/octo/hello/issues" + self.path[len("/repositories/1296269/issues"):]
        return ok


for n in range(1, -(-TOTAL // 100) + 2):
    page(n, 100)
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
