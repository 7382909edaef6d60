"""Seeds the benchmark inventory through `opskit serve`'s API, then copies the same rows into the
FastAPI peer's database, so both answer the same data.

    seed.py PORT N OUT_PREFIX sqlite PATH      (fastapi_app.py's SQLite file)
    seed.py PORT N OUT_PREFIX postgres DSN     (fastapi_pg_app.py's database)

Writes OUT_PREFIX + "token" (opskit's access token) and OUT_PREFIX + "id" (a row in the middle)."""
import http.client
import json
import sys

port, n, out, kind, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def call(method, path, body=None, token=None):
    h = {"content-type": "application/json"}
    if token:
        h["authorization"] = "Bearer " + token
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    assert r.status < 300, (r.status, data)
    return json.loads(data) if data else None


tok = call("POST", "/auth/login", {"username": "admin", "password": "bench-password-1"})["access_token"]
envs, oses = ["prod", "staging", "dev"], ["linux", "windows"]
for i in range(n):
    call("POST", "/api/v1/servers", {"hostname": f"host{i:05d}.example.com", "ip": f"10.{i//65536}.{(i//256)%256}.{i%256}",
         "env": envs[i % 3], "os_type": oses[i % 2], "tags": ["bench", f"rack{i%10}"], "labels": {"team": "ops"}}, tok)
rows, page = [], 1
while True:
    r = call("GET", f"/api/v1/servers?per_page=200&page={page}", token=tok)
    rows += r["data"]
    if page >= r["total_pages"]:
        break
    page += 1
values = [(s["id"], s["hostname"], s["ip"], s["env"], s["status"], s["os_type"],
           json.dumps(s["tags"]), json.dumps(s["labels"]), s["created_at"], s["updated_at"]) for s in rows]
create = ("CREATE TABLE servers (id TEXT PRIMARY KEY, hostname TEXT UNIQUE, ip TEXT, env TEXT, status TEXT, "
          "os_type TEXT, tags TEXT, labels TEXT, created_at TEXT, updated_at TEXT)")
if kind == "sqlite":
    import sqlite3
    db = sqlite3.connect(target)
    db.execute(create)
    db.executemany("INSERT INTO servers VALUES (?,?,?,?,?,?,?,?,?,?)", values)
    db.commit()
else:
    import psycopg
    with psycopg.connect(target) as db:
        db.execute(create)
        db.cursor().executemany("INSERT INTO servers VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", values)
with open(out + "token", "w") as f:
    f.write(tok)
with open(out + "id", "w") as f:
    f.write(rows[len(rows) // 2]["id"])
