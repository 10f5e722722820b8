"""Metric history: one sample per worker per refresh, read back downsampled.

On a real MongoDB the samples live in a time-series collection (granularity
minutes, expiring after ``HISTORY_RETENTION_DAYS``). The in-process stand-in has no
time-series collections, so there the same documents go to a plain collection
with a TTL index. This module is the only place that knows the difference.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from mongoengine.connection import get_db
from pymongo import ASCENDING
from pymongo.collection import Collection
from pymongo.errors import CollectionInvalid, OperationFailure

from backend.connections import is_mongomock

log = logging.getLogger(__name__)

COLLECTION = "worker_history"
MAX_POINTS = 500

# The worker fields sampled on every refresh, in the order charts show them.
METRICS = (
    "cloudwatch_cpu_utilization",
    "cloudwatch_memory_utilization",
    "cml_cpu_utilization",
    "cml_memory_used",
    "cml_labs_count",
    "cml_labs_running",
    "cml_nodes_running",
    "cml_allocated_cpus",
)


def collection() -> Collection:
    return get_db()[COLLECTION]


def ensure_collection(retention_days: int) -> str:
    """Create the history collection if needed; return what it is.

    ``"timeseries"`` on a real MongoDB; ``"plain"``, a collection whose samples
    expire through a TTL index, on the stand-in, on a server older than 5.0 and
    where the collection exists as a plain one already.
    """
    db = get_db()
    expire = int(timedelta(days=retention_days).total_seconds())
    kind = "plain" if is_mongomock() else _create_time_series(expire)
    if kind == "timeseries":
        db.command("collMod", COLLECTION, expireAfterSeconds=expire)
    else:
        db[COLLECTION].create_index("t", expireAfterSeconds=expire, name="t_ttl")
    db[COLLECTION].create_index([("worker_id", ASCENDING), ("t", ASCENDING)])
    return kind


def _create_time_series(expire_seconds: int) -> str:
    """Create the time-series collection unless it exists; return what it is."""
    db = get_db()
    try:
        db.create_collection(
            COLLECTION,
            timeseries={
                "timeField": "t",
                "metaField": "worker_id",
                "granularity": "minutes",
            },
            expireAfterSeconds=expire_seconds,
        )
        log.info("history: created time-series collection %s", COLLECTION)
    except CollectionInvalid:
        pass
    except OperationFailure as exc:
        # Servers older than 5.0 refuse time-series collections.
        log.warning("history: time-series unavailable (%s), using a TTL index", exc)
        return "plain"

    info: dict[str, Any] = next(
        iter(db.list_collections(filter={"name": COLLECTION})), {}
    )
    return "timeseries" if info.get("type") == "timeseries" else "plain"


def sample_from(worker: Mapping[str, Any], at: datetime) -> dict[str, Any]:
    sample: dict[str, Any] = {"t": at, "worker_id": str(worker["id"])}
    for metric in METRICS:
        value = worker.get(metric)
        if value is not None:
            sample[metric] = value
    return sample


def append_samples(samples: Iterable[dict[str, Any]]) -> int:
    documents = list(samples)
    if documents:
        collection().insert_many(documents, ordered=False)
    return len(documents)


def choose_step(since: datetime, until: datetime, step: int | None) -> int:
    """The bucket width in seconds: at least ``step`` and at most MAX_POINTS buckets."""
    span = (until - since).total_seconds()
    smallest = max(1, math.ceil(span / MAX_POINTS))
    return max(step or 0, smallest, 1)


def read_points(
    worker_id: str, since: datetime, until: datetime, step: int
) -> list[dict[str, Any]]:
    """Average samples into buckets of ``step`` seconds from ``since`` to ``until``.

    Every bucket of the range is returned, with ``count`` the number of samples
    behind it, so a gap in the history shows as buckets with ``count`` 0.
    """
    cursor = collection().find(
        {"worker_id": worker_id, "t": {"$gte": since, "$lt": until}},
        {"_id": 0, "worker_id": 0},
    )
    sums: dict[int, dict[str, float]] = {}
    counts: dict[int, dict[str, int]] = {}
    samples: dict[int, int] = {}
    start = since.timestamp()
    for document in cursor:
        at = document.pop("t")
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        bucket = int((at.timestamp() - start) // step)
        samples[bucket] = samples.get(bucket, 0) + 1
        bucket_sums = sums.setdefault(bucket, {})
        bucket_counts = counts.setdefault(bucket, {})
        for metric, value in document.items():
            if metric in METRICS and value is not None:
                bucket_sums[metric] = bucket_sums.get(metric, 0.0) + float(value)
                bucket_counts[metric] = bucket_counts.get(metric, 0) + 1

    buckets = math.ceil((until - since).total_seconds() / step)
    points = []
    for bucket in range(buckets):
        point: dict[str, Any] = {
            "t": since + timedelta(seconds=bucket * step),
            "count": samples.get(bucket, 0),
        }
        for metric, total in sums.get(bucket, {}).items():
            point[metric] = round(total / counts[bucket][metric], 3)
        points.append(point)
    return points
