"""RQ job functions, the lease that keeps fleet refreshes from overlapping, and
the periodic schedule.

Jobs run in ``cmlfleet worker`` processes (or inside ``cmlfleet demo``). Each
process builds its refresh context once, on first use, from the environment,
unless the demo hands it one with :func:`configure`.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import WatchError
from rq import Queue, get_current_job
from rq.job import Job, JobStatus

from backend import aws, lifecycle
from backend.connections import RedisClient, connect_mongo, redis_from_url
from backend.refresh import STATS_KEY, Context, refresh
from backend.settings import Settings, load_settings

log = logging.getLogger(__name__)

QUEUE_NAME = "cmlfleet"
FLEET_JOB_ID = "cmlfleet-refresh-fleet"
LEASE_KEY = "cmlfleet:refresh:lease"
# A fleet refresh of hundreds of workers takes seconds; an AWS lifecycle call a
# few. RQ's default of 180 s would let a stuck job hold a worker far too long.
REFRESH_TIMEOUT_SECONDS = 120
ACTION_TIMEOUT_SECONDS = 90
RESULT_TTL_SECONDS = 3600

_context: Context | None = None
_context_lock = threading.Lock()


def configure(ctx: Context | None) -> None:
    """Use ``ctx`` for the jobs of this process (the demo and tests)."""
    global _context
    _context = ctx


def build_context(settings: Settings, redis: RedisClient | None = None) -> Context:
    return Context(
        settings=settings,
        redis=redis if redis is not None else redis_from_url(settings.redis_url),
        aws=aws.AWSClients(endpoint_url=settings.aws_endpoint_url),
    )


def context() -> Context:
    global _context
    with _context_lock:
        if _context is None:
            settings = load_settings()
            connect_mongo(settings)
            _context = build_context(settings)
        return _context


def queue(redis: RedisClient) -> Queue:
    return Queue(QUEUE_NAME, connection=redis, default_timeout=ACTION_TIMEOUT_SECONDS)


# --- the lease -----------------------------------------------------------------


def _if_holder(redis: RedisClient, key: str, token: str, action: Any) -> bool:
    """Run ``action`` on a pipeline only while ``token`` still holds ``key``.

    WATCH/MULTI rather than a Lua script, so the in-process Redis of the demo,
    which runs no scripts, behaves the same.
    """
    with redis.pipeline() as pipe:
        try:
            pipe.watch(key)
            if pipe.get(key) != token.encode():
                pipe.unwatch()
                return False
            pipe.multi()
            action(pipe)
            pipe.execute()
        except WatchError:
            return False
    return True


@contextlib.contextmanager
def lease(redis: RedisClient, key: str, ttl_seconds: float = 30.0) -> Iterator[bool]:
    """Hold ``key`` while the block runs; yield False when someone else holds it.

    The lease expires by itself if its holder dies, and is renewed every third of
    its lifetime while the holder runs, so a long refresh keeps it.
    """
    token = secrets.token_hex(16)
    ttl_ms = int(ttl_seconds * 1000)
    if not redis.set(key, token, nx=True, px=ttl_ms):
        yield False
        return

    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl_seconds / 3):
            if not _if_holder(redis, key, token, lambda p: p.pexpire(key, ttl_ms)):
                log.warning("lease %s: lost before the run finished", key)
                return

    renewer = threading.Thread(target=renew, name="lease-renew", daemon=True)
    renewer.start()
    try:
        yield True
    finally:
        stop.set()
        renewer.join(timeout=5)
        _if_holder(redis, key, token, lambda p: p.delete(key))


# --- refresh jobs ----------------------------------------------------------------


def refresh_fleet_job() -> dict[str, Any]:
    """The periodic fleet refresh; skipped, never queued, while another runs."""
    ctx = context()
    with lease(ctx.redis, LEASE_KEY) as acquired:
        if not acquired:
            ctx.redis.hincrby(STATS_KEY, "skipped", 1)
            log.info("refresh: skipped, another fleet refresh holds the lease")
            return {"skipped": True}
        outcome = refresh(ctx)
    return {"skipped": False, **outcome.__dict__}


def refresh_worker_job(worker_id: str) -> dict[str, Any]:
    """An on-demand refresh of one worker; announces its end either way."""
    ctx = context()
    job = get_current_job()
    job_id = job.id if job else None
    try:
        outcome = refresh(ctx, worker_id=worker_id)
    except Exception as exc:
        log.exception("worker %s: on-demand refresh failed", worker_id)
        ctx.publish(
            "worker.refresh.completed",
            worker_id,
            {"job_id": job_id, "ok": False, "error": str(exc)},
        )
        raise
    ok = not outcome.failures
    ctx.publish(
        "worker.refresh.completed",
        worker_id,
        {"job_id": job_id, "ok": ok, "summary": outcome.summary()},
    )
    return outcome.__dict__


def enqueue_worker_refresh(redis: RedisClient, worker_id: str) -> str:
    """Queue a refresh of one worker, reusing one that is queued and not started."""
    job_id = f"refresh-worker-{worker_id}"
    with contextlib.suppress(Exception):
        existing = Job.fetch(job_id, connection=redis)
        if existing.get_status(refresh=True) in (JobStatus.QUEUED, JobStatus.DEFERRED):
            return job_id
    queue(redis).enqueue(
        refresh_worker_job,
        worker_id,
        job_id=job_id,
        job_timeout=REFRESH_TIMEOUT_SECONDS,
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=RESULT_TTL_SECONDS,
    )
    return job_id


# --- lifecycle jobs ---------------------------------------------------------------


def enqueue_action(
    redis: RedisClient, action: str, worker_id: str, actor: str, **params: Any
) -> str:
    job = queue(redis).enqueue(
        run_action,
        action,
        worker_id,
        actor,
        params,
        job_timeout=ACTION_TIMEOUT_SECONDS,
        result_ttl=RESULT_TTL_SECONDS,
        failure_ttl=RESULT_TTL_SECONDS,
    )
    return job.id


def run_action(action: str, worker_id: str, actor: str, params: dict[str, Any]) -> Any:
    """The job behind every admin action on a worker (see ``lifecycle``)."""
    return lifecycle.run(context(), action, worker_id, actor, params)


# --- the schedule ------------------------------------------------------------------


def register_schedule(scheduler: Any, interval_seconds: int) -> str:
    """Register the periodic fleet refresh once, under a fixed id.

    Safe to run at every start: an existing registration with the same interval is
    kept, one with another interval is replaced.
    """
    for job in scheduler.get_jobs():
        if job.id != FLEET_JOB_ID:
            continue
        if job.meta.get("interval") == interval_seconds:
            return "kept"
        scheduler.cancel(job)
        job.delete()
    scheduler.schedule(
        scheduled_time=datetime.now(UTC),
        func=refresh_fleet_job,
        interval=interval_seconds,
        repeat=None,
        id=FLEET_JOB_ID,
        queue_name=QUEUE_NAME,
        timeout=REFRESH_TIMEOUT_SECONDS,
        result_ttl=interval_seconds * 2,
        meta={"interval": interval_seconds},
    )
    return "registered"
