"""One refresh of the fleet: AWS, then CML, compared with what is stored.

Every path that refreshes — the periodic job, an on-demand refresh of one worker,
``cmlfleet refresh`` — comes through :func:`refresh`. It reads each region in a
handful of batched AWS calls, asks the CML API of every running worker at once
(a bounded pool, a deadline per worker), writes only the fields that changed,
appends one history sample per worker and publishes one event per changed source.

Times of reading (``ec2_checked_at``, ``cloudwatch_collected_at``,
``cml_synced_at``) are stored on every refresh but are not changes by themselves:
an unchanged fleet publishes no event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError

from backend import aws, events, history
from backend.cml import CMLClient, CMLSnapshot, describe_error
from backend.connections import RedisClient, update_each
from backend.errors import AWSError
from backend.models import Lab, Worker
from backend.settings import Settings

log = logging.getLogger(__name__)

CML_POOL_SIZE = 50
CML_DEADLINE_SECONDS = 20.0

EC2_FIELDS = (
    "ec2_state",
    "ec2_instance_status",
    "ec2_system_status",
    "ec2_detailed_monitoring",
    "ec2_launch_time",
)
CLOUDWATCH_FIELDS = (
    "cloudwatch_cpu_utilization",
    "cloudwatch_memory_utilization",
    "cloudwatch_period_seconds",
)
IDENTITY_FIELDS = (
    "name",
    "instance_type",
    "ami_id",
    "aws_tags",
    "public_ip",
    "private_ip",
    "https_endpoint",
)
READ_TIMES = ("ec2_checked_at", "cloudwatch_collected_at", "cml_synced_at")
LAB_FIELDS = (
    "title",
    "description",
    "state",
    "owner_username",
    "node_count",
    "link_count",
    "created",
    "modified",
)

STATS_KEY = "cmlfleet:refresh:stats"
DUPLICATE_KEY = 11000


@dataclass
class Outcome:
    """What one refresh did, for the CLI summary, the job result and telemetry."""

    seen: int = 0
    changed: int = 0
    failed: int = 0
    events: int = 0
    seconds: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    def failure(self, source: str) -> None:
        self.failures[source] = self.failures.get(source, 0) + 1

    def summary(self) -> str:
        return (
            f"{self.seen} workers seen, {self.changed} changed, {self.failed} failed, "
            f"{self.events} events, {self.seconds:.2f} s"
        )


@dataclass
class Context:
    """The connections a refresh needs, built once per process."""

    settings: Settings
    redis: RedisClient
    aws: aws.AWSClients
    cml_clients: dict[str, CMLClient] = field(default_factory=dict)

    def cml_client(self, endpoint: str) -> CMLClient:
        """One client per controller, kept so its session and pool are reused."""
        client = self.cml_clients.get(endpoint)
        if client is None:
            settings = self.settings
            client = CMLClient(
                endpoint,
                username=settings.cml_username,
                password=settings.cml_password or "",
                redis=self.redis,
                verify=settings.cml_verify_tls,
                connect_timeout=settings.cml_connect_timeout,
                read_timeout=settings.cml_read_timeout,
            )
            self.cml_clients[endpoint] = client
        return client

    def publish(
        self, event_type: str, worker_id: str | None, data: Mapping[str, Any]
    ) -> str:
        return events.publish(
            self.redis,
            event_type,
            worker_id=worker_id,
            data=data,
            maxlen=self.settings.event_replay_size,
        )


def endpoint_for(template: str, worker: Mapping[str, Any]) -> str | None:
    """The worker's CML URL from ``CML_ENDPOINT``, or None when a part is unknown."""
    values = {
        "public_ip": worker.get("public_ip"),
        "private_ip": worker.get("private_ip"),
        "public_dns": worker.get("public_dns"),
        "instance_id": worker.get("aws_instance_id"),
        "name": worker.get("name"),
    }
    try:
        url = template.format(**{k: v or "" for k, v in values.items()})
    except (KeyError, IndexError):
        return None
    needed = [k for k in values if "{" + k + "}" in template]
    if any(not values[k] for k in needed):
        return None
    return url.rstrip("/")


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, datetime) and isinstance(new, datetime):
        old = old if old.tzinfo else old.replace(tzinfo=UTC)
        new = new if new.tzinfo else new.replace(tzinfo=UTC)
        return abs((old - new).total_seconds()) < 0.001
    if isinstance(old, float) or isinstance(new, float):
        if old is None or new is None:
            return old is new
        return abs(float(old) - float(new)) < 1e-9
    return bool(old == new)


