"""Helpers for the stream tests: the app under gunicorn's gevent worker, and clients.

``build_app()`` is what the gunicorn subprocess serves: the real app, with the
accounts named in ``STREAM_TEST_ACCOUNTS`` (``name:password:role,...``) created in
its own in-memory MongoDB. The clients read over real sockets, parsing the
stream by hand, so the tests see exactly the bytes a browser would.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def build_app() -> Any:
    """The app as gunicorn serves it in production, plus the test accounts."""
    from argon2 import PasswordHasher

    from backend import auth
    from backend.app import configure_logging, create_app
    from backend.bootstrap import initialise
    from backend.settings import load_settings

    configure_logging()
    # The same algorithm at a small cost, as in conftest: sign-ins stay quick.
    auth.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    settings = load_settings(environment="test")
    config = {}
    if os.environ.get("STREAM_CLIENT_BACKLOG"):
        config["STREAM_CLIENT_BACKLOG"] = int(os.environ["STREAM_CLIENT_BACKLOG"])
    app = create_app(settings, **config)
    with app.app_context():
        list(initialise(settings))
        for account in filter(None, os.environ["STREAM_TEST_ACCOUNTS"].split(",")):
            name, password, role = account.split(":")
            auth.create_user(name, password, role)
    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StreamServer:
    """One gunicorn process (one gevent worker) serving the app on a free port."""

    def __init__(
        self,
        redis_url: str,
        accounts: list[tuple[str, str, str]],
        log_path: Path,
        *,
        heartbeat: float = 1.0,
        backlog: int | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "SECRET_KEY": "stream-test-secret-0123456789",
            "REDIS_URL": redis_url,
            "MONGODB_URL": "mongomock://localhost/cmlfleet_stream",
            "SSE_HEARTBEAT_SECONDS": str(heartbeat),
            "STREAM_TEST_ACCOUNTS": ",".join(":".join(a) for a in accounts),
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
        }
        if backlog is not None:
            env["STREAM_CLIENT_BACKLOG"] = str(backlog)
        self.log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "backend" / "gunicorn_conf.py"),
                "--workers",
                "1",
                "--graceful-timeout",
                "1",
                "--no-control-socket",
                "--bind",
                f"127.0.0.1:{self.port}",
                "stream_fixtures:build_app()",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the test server did not start; see {self.log.name}")

    def login(self, username: str, password: str) -> Session:
        body = json.dumps({"username": username, "password": password}).encode()
        request = urllib.request.Request(
            f"{self.base}/api/auth/login",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            cookie = response.headers["Set-Cookie"].split(";", 1)[0]
            csrf = json.load(response)["csrf_token"]
        return Session(self, cookie, csrf)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Session:
    """A signed-in browser: its cookie and CSRF token."""

    def __init__(self, server: StreamServer, cookie: str, csrf: str) -> None:
        self.server = server
        self.cookie = cookie
        self.csrf = csrf

    def post(self, path: str) -> int:
        request = urllib.request.Request(
            f"{self.server.base}{path}",
            method="POST",
            headers={"Cookie": self.cookie, "X-CSRF-Token": self.csrf},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status

    def sse(self, **kwargs: Any) -> SSEClient:
        return SSEClient(self.server.port, self.cookie, **kwargs)

    def websocket(self, last_id: str = "") -> WSClient:
        return WSClient(self.server.port, self.cookie, last_id)


class _Reader:
    """A background reader that collects what arrives and lets tests wait on it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed = False
        self._changed = threading.Condition()

    def _record(self, update: Callable[[], None]) -> None:
        with self._changed:
            update()
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def wait_for_events(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        if not self.wait_for(lambda: len(self.events) >= count or self.closed, timeout):
            raise AssertionError(
                f"{len(self.events)} of {count} events arrived in {timeout} s"
            )
        return self.events

    def ids(self) -> list[str]:
        return [event["id"] for event in self.events]


class SSEClient(_Reader):
    """An EventSource over a raw socket: frames are parsed as the spec says."""

    def __init__(
        self,
        port: int,
        cookie: str | None,
        *,
        last_id: str = "",
        query: str = "",
        receive_buffer: int | None = None,
        read: bool = True,
    ) -> None:
        super().__init__()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.comments: list[str] = []
        self.retry: int | None = None
        self.frames: list[dict[str, str]] = []
        self.sock = socket.socket()
        if receive_buffer:
            # A small window makes a client that stops reading fill up fast.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.connect(("127.0.0.1", port))
        lines = [
            f"GET /api/workers/events{query} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Accept: text/event-stream",
        ]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        if last_id:
            lines.append(f"Last-Event-ID: {last_id}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._thread: threading.Thread | None = None
        if read:
            self.start_reading()

    def start_reading(self) -> None:
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def close(self) -> None:
        # The reader's file object keeps the descriptor open; shutting the
        # socket down is what actually drops the connection.
        with suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.wait_for(lambda: self.closed or self._thread is None)

    def _read(self) -> None:
        stream = self.sock.makefile("rb")
        try:
            self._read_head(stream)
            if self.headers.get("transfer-encoding") == "chunked":
                self._read_body(_dechunked(stream))
            else:
                self._read_body(iter(stream.readline, b""))
        except (OSError, ValueError):
            pass
        finally:
            stream.close()
            self.sock.close()
            self._record(lambda: setattr(self, "closed", True))

    def _read_head(self, stream: Any) -> None:
        status = stream.readline().decode()
        self.status = int(status.split()[1])
        for line in iter(stream.readline, b"\r\n"):
            name, _, value = line.decode().partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.status != 200:
            length = int(self.headers.get("content-length", 0))
            self.body = json.loads(stream.read(length))
            raise ValueError("not a stream")

    def _read_body(self, lines: Any) -> None:
        frame: dict[str, str] = {}
        pending = b""
        for piece in lines:
            pending += piece
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                line = raw.decode()
                if line:
                    self._field(frame, line)
                    continue
                if frame:
                    self._dispatch(frame)
                frame = {}

    def _field(self, frame: dict[str, str], line: str) -> None:
        if line.startswith(":"):
            self._record(lambda: self.comments.append(line[1:].strip()))
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "retry":
            self.retry = int(value)
        else:
            frame[name] = value

    def _dispatch(self, frame: dict[str, str]) -> None:
        def add() -> None:
            self.frames.append(frame)
            if "data" in frame:
                self.events.append(json.loads(frame["data"]))

        self._record(add)


def _dechunked(stream: Any) -> Any:
    while True:
        size = int(stream.readline().split(b";")[0], 16)
        if size == 0:
            return
        yield stream.read(size)
        stream.readline()


class WSClient(_Reader):
    """A WebSocket client (websocket-client) reading text frames in the background."""

    def __init__(self, port: int, cookie: str, last_id: str = "") -> None:
        import websocket

        super().__init__()
        query = f"?lastEventId={last_id}" if last_id else ""
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/api/workers/ws{query}",
            cookie=cookie,
            timeout=30,
        )
        self.close_status: int | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        import websocket

        try:
            while True:
                opcode, data = self.ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.close_status = int.from_bytes(data[:2], "big") if data else 0
                    return
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    self._record(partial(self.events.append, json.loads(data)))
        except (OSError, websocket.WebSocketException):
            pass
        finally:
            self.ws.shutdown()
            self._record(lambda: setattr(self, "closed", True))

    def close(self) -> None:
        # Dropping the connection ends the reader, which then closes the socket.
        self.ws.abort()
        self.wait_for(lambda: self.closed)
