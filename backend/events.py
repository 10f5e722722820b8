"""Events: one publish path into a capped Redis Stream plus a pub/sub announcement.

The stream entry id is the event id, so replay after a reconnect is an ``XRANGE``
from the client's last id. What a receiver may see is decided here too, in
``visible_to``, so REST and both stream transports filter the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from backend.connections import RedisClient
from backend.models import ADMIN_ONLY_FIELDS

log = logging.getLogger(__name__)

STREAM = "cmlfleet:events"
CHANNEL = "cmlfleet:events"
ADMIN_ONLY_TYPES = frozenset({"worker.action.failed"})
EVENT_TYPES = (
    "worker.created",
    "worker.imported",
    "worker.status.changed",
    "worker.ec2_metrics.updated",
    "worker.cloudwatch_metrics.updated",
    "worker.cml_metrics.updated",
    "worker.labs.updated",
    "worker.monitoring.changed",
    "worker.terminated",
    "worker.refresh.completed",
    "worker.action.failed",
    "resync",
)


def to_json_value(value: Any) -> Any:
    """JSON-ready form of what our documents hold (datetimes as ISO 8601, UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_json_value(value), separators=(",", ":"))


def worker_for_role(worker: Mapping[str, Any], role: str) -> dict[str, Any]:
    """The worker as ``role`` may see it: admin-only keys are absent for users."""
    if role == "admin":
        return dict(worker)
    return {k: v for k, v in worker.items() if k not in ADMIN_ONLY_FIELDS}


def visible_to(event: Mapping[str, Any], role: str) -> dict[str, Any] | None:
    """The event as ``role`` may receive it, or None when it is not for them."""
    if role == "admin":
        return dict(event)
    if event.get("type") in ADMIN_ONLY_TYPES:
        return None
    data = event.get("data") or {}
    if "worker" not in data and "changes" not in data:
        return dict(event)
    filtered = dict(data)
    if "worker" in data:
        filtered["worker"] = worker_for_role(data["worker"], role)
    if "changes" in data:
        filtered["changes"] = {
            k: v for k, v in data["changes"].items() if k not in ADMIN_ONLY_FIELDS
        }
    return {**event, "data": filtered}


def publish(
    client: RedisClient,
    event_type: str,
    *,
    worker_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    maxlen: int = 10000,
) -> str:
    """Append one event to the replay stream and announce it; return its id."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    time = to_json_value(datetime.now(UTC))
    body = dumps(
        {"type": event_type, "time": time, "worker_id": worker_id, "data": data or {}}
    )
    # The id is assigned by Redis, so the envelope is stored without it and the
    # id is added by whoever reads the entry back.
    event_id = _text(client.xadd(STREAM, {"e": body}, maxlen=maxlen, approximate=True))
    client.publish(CHANNEL, f"{event_id} {body}")
    log.debug("event %s: %s for worker %s", event_id, event_type, worker_id)
    return event_id


def decode_entry(
    entry_id: bytes | str, fields: Mapping[bytes, bytes]
) -> dict[str, Any]:
    return {"id": _text(entry_id), **json.loads(fields[b"e"])}


def decode_message(message: bytes | str) -> dict[str, Any]:
    """An envelope from a pub/sub announcement (``"<id> <json>"``)."""
    text = message.decode() if isinstance(message, bytes) else message
    event_id, _, body = text.partition(" ")
    return {"id": event_id, **json.loads(body)}


def last_event_id(client: RedisClient) -> str:
    """The id of the newest event, or "" before the first one."""
    newest = client.xrevrange(STREAM, count=1)
    if not newest:
        return ""
    return _text(newest[0][0])


def parse_event_id(value: str) -> tuple[int, int] | None:
    """``(ms, seq)`` of a stream id, or None when ``value`` is not one."""
    ms, _, seq = value.partition("-")
    if not ms.isdigit() or (seq and not seq.isdigit()):
        return None
    return int(ms), int(seq or 0)


def replay_since(
    client: RedisClient, last_id: str, *, count: int = 1000
) -> tuple[list[dict[str, Any]], bool]:
    """Every event after ``last_id``, oldest first, and whether the gap is covered.

    The second value is False when ``last_id`` is malformed or events after it
    were already trimmed from the capped stream: the receiver must resync.
    """
    wanted = parse_event_id(last_id)
    if wanted is None or not _covered(client, wanted):
        return [], False

    events: list[dict[str, Any]] = []
    start = f"({last_id}"
    while True:
        batch = client.xrange(STREAM, min=start, count=count)
        if not batch:
            return events, True
        events.extend(decode_entry(entry_id, fields) for entry_id, fields in batch)
        start = f"({_text(batch[-1][0])}"


def _covered(client: RedisClient, wanted: tuple[int, int]) -> bool:
    """True when no event after ``wanted`` has been trimmed from the stream."""
    if not client.exists(STREAM):
        return True
    info = client.xinfo_stream(STREAM)
    trimmed = info.get("max-deleted-entry-id") or info.get(b"max-deleted-entry-id")
    if trimmed is not None:
        return wanted >= (parse_event_id(_text(trimmed)) or (0, 0))
    # Without the trim mark (older servers) the oldest kept entry is the bound.
    first = info.get("first-entry") or info.get(b"first-entry")
    if not first:
        return True
    return wanted >= (parse_event_id(_text(first[0])) or (0, 0))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
