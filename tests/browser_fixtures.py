"""Helpers for the browser tests and the front-end benchmark.

``LiveServer`` serves the real app from a thread of the calling process, so a test
can seed MongoDB (mongomock) and publish events on the same Redis the page reads
from. The stream is served by werkzeug's threaded server: the event hub is
written against ``threading``, so one thread per open stream is all it needs.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from backend.events import publish

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
STREAM_PATH = "/api/workers/events"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless; Playwright's own browsers are not installed."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
    )


class LiveServer:
    """The app on 127.0.0.1, in a thread, restartable on the same port.

    ``stop()`` also cuts the open event streams: werkzeug closes every other
    connection after its response, but a stream would otherwise outlive the
    server and keep the page live through an outage the test means to cause.
    """

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._streams: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> LiveServer:
        self._server = make_server("127.0.0.1", self.port, self._wsgi, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"live-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting connections and drop the streams that are open."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = None
        self.drop_streams()

    def drop_streams(self) -> int:
        """Cut every open event stream, as a network failure would; return how many."""
        with self._lock:
            streams, self._streams = self._streams, set()
        for connection in streams:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        return len(streams)

    @property
    def open_streams(self) -> int:
        with self._lock:
            return len(self._streams)

    def _wsgi(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != STREAM_PATH:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        connection = environ["werkzeug.socket"]
        with self._lock:
            self._streams.add(connection)
        return _StreamBody(self.app(environ, start_response), self, connection)

    def _forget(self, connection: socket.socket) -> None:
        with self._lock:
            self._streams.discard(connection)


class _StreamBody:
    """A stream's response body; closing it takes the stream off the server's list."""

    def __init__(
        self, body: Iterable[bytes], server: LiveServer, connection: socket.socket
    ) -> None:
        self._body = body
        self._server = server
        self._connection = connection

    def __iter__(self) -> Any:
        return iter(self._body)

    def close(self) -> None:
        self._server._forget(self._connection)
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


# --- the fleet as the page sees it ----------------------------------------------

WORKER_DEFAULTS: dict[str, Any] = {
    "region": "us-east-1",
    "status": "running",
    "instance_type": "c5.2xlarge",
    "ec2_state": "running",
    "ec2_detailed_monitoring": "disabled",
    "cml_service_status": "available",
    "cml_version": "2.9.0",
    "cml_ready": True,
    "cml_labs_count": 3,
    "cml_labs_running": 1,
    "cml_nodes_total": 20,
    "cml_nodes_running": 8,
    "cloudwatch_cpu_utilization": 20.0,
    "cloudwatch_memory_utilization": 40.0,
}


def seed_worker(name: str, **fields: Any) -> Any:
    """Save a running worker named ``name`` (fields override the defaults)."""
    from backend.models import Worker

    worker = Worker(name=name, **{**WORKER_DEFAULTS, **fields})
    worker.save()
    return worker


def change_worker(redis: Any, worker: Any, event_type: str, **fields: Any) -> str:
    """Change ``worker`` as a refresh would: save, then publish what changed."""
    before = worker.to_dict()
    for name, value in fields.items():
        setattr(worker, name, value)
    worker.save()
    after = worker.to_dict()
    changes = {name: [before.get(name), after.get(name)] for name in fields}
    return publish(
        redis,
        event_type,
        worker_id=str(worker.pk),
        data={"worker": after, "changes": changes},
    )
