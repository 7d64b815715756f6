"""The least a verified proof of purchase must do, served the way vipsync serves
``POST /v1/proofs`` (FastAPI under uvicorn, a synchronous route in the thread pool): the
floor run of ``bench/proofs_bench.py`` measures it on the same store, so the proof's own
figures can be read against what this machine gives for the protocol alone.

Per request: the body parsed into a pydantic model, the bearer token checked by its
digest, one Redis script call (the rate limit), one query finding the order by store,
name and postal code with its units and their tags, one decision row inserted, one commit.
No rules, no member, no tagging, no logging: nothing vipsync could leave out.

    uvicorn proofs_floor_app:create_app --factory  (VIPSYNC_DATABASE_URL, VIPSYNC_REDIS_URL,
    FLOOR_TOKEN_SHA256 set by the benchmark)
"""

from __future__ import annotations

import hashlib
import os
import queue
from datetime import UTC, datetime

import psycopg
import redis
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

_FIND = (
    "SELECT o.id, u.id, t.benefit_status, t.extended_warranty_end FROM orders o "
    "JOIN units u ON u.order_id = o.id LEFT JOIN unit_tags t ON t.unit_id = u.id "
    "WHERE o.store_key = %s AND o.name = %s AND o.shipping_postal_code = %s ORDER BY u.id"
)
_RECORD = (
    "INSERT INTO proof_decisions (decided_at, client, order_id, store_key, method, outcome, reason) "
    "VALUES (%s, 'floor', %s, 'shopify-us', 'postal_code', %s, 'floor run')"
)


class Proof(BaseModel):
    member_email: str
    order_id: str
    postal_code: str


def create_app() -> FastAPI:
    url = os.environ["VIPSYNC_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    token = os.environ["FLOOR_TOKEN_SHA256"]
    pool: queue.Queue[psycopg.Connection] = queue.Queue()
    for _ in range(8):  # more than the thread pool runs at once in practice
        pool.put(psycopg.connect(url))
    limiter = redis.Redis.from_url(os.environ.get("VIPSYNC_REDIS_URL", "redis://127.0.0.1:6379/0"))
    count = limiter.register_script(
        "local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 60) return n"
    )
    key = f"proofs-floor:{os.getpid()}"
    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.post("/v1/proofs")
    def prove(body: Proof, authorization: str = Header("")) -> dict:
        if hashlib.sha256(authorization.removeprefix("Bearer ").encode()).hexdigest() != token:
            raise HTTPException(401)
        count(keys=[key])
        conn = pool.get()
        try:
            rows = conn.execute(_FIND, ("shopify-us", body.order_id, body.postal_code)).fetchall()
            outcome = "verified" if rows else "refused"
            conn.execute(_RECORD, (datetime.now(UTC), rows[0][0] if rows else None, outcome))
            conn.commit()
        finally:
            pool.put(conn)
        if not rows:
            raise HTTPException(404)
        return {
            "outcome": outcome,
            "units": [{"unit_id": u, "benefit_status": s, "extended_warranty_end": e} for _, u, s, e in rows],
        }

    return app
