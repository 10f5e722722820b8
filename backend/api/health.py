"""Liveness and readiness."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import mongoengine
from apiflask import APIBlueprint
from flask import current_app

from backend.auth import public
from backend.connections import redis_client

bp = APIBlueprint("health", __name__, tag="Health")

READY_DEADLINE_SECONDS = 1.8
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")


def _check_redis(client: Any) -> None:
    client.ping()


def _check_mongo() -> None:
    mongoengine.get_connection().admin.command("ping")


@bp.get("/healthz")
@bp.doc(summary="Liveness")
@public
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@bp.get("/readyz")
@bp.doc(summary="Readiness: Redis and MongoDB answer", responses=[503])
@public
def readyz() -> tuple[dict[str, Any], int]:
    """Check both stores at once, so one that hangs costs at most the deadline."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def in_app(check: Any, *args: Any) -> None:
        with app.app_context():
            check(*args)

    checks = {
        "redis": _pool.submit(in_app, _check_redis, redis_client()),
        "mongodb": _pool.submit(in_app, _check_mongo),
    }
    down: dict[str, str] = {}
    for name, future in checks.items():
        try:
            future.result(timeout=READY_DEADLINE_SECONDS)
        except FutureTimeout:
            down[name] = "did not answer in time"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            down[name] = type(exc).__name__
    if down:
        names = " and ".join(sorted(down))
        return {
            "error": "unavailable",
            "message": f"Not ready: {names} down.",
            "details": down,
        }, 503
    return {"status": "ready", "checks": {"redis": "ok", "mongodb": "ok"}}, 200
