"""A worker's metric history, downsampled on the server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.exceptions import HTTPError
from apiflask.fields import AwareDateTime, Integer, List, String
from apiflask.validators import Range
from marshmallow import fields as ma_fields

from backend import history
from backend.api.workers import worker_or_404
from backend.auth import require
from backend.connections import settings

bp = APIBlueprint("metrics", __name__, url_prefix="/api/workers", tag="History")

DEFAULT_SPAN = timedelta(hours=1)


class MetricsQuery(Schema):
    since = AwareDateTime(default_timezone=UTC)
    until = AwareDateTime(default_timezone=UTC)
    step = Integer(validate=Range(min=1, max=86400 * 7))


class MetricsOut(Schema):
    worker_id = String()
    step = Integer()
    since = AwareDateTime()
    until = AwareDateTime()
    metrics = List(String())
    points = List(ma_fields.Dict())


@bp.get("/<worker_id>/metrics")
@require("user")
@bp.input(MetricsQuery, location="query", arg_name="query")
@bp.output(MetricsOut)
@bp.doc(summary="A worker's history, at most 500 points", responses=[400, 401, 404])
def worker_metrics(worker_id: str, query: dict[str, Any]) -> dict[str, Any]:
    worker = worker_or_404(worker_id)
    until = query.get("until") or datetime.now(UTC)
    since = query.get("since") or until - DEFAULT_SPAN
    if since >= until:
        raise _bad_range("since must be before until")
    oldest = datetime.now(UTC) - timedelta(days=settings().history_retention_days)
    if until < oldest:
        raise _bad_range(
            f"the range ends before the history kept "
            f"({settings().history_retention_days} days)"
        )
    since = max(since, oldest)
    step = history.choose_step(since, until, query.get("step"))
    points = history.read_points(str(worker.pk), since, until, step)
    return {
        "worker_id": str(worker.pk),
        "step": step,
        "since": since,
        "until": until,
        "metrics": list(history.METRICS),
        "points": [{**p, "t": p["t"].isoformat()} for p in points],
    }


def _bad_range(reason: str) -> HTTPError:
    return HTTPError(
        400,
        f"The time range is not valid: {reason}.",
        detail={"query": {"since": [reason]}},
        extra_data={"error": "validation_error"},
    )
