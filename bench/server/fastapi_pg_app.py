"""The same inventory API on PostgreSQL, the way the seeds write one: FastAPI + uvicorn, a database
connection opened per request (here with psycopg), and the BaseHTTPMiddleware JWT check from the
course notes (PyJWT, HS256). Same routes and JSON as fastapi_app.py."""
import os

import psycopg
from fastapi import FastAPI, HTTPException
from psycopg.rows import dict_row

# the same JWT middleware and row shape as the SQLite app (one copy of the course notes' code)
from fastapi_app import AuthMiddleware, row_to_dict

DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1/fastapi")

app = FastAPI()
app.add_middleware(AuthMiddleware)


def get_db():
    return psycopg.connect(DSN, row_factory=dict_row)


@app.get("/health")
def health():
    return {"status": "ok"}


@app.get("/api/v1/servers/{server_id}")
def get_server(server_id: str):
    with get_db() as conn:
        row = conn.execute(
            "SELECT * FROM servers WHERE id = %s OR hostname = %s", (server_id, server_id)
        ).fetchone()
    if row is None:
        raise HTTPException(status_code=404, detail="Server not found")
    return row_to_dict(row)


@app.get("/api/v1/servers")
def list_servers(page: int = 1, per_page: int = 20):
    with get_db() as conn:
        total = conn.execute("SELECT COUNT(*) AS n FROM servers").fetchone()["n"]
        rows = conn.execute(
            "SELECT * FROM servers ORDER BY created_at LIMIT %s OFFSET %s",
            (per_page, (page - 1) * per_page),
        ).fetchall()
    return {
        "data": [row_to_dict(r) for r in rows],
        "page": page,
        "per_page": per_page,
        "total": total,
        "total_pages": (total + per_page - 1) // per_page,
    }
