"""The same inventory API on PostgreSQL, the way the seeds write one: FastAPI + uvicorn, a database
connection opened per request (here with psycopg), and the BaseHTTPMiddleware JWT check from the
course notes (PyJWT, HS256). Same routes and JSON as fastapi_app.py."""
import json
import os

import jwt
import psycopg
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row
from starlette.middleware.base import BaseHTTPMiddleware

SECRET_KEY = os.environ.get("BENCH_SECRET", "secret")
ALGORITHM = "HS256"
DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1/fastapi")

app = FastAPI()


class AuthMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):
        if request.url.path in {"/health", "/docs", "/openapi.json"}:
            return await call_next(request)
        authorization = request.headers.get("Authorization")
        if not authorization or not authorization.startswith("Bearer "):
            return JSONResponse(status_code=401, content={"detail": "Unauthorized"})
        token = authorization.replace("Bearer ", "")
        try:
            payload = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM])
            request.state.user_id = payload["sub"]
        except jwt.PyJWTError:
            return JSONResponse(status_code=401, content={"detail": "Invalid or expired token"})
        return await call_next(request)


app.add_middleware(AuthMiddleware)


def get_db():
    return psycopg.connect(DSN, row_factory=dict_row)


def row_to_dict(row):
    d = dict(row)
    d["tags"] = json.loads(d["tags"])
    d["labels"] = json.loads(d["labels"])
    return d


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
