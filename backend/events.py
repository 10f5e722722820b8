"""Events: one publish path into a capped Redis Stream plus a pub/sub announcement.

The stream entry id is the event id, so replay after a reconnect is an ``XRANGE``
from the client's last id. What a receiver may see is decided here too, in
``visible_to``, so REST and both stream transports filter the same way.

Each web process receives events through one :class:`Hub`: a single pub/sub
subscription that fans every event out to the process's stream clients. The hub
is written against ``threading``, looked up when it runs, so the same code runs
on real threads and on gevent's greenlets once gunicorn's worker patched them.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import redis
from redis.exceptions import RedisError

from backend.connections import REDIS_TIMEOUT_SECONDS, RedisClient, redis_from_url
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
    added = _info(info, "entries-added")
    if added is not None and added == _info(info, "length"):
        return True
    deleted = _info(info, "max-deleted-entry-id")
    if deleted is not None and wanted < (parse_event_id(_text(deleted)) or (0, 0)):
        return False
    # Trimming by MAXLEN does not move the deletion mark, so the oldest kept
    # entry is the bound: a position before it may have lost what followed it.
    first = _info(info, "first-entry")
    if not first:
        return True
    return wanted >= (parse_event_id(_text(first[0])) or (0, 0))


def _info(info: Mapping[Any, Any], name: str) -> Any:
    value = info.get(name)
    return info.get(name.encode()) if value is None else value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def resync_event(position: str, reason: str) -> dict[str, Any]:
    """The envelope that tells one client to reload the fleet.

    Its id is the newest event the server knows, so a client that reconnects
    with it after reloading resumes from there instead of resyncing again.
    """
    return {
        "id": position,
        "type": "resync",
        "time": to_json_value(datetime.now(UTC)),
        "worker_id": None,
        "data": {"reason": reason},
    }


# --- the per-process hub -------------------------------------------------------

#: ``(sid, username, role)`` of the session a stream was opened with.
Session: TypeAlias = tuple[str, str, str]
EventKey: TypeAlias = tuple[int, int]
T = TypeVar("T")

RECONNECT_MIN_SECONDS = 0.2
RECONNECT_MAX_SECONDS = 5.0
LISTEN_POLL_SECONDS = 1.0
READ_BATCH = 500
MAX_ANNOUNCEMENTS_PER_READ = 1000
READY_TIMEOUT_SECONDS = 5.0
#: Clients are woken in this many groups, with a pause between two groups.
WAKE_GROUPS = 32
WAKE_PAUSE_SECONDS = 0.001
#: Heartbeats a client may stay overflowed, stuck in a write, before its socket
#: is shut down; it gets its resync the moment it reads again before that.
STALL_HEARTBEATS = 4


class Delivery:
    """One event on its way to local clients, encoded once per role and format."""

    __slots__ = ("event", "key", "seq", "_encoded")

    def __init__(self, event: dict[str, Any], key: EventKey) -> None:
        self.event = event
        self.key = key
        self.seq = 0
        self._encoded: dict[tuple[str, Callable[..., Any]], Any] = {}

    @property
    def is_resync(self) -> bool:
        return self.event.get("type") == "resync"

    def encoded(self, role: str, encode: Callable[[dict[str, Any]], T]) -> T | None:
        """The event as ``role`` may see it, through ``encode``; None when hidden."""
        cache_key = (role, encode)
        if cache_key not in self._encoded:
            visible = visible_to(self.event, role)
            self._encoded[cache_key] = None if visible is None else encode(visible)
        return self._encoded[cache_key]  # type: ignore[no-any-return]


class Ring:
    """The newest ``capacity`` deliveries, shared by every client of the process.

    A client keeps only its position in the ring, so fanning an event out costs
    one append and a wake-up per group of clients however many there are, and
    each client's backlog is bounded: one that falls ``capacity`` events behind
    is overflowed. The ring also counts heartbeats, so that no client needs a
    timer of its own.
    """

    def __init__(self, capacity: int, groups: int = WAKE_GROUPS) -> None:
        self.capacity = capacity
        self.head = 0
        self.beats = 0
        self._slots: list[Delivery | None] = [None] * capacity
        self._changed = [threading.Event() for _ in range(groups)]
        self._taken = [False] * groups
        self._swap = threading.Lock()

    @property
    def groups(self) -> int:
        return len(self._changed)

    def changed(self, group: int) -> threading.Event:
        """Set at the next append or wake-up; take it before reading the ring."""
        self._taken[group] = True
        return self._changed[group]

    def append(self, delivery: Delivery, *, wake: bool = True) -> None:
        """Add a delivery; with ``wake=False`` the caller wakes clients later,
        once for a whole batch."""
        seq = self.head + 1
        delivery.seq = seq
        # The slot is filled before the head moves, so a reader on another
        # thread never sees a position whose delivery is not there yet.
        self._slots[seq % self.capacity] = delivery
        self.head = seq
        if wake:
            self.wake()

    def beat(self) -> None:
        """Count a heartbeat and wake every client to send its keep-alive."""
        self.beats += 1
        self.wake()

    def wake(self) -> None:
        """Wake every waiting client, to deliver or to let it notice it must stop.

        The groups are woken one after another with a short pause in between:
        on gevent, thousands of clients woken at once would run back to back
        and hold every API request up until the last had written. The pause is
        a timer, so the server polls its sockets before the next group runs.
        """
        with self._swap:
            woken = self._changed
            taken = self._taken
            self._changed = [threading.Event() for _ in woken]
            self._taken = [False] * len(woken)
        # Groups no client waits on cost no pause, so a few clients are woken
        # at once and only a crowd is spread out.
        paced = False
        for changed, waited in zip(woken, taken, strict=True):
            if not waited:
                changed.set()
                continue
            if paced:
                time.sleep(WAKE_PAUSE_SECONDS)
            paced = True
            changed.set()

    def after(self, position: int) -> list[Delivery] | None:
        """The deliveries after ``position``, or None when some were overwritten."""
        head = self.head
        if head - position > self.capacity:
            return None
        batch = []
        for seq in range(position + 1, head + 1):
            delivery = self._slots[seq % self.capacity]
            if delivery is None or delivery.seq != seq:
                return None
            batch.append(delivery)
        return batch


class Subscription:
    """One stream client of the hub: who it is and how far it has read."""

    __slots__ = (
        "hub",
        "role",
        "session",
        "group",
        "position",
        "revoked",
        "abort",
        "stalled",
    )

    def __init__(
        self,
        hub: Hub,
        role: str,
        session: Session | None,
        abort: Callable[[], None] | None,
    ) -> None:
        self.hub = hub
        self.role = role
        self.session = session
        self.group = next(hub.joined) % hub.ring.groups
        self.position = hub.ring.head
        self.revoked = False
        self.abort = abort
        self.stalled = 0

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.hub.unsubscribe(self)

    def messages(self, last_id: str = "") -> Iterator[Delivery | None]:
        """Every event for this client, in order and once each; None means beat.

        With ``last_id`` the events after it are replayed first (or a resync is
        given when they are no longer kept). The iterator ends after a resync,
        when the session ends, when the hub stops, or when Redis cannot be
        reached to start; the client is expected to reconnect.
        """
        hub = self.hub
        if not hub.wait_ready(READY_TIMEOUT_SECONDS):
            log.warning("event hub: not connected to Redis; a stream was turned away")
            return

        last_key = (0, 0)
        if last_id:
            try:
                replayed, covered = hub.replay(last_id)
            except RedisError as exc:
                log.warning("event hub: replay from %s failed (%s)", last_id, exc)
                return
            if not covered:
                newest = hub.newest() or hub.position
                yield Delivery(resync_event(newest, "behind"), (0, 0))
                return
            last_key = parse_event_id(last_id) or last_key
            for event in replayed:
                last_key = parse_event_id(event["id"]) or last_key
                yield Delivery(event, last_key)

        ring = hub.ring
        beats = ring.beats
        while not self.revoked and not hub.stopping:
            changed = ring.changed(self.group)
            batch = ring.after(self.position)
            if batch is None:
                log.info("event hub: a %s client fell behind; sent resync", self.role)
                yield Delivery(resync_event(hub.position, "too_slow"), (0, 0))
                return
            for delivery in batch:
                self.position = delivery.seq
                if delivery.is_resync:
                    yield delivery
                    return
                # Replay and the ring overlap by design (the client joined the
                # ring before reading the stream), so ids seen already are skipped.
                if delivery.key <= last_key:
                    continue
                last_key = delivery.key
                yield delivery
            if ring.beats != beats:
                beats = ring.beats
                yield None
            elif not batch:
                changed.wait()


class Hub:
    """The process's one Redis subscription, fanned out to its stream clients.

    Two Redis connections serve every client of the process: the subscriber, and
    one command connection for catching up and for replaying to clients that
    resume. The listener starts with the first client. When Redis goes away it
    reconnects with backoff and, once subscribed again, reads from the stream
    what was published meanwhile, so connected clients lose nothing that reached
    the stream. A second thread keeps the heartbeat: it wakes every client to send
    its keep-alive, and ends the streams whose session was signed out, removed
    or changed role.

    Args:
        redis_url: where the events are published.
        backlog: how many events a client may fall behind before it is sent a
            resync and closed.
        heartbeat: seconds between keep-alives and between session checks.
        session_is_current: called with each open stream's session; False
            ends the streams of that session.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        backlog: int = 1000,
        heartbeat: float = 15.0,
        session_is_current: Callable[[Session], bool] | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.heartbeat = heartbeat
        self.ring = Ring(backlog)
        self.position = ""
        self._position_key: EventKey | None = None
        self._session_is_current = session_is_current
        self._subscriptions: set[Subscription] = set()
        self.joined = itertools.count()
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._live = False
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._commands: RedisClient = None
        self._subscriber: RedisClient = None

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    @property
    def clients(self) -> int:
        return len(self._subscriptions)

    def subscribe(
        self,
        role: str,
        session: Session | None = None,
        *,
        abort: Callable[[], None] | None = None,
    ) -> Subscription:
        """Register a client; it receives every event announced from now on.

        ``abort`` shuts the client's connection down when it stays stuck behind
        (see ``STALL_HEARTBEATS``); without it a stuck client lingers until its
        connection fails.
        """
        self.start()
        subscription = Subscription(self, role, session, abort)
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def replay(self, last_id: str) -> tuple[list[dict[str, Any]], bool]:
        return replay_since(self._commands, last_id)

    def newest(self) -> str:
        """The id of the newest event in the stream (the hub may not have it yet)."""
        return last_event_id(self._commands)

    def wait_ready(self, timeout: float) -> bool:
        """True once the subscription is live, waiting up to ``timeout`` for it."""
        return self._ready.wait(timeout)

    def start(self) -> None:
        """Connect and start listening, once; later calls return at once."""
        if self._threads:
            return
        with self._lock:
            if self._threads or self.stopping:
                return
            self._commands = _hub_redis(self.redis_url, "cmlfleet-hub")
            self._subscriber = _hub_redis(self.redis_url, "cmlfleet-hub-subscriber")
            self._threads = [
                threading.Thread(target=self._listen, name="event-hub", daemon=True),
                threading.Thread(
                    target=self._watch, name="event-hub-sessions", daemon=True
                ),
            ]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End every stream and close the hub's connections."""
        self._stopped.set()
        self.ring.wake()
        for thread in self._threads:
            thread.join(timeout)
        for client in (self._subscriber, self._commands):
            if client is not None:
                # A client given its pool leaves the pool's connections open.
                client.close()
                client.connection_pool.disconnect()

    # --- the listener ----------------------------------------------------------

    def _listen(self) -> None:
        delay = RECONNECT_MIN_SECONDS
        while not self.stopping:
            self._live = False
            try:
                self._follow()
            except (RedisError, OSError) as exc:
                log.warning(
                    "event hub: Redis unreachable (%s); reconnecting in %.1f s",
                    exc,
                    delay,
                )
            except Exception:
                # A bug here would silence every stream of the process, so the
                # hub logs it and starts over instead of letting the thread die.
                log.exception("event hub: listener failed; restarting in %.1f s", delay)
            if self._stopped.wait(delay):
                return
            # A connection that had come up resets the backoff; repeated
            # failures to connect at all stretch it up to the maximum.
            if self._live:
                delay = RECONNECT_MIN_SECONDS
            else:
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    def _follow(self) -> None:
        """Subscribe, then deliver until the connection fails or the hub stops.

        An announcement only says that the stream grew: the events themselves
        are read from this deployment's stream, because pub/sub channels span
        every database of a Redis server and another deployment sharing it
        announces on the same channel.
        """
        if self._position_key is None:
            self._move_to(last_event_id(self._commands) or "0-0")
        pubsub = self._subscriber.pubsub()
        try:
            pubsub.subscribe(CHANNEL)
            while not self.stopping:
                message = pubsub.get_message(timeout=LISTEN_POLL_SECONDS)
                if message is None:
                    continue
                # A subscribe confirmation also comes when redis-py reconnected
                # by itself: either way the gap since the last read must be read.
                resubscribed = message["type"] == "subscribe"
                for _ in range(MAX_ANNOUNCEMENTS_PER_READ):
                    pending = pubsub.get_message(timeout=0)
                    if pending is None:
                        break
                    resubscribed = resubscribed or pending["type"] == "subscribe"
                if resubscribed:
                    self._catch_up()
                else:
                    self._read_new()
        finally:
            pubsub.close()

    def _catch_up(self) -> None:
        """Deliver what reached the stream while the subscription was not live."""
        missed, covered = replay_since(self._commands, self.position)
        if not covered:
            log.warning(
                "event hub: events after %s were trimmed before they could be "
                "read; every client is sent a resync",
                self.position,
            )
            self._move_to(last_event_id(self._commands) or self.position)
            self.ring.append(Delivery(resync_event(self.position, "missed"), (0, 0)))
        delivered = False
        for event in missed:
            delivered = self._deliver(event) or delivered
        if delivered:
            self.ring.wake()
        self._live = True
        if not self._ready.is_set():
            log.info("event hub: subscribed to %s after %s", CHANNEL, self.position)
            self._ready.set()
        elif missed:
            log.info("event hub: resubscribed; %d missed events delivered", len(missed))
        else:
            log.info("event hub: resubscribed; no event was missed")

    def _read_new(self) -> None:
        """Deliver the events after the hub's position, oldest first.

        Clients are woken once for everything read, not once per event.
        """
        delivered = False
        while True:
            batch = self._commands.xrange(
                STREAM, min=f"({self.position}", count=READ_BATCH
            )
            if not batch:
                if delivered:
                    self.ring.wake()
                return
            for entry_id, fields in batch:
                try:
                    event = decode_entry(entry_id, fields)
                except (ValueError, KeyError) as exc:
                    log.warning(
                        "event hub: skipped malformed entry %r (%s)", entry_id, exc
                    )
                    self._move_to(_text(entry_id))
                    continue
                delivered = self._deliver(event) or delivered

    def _deliver(self, event: dict[str, Any]) -> bool:
        """Put ``event`` in the ring unless the hub has it already; True if so."""
        key = parse_event_id(event.get("id", ""))
        if key is None or self._position_key is None or key <= self._position_key:
            return False
        self._move_to(event["id"], key)
        self.ring.append(Delivery(event, key), wake=False)
        return True

    def _move_to(self, event_id: str, key: EventKey | None = None) -> None:
        self.position = event_id
        self._position_key = key or parse_event_id(event_id) or (0, 0)

    # --- the session watch -----------------------------------------------------

    def _watch(self) -> None:
        while not self._stopped.wait(self.heartbeat):
            self.ring.beat()
            try:
                self._check_clients()
            except Exception as exc:  # noqa: BLE001
                # Redis or MongoDB being down must not end streams: sessions
                # are checked again at the next heartbeat.
                log.warning("event hub: sessions not checked (%s)", exc)

    def _check_clients(self) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        verdicts: dict[Session, bool] = {}
        revoked = 0
        for subscription in subscriptions:
            session = subscription.session
            if session is not None and self._session_is_current is not None:
                if session not in verdicts:
                    verdicts[session] = self._session_is_current(session)
                if not verdicts[session] and not subscription.revoked:
                    subscription.revoked = True
                    revoked += 1
            self._check_stall(subscription)
        if revoked:
            log.info("event hub: %d streams closed: their session ended", revoked)
            self.ring.wake()

    def _check_stall(self, subscription: Subscription) -> None:
        if self.ring.head - subscription.position <= self.ring.capacity:
            subscription.stalled = 0
            return
        subscription.stalled += 1
        if subscription.stalled == STALL_HEARTBEATS and subscription.abort:
            log.info(
                "event hub: a %s client stopped reading; closed", subscription.role
            )
            subscription.abort()


def _hub_redis(url: str, name: str) -> RedisClient:
    """A client limited to one connection, named so ``CLIENT LIST`` shows it."""
    if url.startswith("fakeredis://"):
        return redis_from_url(url)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=1,
        timeout=None,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=10,
        health_check_interval=30,
        client_name=name,
    )
    return redis.Redis(connection_pool=pool)
