"""Liveness and readiness, including a dependency that is down or hangs."""

import socket
import threading
import time
from dataclasses import replace

import pytest

from backend.app import close_app, create_app


@pytest.fixture
def silent_port():
    """A port that accepts connections and never answers: a hung dependency."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for connection in accepted:
        connection.close()


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_healthz_answers(anonymous):
    response = anonymous.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_is_ready_when_redis_and_mongodb_answer(anonymous):
    response = anonymous.get("/readyz")

    assert response.status_code == 200
    assert response.get_json()["checks"] == {"redis": "ok", "mongodb": "ok"}


def test_readyz_names_redis_when_it_is_down(settings):
    app = create_app(
        replace(settings, redis_url=f"redis://127.0.0.1:{_unused_port()}/0")
    )
    response = app.test_client().get("/readyz")
    close_app(app)

    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "unavailable"
    assert "redis" in body["message"]
    assert "mongodb" not in body["message"]


def test_readyz_answers_within_two_seconds_when_redis_hangs(settings, silent_port):
    app = create_app(replace(settings, redis_url=f"redis://127.0.0.1:{silent_port}/0"))
    started = time.monotonic()
    response = app.test_client().get("/readyz")
    elapsed = time.monotonic() - started
    close_app(app)

    assert response.status_code == 503
    assert "redis" in response.get_json()["message"]
    assert elapsed < 2.0, "a hung dependency must not hold readiness past 2 s"