def diff(stored: Mapping[str, Any], fresh: Mapping[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for each field of ``fresh`` that differs."""
    return {
        name: [stored.get(name), value]
        for name, value in fresh.items()
        if not _same(stored.get(name), value)
    }


class WorkerChange:
    """The fields read for one worker in this refresh and what they change."""

    def __init__(self, stored: dict[str, Any], *, imported: bool = False) -> None:
        self.stored = stored
        self.fresh: dict[str, Any] = {}
        self.times: dict[str, Any] = {}
        self.imported = imported
        self.labs: list[dict[str, Any]] | None = None
        self.labs_changed = False
        # The worker's labs as stored once the labs are synced.
        self.stored_labs: list[dict[str, Any]] = []
        # What this refresh changed, fixed once the change is stored.
        self.changed: dict[str, list[Any]] = {}

    @property
    def worker_id(self) -> str:
        return str(self.stored["id"])

    def read(self, fields: Mapping[str, Any]) -> None:
        for name, value in fields.items():
            if name in READ_TIMES:
                self.times[name] = value
            else:
                self.fresh[name] = value

    def changes(self) -> dict[str, list[Any]]:
        return diff(self.stored, self.fresh)

    def worker_after(self) -> dict[str, Any]:
        return {**self.stored, **self.fresh, **self.times}


def _event_types(changes: Mapping[str, Any]) -> list[str]:
    types = []
    if "status" in changes:
        types.append("worker.status.changed")
    if any(name in changes for name in EC2_FIELDS):
        types.append("worker.ec2_metrics.updated")
    if any(name.startswith("cloudwatch_") for name in changes):
        types.append("worker.cloudwatch_metrics.updated")
    if any(name.startswith("cml_") for name in changes):
        types.append("worker.cml_metrics.updated")
    return types


def _aws_fields(record: aws.InstanceRecord, template: str) -> dict[str, Any]:
    fields = {
        name: getattr(record, name)
        for name in (
            "status",
            *IDENTITY_FIELDS[:-1],
            *EC2_FIELDS,
            "ec2_checked_at",
            *CLOUDWATCH_FIELDS,
            "cloudwatch_collected_at",
        )
        if hasattr(record, name)
    }
    if not fields.get("name"):
        fields["name"] = record.aws_instance_id
    endpoint = endpoint_for(
        template,
        {
            **fields,
            "aws_instance_id": record.aws_instance_id,
            "public_dns": getattr(record, "public_dns", None),
        },
    )
    fields["https_endpoint"] = endpoint
    return fields


def _load_workers(worker_id: str | None) -> dict[str, dict[str, Any]]:
    query = Worker.objects(pk=ObjectId(worker_id)) if worker_id else Worker.objects
    return {str(w.pk): w.to_dict() for w in query}


def read_aws(
    ctx: Context,
    stored: dict[str, dict[str, Any]],
    changes: dict[str, WorkerChange],
    outcome: Outcome,
    *,
    only: dict[str, Any] | None = None,
) -> None:
    """Read every managed region and fold the instances into ``changes``."""
    settings = ctx.settings
    by_instance = {
        w["aws_instance_id"]: w for w in stored.values() if w.get("aws_instance_id")
    }
    regions = [only["region"]] if only else list(settings.aws_regions)
    for region in regions:
        try:
            snapshot = aws.read_region(region, settings.worker_tag, clients=ctx.aws)
        except AWSError as exc:
            outcome.failure("aws")
            log.warning("refresh: region %s unreadable (%s)", region, exc)
            for worker in stored.values():
                if worker["region"] == region:
                    change = changes.setdefault(worker["id"], WorkerChange(worker))
                    change.fresh["last_error"] = _error("aws", str(exc))
            continue
        if snapshot.cloudwatch_error is not None:
            outcome.failure("cloudwatch")
            log.warning(
                "refresh: region %s CloudWatch unreadable (%s)",
                region,
                snapshot.cloudwatch_error,
            )

        records = snapshot.instances
        if only:
            records = tuple(
                r for r in records if r.aws_instance_id == only["aws_instance_id"]
            )
        found = set()
        seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
        unknown: list[tuple[aws.InstanceRecord, dict[str, Any]]] = []
        for record in records:
            found.add(record.aws_instance_id)
            known = by_instance.get(record.aws_instance_id)
            fields = _aws_fields(record, settings.cml_endpoint)
            if snapshot.cloudwatch_error is not None:
                for name in (*CLOUDWATCH_FIELDS, "cloudwatch_collected_at"):
                    fields.pop(name, None)
            if known is not None:
                seen.append((known, fields))
            elif not only and record.status != "terminated":
                unknown.append((record, fields))
        for worker, fields in _import(unknown):
            stored[worker["id"]] = worker
            changes[worker["id"]] = WorkerChange(worker, imported=True)
            seen.append((worker, fields))

        for worker, fields in seen:
            change = changes.setdefault(worker["id"], WorkerChange(worker))
            if worker.get("status") == "terminated":
                continue
            change.read(fields)
            if fields["status"] == "terminated":
                change.fresh["terminated_at"] = worker.get("terminated_at") or _now()

        for worker in stored.values():
            vanished = (
                worker["region"] == region
                and (not only or worker["id"] == only["id"])
                and worker.get("aws_instance_id")
                and worker["aws_instance_id"] not in found
                and worker.get("status") not in ("terminated", "pending")
            )
            if vanished:
                change = changes.setdefault(worker["id"], WorkerChange(worker))
                change.fresh.update(status="terminated", ec2_state="terminated")
                change.fresh["terminated_at"] = worker.get("terminated_at") or _now()


def _import(
    unknown: list[tuple[aws.InstanceRecord, dict[str, Any]]],
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Save the tagged instances no worker tracks yet, together; the refresh fills
    them. One that another process saved meanwhile (a launch finishing) is left
    to it."""
    if not unknown:
        return []
    documents = []
    for record, fields in unknown:
        worker = Worker(
            name=fields["name"],
            region=record.region,
            aws_instance_id=record.aws_instance_id,
            status=fields["status"],
        )
        worker.validate()
        documents.append(worker.to_mongo().to_dict())

    taken: set[int] = set()
    try:
        Worker._get_collection().insert_many(documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        taken = {error["index"] for error in errors}

    imported = []
    pairs = zip(unknown, documents, strict=True)
    for index, ((record, fields), document) in enumerate(pairs):
        if index in taken:
            log.info("refresh: %s was saved meanwhile", record.aws_instance_id)
            continue
        worker = Worker._from_son(document).to_dict()
        log.info(
            "refresh: imported %s as worker %s", record.aws_instance_id, worker["id"]
        )
        imported.append((worker, fields))
    return imported


class CMLReads:
    """The CML reads of one refresh: a bounded pool and a deadline per worker.

    Reads start before AWS has answered, for every worker stored as running
    with a known endpoint, so the two sources are read side by side. Once AWS
    has answered, :meth:`settle` keeps a read only when AWS still shows the
    worker running at the same endpoint, starts reads for workers that have
    just come up or moved, and leaves the rest unread.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        # Threads are started as reads need them, up to the bound.
        self._pool = ThreadPoolExecutor(CML_POOL_SIZE, thread_name_prefix="cml-refresh")
        self._reads: dict[str, tuple[str, Future[CMLSnapshot]]] = {}
        self._last_start = time.monotonic()

    def start(self, worker_id: str, endpoint: str) -> None:
        client = self._ctx.cml_client(endpoint)
        self._reads[worker_id] = (endpoint, self._pool.submit(client.collect))
        self._last_start = time.monotonic()

    def settle(self, changes: dict[str, WorkerChange], outcome: Outcome) -> None:
        """Fold every running worker's read into ``changes``."""
        try:
            self._settle(changes, outcome)
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _settle(self, changes: dict[str, WorkerChange], outcome: Outcome) -> None:
        wanted: dict[Future[CMLSnapshot], WorkerChange] = {}
        for change in changes.values():
            after = change.worker_after()
            endpoint = after.get("https_endpoint")
            if after.get("status") != "running" or not endpoint:
                if after.get("status") != "running":
                    change.fresh["cml_service_status"] = "unavailable"
                continue
            started = self._reads.get(change.worker_id)
            if started is None or started[0] != endpoint:
                self.start(change.worker_id, endpoint)
            wanted[self._reads[change.worker_id][1]] = change
        if not wanted:
            return

        remaining = self._last_start + CML_DEADLINE_SECONDS - time.monotonic()
        done, late = wait(wanted, timeout=max(0.0, remaining))
        for future in late:
            future.cancel()
            message = "no answer within the refresh deadline"
            _cml_failed(wanted[future], message, outcome)
        for future in done:
            change = wanted[future]
            try:
                snapshot = future.result()
            except Exception as exc:  # noqa: BLE001 - any failure is this worker's own
                _cml_failed(change, describe_error(exc), outcome)
                continue
            change.read(snapshot.fields)
            change.labs = snapshot.labs
            if (change.stored.get("last_error") or {}).get("source") == "cml":
                change.fresh["last_error"] = None


def start_cml_reads(ctx: Context, stored: Mapping[str, Mapping[str, Any]]) -> CMLReads:
    """Start reading every worker stored as running, before AWS confirms it."""
    running = {
        worker_id: worker["https_endpoint"]
        for worker_id, worker in stored.items()
        if worker.get("status") == "running" and worker.get("https_endpoint")
    }
    reads = CMLReads(ctx)
    for worker_id, endpoint in running.items():
        reads.start(worker_id, endpoint)
    return reads


def _cml_failed(change: WorkerChange, message: str, outcome: Outcome) -> None:
    outcome.failure("cml")
    outcome.failed += 1
    log.warning("worker %s: CML unreadable (%s)", change.worker_id, message)
    change.fresh["cml_service_status"] = (
        "error" if "answered" in message else "unavailable"
    )
    previous = change.stored.get("last_error") or {}
    if previous.get("source") == "cml" and previous.get("message") == message:
        return
    change.fresh["last_error"] = _error("cml", message)


def _error(source: str, message: str) -> dict[str, Any]:
    return {"source": source, "message": message, "at": _now()}


def _now() -> datetime:
    return datetime.now(UTC)


def sync_labs(changes: Iterable[WorkerChange]) -> None:
    """Bring the labs collection in line with what CML reported.

    Marks the workers whose labs changed and keeps, on each, its labs as stored
    after the sync, for the event. Labs seen for the first time are inserted
    together; changed ones are replaced one by one.
    """
    read = [change for change in changes if change.labs is not None]
    if not read:
        return
    labs = Lab._get_collection()
    stored: dict[str, dict[str, dict[str, Any]]] = {}
    cursor = labs.find(
        {"worker_id": {"$in": [change.worker_id for change in read]}},
        {"_id": 0, "worker_id": 1, "lab_id": 1, "synced_at": 1}
        | dict.fromkeys(LAB_FIELDS, 1),
    )
    for document in cursor:
        stored.setdefault(document["worker_id"], {})[document["lab_id"]] = document
    # MongoDB keeps milliseconds: the event then says what a later read returns.
    now = _now()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    new: list[dict[str, Any]] = []
    for change in read:
        known = stored.get(change.worker_id, {})
        after = []
        for lab in change.labs or []:
            old = known.get(lab["lab_id"])
            if old is not None and not diff(old, {k: lab.get(k) for k in LAB_FIELDS}):
                after.append(old)
                continue
            document = {"worker_id": change.worker_id, **lab, "synced_at": now}
            after.append(document)
            change.labs_changed = True
            if old is None:
                new.append(document)
            else:
                labs.replace_one(
                    {"worker_id": change.worker_id, "lab_id": lab["lab_id"]},
                    document,
                )
        gone = set(known) - {lab["lab_id"] for lab in after}
        if gone:
            labs.delete_many(
                {"worker_id": change.worker_id, "lab_id": {"$in": list(gone)}}
            )
            change.labs_changed = True
        change.stored_labs = after
    _insert_labs(labs, new)


def _insert_labs(labs: Any, documents: list[dict[str, Any]]) -> None:
    """Insert new labs at once; one another refresh has just stored is replaced."""
    if not documents:
        return
    try:
        labs.insert_many([dict(document) for document in documents], ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        for error in errors:
            document = documents[error["index"]]
            labs.replace_one(
                {"worker_id": document["worker_id"], "lab_id": document["lab_id"]},
                document,
                upsert=True,
            )


def store_and_publish(
    ctx: Context, changes: dict[str, WorkerChange], outcome: Outcome
) -> None:
    now = _now()
    updates = []
    samples = []
    for change in changes.values():
        changed = change.changes()
        setter = {**change.times}
        if changed:
            setter.update({name: new for name, (_, new) in changed.items()})
            setter["updated_at"] = now
        if setter:
            updates.append(({"_id": ObjectId(change.worker_id)}, {"$set": setter}))
        after = change.worker_after()
        if changed:
            after["updated_at"] = now
        if after.get("status") == "running" or change.fresh:
            samples.append(history.sample_from(after, now))
        change.stored = after
        if changed or change.imported:
            outcome.changed += 1
        change.changed = changed

    update_each(Worker._get_collection(), updates)
    sync_labs(changes.values())
    history.append_samples(samples)

    for change in changes.values():
        outcome.events += _publish_change(ctx, change)


def _publish_change(ctx: Context, change: WorkerChange) -> int:
    changed = change.changed
    worker = change.stored
    published = 0
    if change.imported:
        ctx.publish(
            "worker.imported", change.worker_id, {"worker": worker, "changes": {}}
        )
        published += 1
    if changed.get("status", [None, None])[1] == "terminated":
        ctx.publish(
            "worker.terminated",
            change.worker_id,
            {"worker": worker, "changes": changed},
        )
        return published + 1
    if not change.imported:
        for event_type in _event_types(changed):
            ctx.publish(
                event_type, change.worker_id, {"worker": worker, "changes": changed}
            )
            published += 1
    if change.labs_changed:
        labs = [
            {name: lab.get(name) for name in ("worker_id", "lab_id", *LAB_FIELDS)}
            | {"synced_at": lab.get("synced_at")}
            for lab in change.stored_labs
        ]
        ctx.publish(
            "worker.labs.updated", change.worker_id, {"worker": worker, "labs": labs}
        )
        published += 1
    return published


def refresh(ctx: Context, *, worker_id: str | None = None) -> Outcome:
    """Refresh the whole fleet, or one worker; return what was done."""
    started = time.monotonic()
    outcome = Outcome()
    stored = _load_workers(worker_id)
    changes: dict[str, WorkerChange] = {}
    only: dict[str, Any] | None = None
    if worker_id:
        only = stored.get(worker_id)
        if only is None:
            raise LookupError(f"there is no worker {worker_id}")
        if not only.get("aws_instance_id"):
            outcome.seen = 1
            outcome.seconds = time.monotonic() - started
            return outcome

    reads = start_cml_reads(ctx, stored)
    read_aws(ctx, stored, changes, outcome, only=only)
    reads.settle(changes, outcome)
    store_and_publish(ctx, changes, outcome)
    outcome.seen = len(changes)
    outcome.seconds = time.monotonic() - started
    record_outcome(ctx.redis, outcome)
    log.info("refresh: %s", outcome.summary())
    return outcome


def record_outcome(redis: RedisClient, outcome: Outcome) -> None:
    """Keep running totals in Redis so every web process reports the same figures."""
    pipe = redis.pipeline()
    pipe.hincrby(STATS_KEY, "runs", 1)
    pipe.hincrbyfloat(STATS_KEY, "seconds_total", outcome.seconds)
    pipe.hset(STATS_KEY, "last_seconds", f"{outcome.seconds:.6f}")
    for source, count in outcome.failures.items():
        pipe.hincrby(STATS_KEY, f"failures:{source}", count)
    pipe.execute()


Factory = Callable[[], Context]
