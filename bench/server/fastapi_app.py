"""The same inventory API the way the seeds write it: FastAPI + uvicorn, sqlite3, and the
BaseHTTPMiddleware JWT check from the course notes (PyJWT, HS256)."""
import json
import os
import sqlite3

import jwt
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.middleware.base import BaseHTTPMiddleware

SECRET_KEY = os.environ.get("BENCH_SECRET", "secret")
ALGORITHM = "HS256"
DB = os.environ.get("BENCH_DB", "fastapi.db")

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
    conn = sqlite3.connect(DB)
    conn.row_factory = sqlite3.Row
    return conn


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
    conn = get_db()
    row = conn.execute("SELECT * FROM servers WHERE id = ? OR hostname = ?", (server_id, server_id)).fetchone()
    conn.close()
    if row is None:
        raise HTTPException(status_code=404, detail="Server not found")
    return row_to_dict(row)


@app.get("/api/v1/servers")
def list_servers(page: int = 1, per_page: int = 20):
    conn = get_db()
    total = conn.execute("SELECT COUNT(*) FROM servers").fetchone()[0]
    rows = conn.execute(
        "SELECT * FROM servers ORDER BY created_at LIMIT ? OFFSET ?", (per_page, (page - 1) * per_page)
    ).fetchall()
    conn.close()
    return {
        "data": [row_to_dict(r) for r in rows],
        "page": page,
        "per_page": per_page,
        "total": total,
        "total_pages": (total + per_page - 1) // per_page,
    }
