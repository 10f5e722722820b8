"""The event stream, end to end: gunicorn's gevent worker, real sockets, real Redis.

Most tests share one server (one gevent worker, 1 s heartbeat, a backlog of 64
events per client); the Redis restart test runs its own Redis and server.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import websocket
from conftest import ADMIN, USER, ApiClient, start_redis_server
from stream_fixtures import SSEClient, StreamServer, free_port

from backend.events import STREAM, last_event_id, publish
from backend.models import ADMIN_ONLY_FIELDS

HEARTBEAT = 1.0
BACKLOG = 64
ACCOUNTS = [(*ADMIN, "admin"), (*USER, "user")]
WORKER = {
    "id": "w-1",
    "name": "alpha",
    "status": "running",
    "public_ip": "203.0.113.5",
    "aws_instance_id": "i-alpha",
    "private_ip": "10.0.0.5",
    "last_error": {"source": "cml", "message": "timed out", "at": None},
}


@pytest.fixture(scope="module")
def stream_redis_url(redis_server: str) -> Iterator[str]:
    url = f"{redis_server}/{os.environ.get('TEST_REDIS_DB', '15')}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def server(
    stream_redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StreamServer]:
    log = tmp_path_factory.mktemp("stream") / "gunicorn.log"
    running = StreamServer(
        stream_redis_url, ACCOUNTS, log, heartbeat=HEARTBEAT, backlog=BACKLOG
    )
    yield running
    running.stop()


@pytest.fixture
def events_redis(stream_redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stream_redis_url)
    yield client
    client.close()


@pytest.fixture
def streams() -> Iterator[list]:
    """Clients opened by a test, closed after it."""
    opened: list = []
    yield opened
    for client in opened:
        client.close()


def status_changed(client: redis.Redis, n: int, **data: object) -> str:
    return publish(
        client,
        "worker.status.changed",
        worker_id="w-1",
        data={"worker": WORKER, "changes": {"status": ["stopped", "running"]}, "n": n}
        | data,
    )


@pytest.fixture
def tip(events_redis: redis.Redis) -> str:
    """The newest event id. Clients that resume from it miss nothing published
    after it, with no need to wait until they have joined the hub."""
    return last_event_id(events_redis) or status_changed(events_redis, -1)


def test_stream_refuses_anonymous_callers(server, streams):
    anonymous = SSEClient(server.port, cookie=None)
    streams.append(anonymous)
    anonymous.wait_for(lambda: anonymous.closed)

    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"ws://127.0.0.1:{server.port}/api/workers/ws")

    assert anonymous.status == 401
    assert anonymous.body["error"] == "unauthorized"
    assert refused.value.status_code == 401


def test_stream_opens_at_once_with_retry_and_sse_headers(server, streams):
    client = server.login(*USER).sse()
    streams.append(client)

    assert client.wait_for(lambda: client.retry is not None, 5)
    assert client.status == 200
    assert client.retry == 3000
    assert client.events == []
    assert client.headers["content-type"] == "text/event-stream"
    assert client.headers["cache-control"] == "no-cache"
    assert client.headers["x-accel-buffering"] == "no"


def test_keepalive_comment_arrives_every_heartbeat(server, streams):
    client = server.login(*USER).sse()
    streams.append(client)

    assert client.wait_for(lambda: len(client.comments) >= 2, 4 * HEARTBEAT)
    assert set(client.comments) == {"keepalive"}


def test_resume_after_a_forced_disconnect_is_ordered_and_exactly_once(
    server, events_redis, streams, tip
):
    session = server.login(*USER)
    first = session.sse(last_id=tip)
    streams.append(first)
    published: list[str] = []
    done = threading.Event()

    def publish_steadily() -> None:
        for n in range(60):
            published.append(status_changed(events_redis, n))
            done.wait(0.01)

    publisher = threading.Thread(target=publish_steadily)
    publisher.start()
    first.wait_for_events(10)
    first.close()
    first.wait_for(lambda: first.closed)
    resumed = session.sse(last_id=first.ids()[-1])
    streams.append(resumed)
    publisher.join()
    resumed.wait_for(lambda: resumed.ids()[-1:] == published[-1:])

    received = first.ids() + resumed.ids()
    assert received == published
    assert [event["data"]["n"] for event in resumed.events] == list(
        range(len(first.events), 60)
    )
    assert resumed.frames[0]["id"] == resumed.events[0]["id"]
    assert resumed.frames[0]["event"] == "worker.status.changed"


def test_resume_with_the_query_parameter(server, events_redis, streams):
    since = status_changed(events_redis, 0)
    later = [status_changed(events_redis, n) for n in range(1, 4)]

    client = server.login(*USER).sse(query=f"?lastEventId={since}")
    streams.append(client)

    assert client.wait_for_events(3) and client.ids() == later


@pytest.mark.parametrize("how", ["trimmed", "malformed"])
def test_resume_from_beyond_the_buffer_gets_resync(server, events_redis, streams, how):
    oldest = status_changed(events_redis, 0)
    # Redis trims a capped stream by whole nodes of 100 entries, so it takes a
    # few hundred events before the first one is certainly gone.
    for _ in range(500):
        publish(events_redis, "worker.status.changed", worker_id="w-1", maxlen=10)
    assert events_redis.xrange(STREAM, min=oldest, max=oldest) == []

    last_id = oldest if how == "trimmed" else "not-an-id"
    client = server.login(*USER).sse(last_id=last_id)
    streams.append(client)

    assert client.wait_for(lambda: client.closed)
    assert [event["type"] for event in client.events] == ["resync"]
    assert (
        client.events[0]["id"] == events_redis.xrevrange(STREAM, count=1)[0][0].decode()
    )


def test_slow_client_is_sent_resync_and_others_keep_up(
    server, events_redis, streams, tip
):
    session = server.login(*USER)
    slow = session.sse(last_id=tip, receive_buffer=4096, read=False)
    fast = session.sse(last_id=tip)
    streams += [slow, fast]
    blob = "x" * 32768

    # Kernel buffers absorb a few MB before the slow client's writes block; then
    # its backlog of 64 events overflows. Bursts let the fast client keep pace.
    published = []
    for _ in range(12):
        published += [status_changed(events_redis, n, blob=blob) for n in range(32)]
        fast.wait_for_events(len(published))
    slow.start_reading()
    slow.wait_for(lambda: slow.closed)

    assert fast.ids() == published
    assert not fast.closed
    assert slow.events[-1]["type"] == "resync"
    assert slow.events[-1]["data"]["reason"] == "too_slow"
    assert slow.ids()[:-1] == published[: len(slow.events) - 1]


@pytest.mark.parametrize("transport", ["sse", "websocket"])
def test_each_role_receives_what_it_may_see(
    server, events_redis, streams, tip, transport
):
    admin = getattr(server.login(*ADMIN), transport)(last_id=tip)
    user = getattr(server.login(*USER), transport)(last_id=tip)
    streams += [admin, user]

    status_changed(events_redis, 0, changes={"private_ip": ["10.0.0.4", "10.0.0.5"]})
    publish(
        events_redis,
        "worker.action.failed",
        worker_id="w-1",
        data={"action": "start", "error": "InsufficientInstanceCapacity"},
    )
    publish(events_redis, "worker.refresh.completed", data={"job_id": "j", "ok": True})
    admin.wait_for_events(3)
    user.wait_for_events(2)

    assert [e["type"] for e in admin.events] == [
        "worker.status.changed",
        "worker.action.failed",
        "worker.refresh.completed",
    ]
    assert [e["type"] for e in user.events] == [
        "worker.status.changed",
        "worker.refresh.completed",
    ]
    assert ADMIN_ONLY_FIELDS & admin.events[0]["data"]["worker"].keys()
    assert not ADMIN_ONLY_FIELDS & user.events[0]["data"]["worker"].keys()
    assert user.events[0]["data"]["worker"]["public_ip"] == "203.0.113.5"
    assert user.events[0]["data"]["changes"] == {}


def test_websocket_resumes_from_last_event_id(server, events_redis, streams):
    since = status_changed(events_redis, 0)
    later = [status_changed(events_redis, n) for n in range(1, 4)]

    client = server.login(*USER).websocket(last_id=since)
    streams.append(client)
    client.wait_for_events(3)
    live = status_changed(events_redis, 4)

    assert client.wait_for(lambda: client.ids() == [*later, live])


def test_logout_closes_the_open_streams_of_that_session(
    server, events_redis, streams, tip
):
    leaving = server.login(*USER)
    staying = server.login(*USER)
    sse, socket_client = leaving.sse(), leaving.websocket()
    other = staying.sse(last_id=tip)
    streams += [sse, socket_client, other]
    assert sse.wait_for(lambda: sse.retry is not None)

    assert leaving.post("/api/auth/logout") == 204

    # Sessions are checked once a heartbeat; the margin absorbs a slow machine.
    deadline = 2 * HEARTBEAT + 0.5
    assert sse.wait_for(lambda: sse.closed, deadline)
    assert socket_client.wait_for(lambda: socket_client.closed, deadline)
    assert socket_client.close_status == 1008
    last = status_changed(events_redis, 0)
    assert other.wait_for(lambda: other.ids() == [last])
    assert not other.closed


def test_one_process_holds_two_redis_connections_for_all_its_streams(
    server, stream_redis_url, events_redis, streams, tip
):
    session = server.login(*USER)
    clients = [session.sse(last_id=tip) for _ in range(25)]
    streams += clients
    last = status_changed(events_redis, 0)
    for client in clients:
        client.wait_for(lambda c=client: c.ids() == [last])

    database = stream_redis_url.rsplit("/", 1)[1]
    hub_connections = [
        c
        for c in events_redis.client_list()
        if c["name"].startswith("cmlfleet-hub") and c["db"] == database
    ]
    assert all(client.ids() == [last] for client in clients)
    assert sorted(c["name"] for c in hub_connections) == [
        "cmlfleet-hub",
        "cmlfleet-hub-subscriber",
    ]


def test_events_published_after_a_redis_restart_all_arrive(tmp_path: Path):
    port = free_port()
    redis_process = start_redis_server(port, str(tmp_path))
    url = f"redis://127.0.0.1:{port}/0"
    # A long heartbeat: this Redis keeps nothing on disk, so the sessions are
    # copied back by hand after the restart and must not be checked meanwhile.
    server = StreamServer(url, ACCOUNTS, tmp_path / "gunicorn.log", heartbeat=30)
    publisher = redis.Redis.from_url(url)
    client = server.login(*USER).sse()
    try:
        assert client.wait_for(lambda: client.retry is not None)
        assert eventually(lambda: hub_is_subscribed(publisher))
        before = status_changed(publisher, 0)
        assert client.wait_for(lambda: client.ids() == [before])
        sessions = {key: publisher.hgetall(key) for key in publisher.keys("*session*")}

        redis_process.terminate()
        redis_process.wait(timeout=10)
        redis_process = start_redis_server(port, str(tmp_path))
        for key, fields in sessions.items():
            publisher.hset(key, mapping=fields)
        after = [status_changed(publisher, n) for n in range(1, 6)]

        assert client.wait_for(lambda: client.ids() == [before, *after], 20)
        later = status_changed(publisher, 6)
        assert client.wait_for(lambda: client.ids()[-1:] == [later])
        assert not client.closed
    finally:
        client.close()
        server.stop()
        publisher.close()
        redis_process.terminate()
        redis_process.wait(timeout=10)


def test_hub_serves_streams_on_plain_threads(app, accounts, redis_client):
    """Under the Flask test client the hub runs on real threads, not greenlets."""
    since = status_changed(redis_client, 0)
    replayed = status_changed(redis_client, 1)
    browser = ApiClient(app, *USER).client
    response = browser.get(
        "/api/workers/events", headers={"Last-Event-ID": since}, buffered=False
    )
    frames = (chunk for chunk in response.response if not chunk.startswith(b":"))
    try:
        assert next(frames) == b"retry: 3000\n\n"
        assert next(frames).startswith(f"id: {replayed}\n".encode())
        # The client joined the hub before it replayed, so this one is live.
        live = status_changed(redis_client, 2)
        assert next(frames).startswith(f"id: {live}\n".encode())
    finally:
        response.close()
        app.extensions["cmlfleet.hub"].stop()


def hub_is_subscribed(client: redis.Redis) -> bool:
    return any(
        c["name"] == "cmlfleet-hub-subscriber" and c["sub"] == "1"
        for c in client.client_list()
    )


def eventually(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
