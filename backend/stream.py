"""The live event stream: Server-Sent Events and a WebSocket carrying the same events.

Both endpoints hand each client to the process's event hub (``backend.events``):
the client joins the hub first and replays from the stream second, so resuming
from an id misses nothing and repeats nothing. Each event is filtered for the
client's role and encoded once per role, whatever the number of clients.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from functools import partial
from typing import Any

from apiflask import APIBlueprint, APIFlask
from apiflask.exceptions import HTTPError
from flask import Response, current_app, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed, Server

from backend.auth import current_sid, current_user, require, session_is_current
from backend.events import Hub, Session

log = logging.getLogger(__name__)

bp = APIBlueprint("stream", __name__, url_prefix="/api/workers", tag="Workers")
sock = Sock()

RETRY_MILLISECONDS = 3000
#: Events a client may fall behind before it is sent ``resync`` and closed.
DEFAULT_CLIENT_BACKLOG = 1000
#: Clients only listen; anything bigger they send is refused by the socket layer.
MAX_CLIENT_MESSAGE_BYTES = 4096
SESSION_ENDED = 1008


def init_app(app: APIFlask) -> None:
    """Create the process's hub (it connects with its first client) and the routes."""
    settings = app.extensions["cmlfleet.settings"]
    app.extensions["cmlfleet.hub"] = Hub(
        settings.redis_url,
        backlog=app.config.get("STREAM_CLIENT_BACKLOG", DEFAULT_CLIENT_BACKLOG),
        heartbeat=settings.sse_heartbeat_seconds,
        session_is_current=partial(_session_is_current, app),
    )
    app.config.setdefault(
        "SOCK_SERVER_OPTIONS",
        {
            "ping_interval": settings.sse_heartbeat_seconds,
            "max_message_size": MAX_CLIENT_MESSAGE_BYTES,
        },
    )
    app.register_blueprint(bp)


def hub() -> Hub:
    """The event hub of the running app."""
    return current_app.extensions["cmlfleet.hub"]  # type: ignore[no-any-return]


def sse_frame(event: dict[str, Any]) -> bytes:
    """One event in Server-Sent Events framing (the id line only when it has one)."""
    data = json.dumps(event, separators=(",", ":"))
    head = f"id: {event['id']}\n" if event.get("id") else ""
    return f"{head}event: {event['type']}\ndata: {data}\n\n".encode()


def ws_text(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


@bp.get("/events")
@bp.doc(
    summary="Live events (Server-Sent Events)",
    description=(
        "A text/event-stream of event envelopes. Resume with the Last-Event-ID "
        "header or the lastEventId query parameter to receive every event after "
        "that id, in order and once; an id older than the replay buffer gets a "
        "`resync` event."
    ),
    responses=[401],
)
@require("user")
def events_stream() -> Response:
    role, session = _client()
    last_id = request.headers.get("Last-Event-ID") or request.args.get(
        "lastEventId", ""
    )
    body = _sse_body(hub(), role, session, last_id, _closer(request.environ))
    response = Response(body, content_type="text/event-stream", direct_passthrough=True)
    response.headers["Cache-Control"] = "no-cache"
    # Proxies such as nginx would otherwise hold events back to fill a buffer.
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.before_request
def _signed_in_before_upgrade() -> None:
    # flask-sock answers the WebSocket handshake before its view runs, so the
    # socket route refuses strangers here, while a 401 can still be sent.
    if request.endpoint == "stream.events_socket" and current_user() is None:
        raise HTTPError(401, "Sign in first.")


@sock.route("/ws", bp=bp)
@require("user")
def events_socket(ws: Server) -> None:
    """The event envelopes as WebSocket text frames; resume with ?lastEventId=."""
    role, session = _client()
    last_id = request.args.get("lastEventId") or request.headers.get(
        "Last-Event-ID", ""
    )
    ws.sock = _WholeFrames(ws.sock)
    try:
        with hub().subscribe(role, session) as subscription:
            for delivery in subscription.messages(last_id):
                if not ws.connected:
                    return
                if delivery is None:
                    _discard_input(ws)
                    continue
                text = delivery.encoded(role, ws_text)
                if text is not None:
                    ws.send(text)
            if subscription.revoked:
                ws.close(SESSION_ENDED, "The session has ended; sign in again.")
    except (ConnectionClosed, OSError):
        log.debug("stream: a %s WebSocket client went away", role)


@bp.get("/ws")
@bp.doc(
    summary="Live events over a WebSocket",
    description=(
        "Upgrade to a WebSocket to receive the same envelopes as text frames; "
        "resume with the lastEventId query parameter. A plain GET is refused."
    ),
    responses=[400, 401],
)
@require("user")
def events_socket_without_upgrade() -> None:
    raise HTTPError(
        400,
        "This endpoint speaks WebSocket: connect with an Upgrade request.",
        extra_data={"error": "websocket_required"},
    )


def _client() -> tuple[str, Session | None]:
    user = current_user()
    assert user is not None, "require() lets only signed-in users through"
    sid = current_sid()
    return user.role, (sid, user.username, user.role) if sid else None


def _sse_body(
    hub: Hub,
    role: str,
    session: Session | None,
    last_id: str,
    abort: Callable[[], None] | None,
) -> Iterator[bytes]:
    # The first bytes go out before anything can wait on Redis, so the browser
    # and every proxy on the way see the stream open at once.
    yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
    with hub.subscribe(role, session, abort=abort) as subscription:
        for delivery in subscription.messages(last_id):
            if delivery is None:
                yield b": keepalive\n\n"
                continue
            frame = delivery.encoded(role, sse_frame)
            if frame is not None:
                yield frame


def _closer(environ: dict[str, Any]) -> Callable[[], None] | None:
    """Shut the client's socket, which unblocks a write stuck on a client that
    stopped reading; only gunicorn hands the socket to the application."""
    client = environ.get("gunicorn.socket")
    if client is None:
        return None

    def close() -> None:
        with suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)

    return close


def _session_is_current(app: APIFlask, session: Session) -> bool:
    with app.app_context():
        return session_is_current(*session)


def _discard_input(ws: Server) -> None:
    # The protocol is one-way; whatever a client sends is read and dropped so
    # that it cannot pile up in the connection's input buffer.
    while ws.input_buffer:
        ws.receive(timeout=0)


class _WholeFrames:
    """The WebSocket's socket, writing each frame whole and one at a time.

    simple-websocket writes with ``socket.send``, which may write only part of
    a frame once a slow client's window is full; ``sendall`` finishes it, and the
    lock keeps the library's own pongs from landing inside one of our frames.
    """

    def __init__(self, client: Any) -> None:
        self._socket = client
        self._lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self._lock:
            self._socket.sendall(data)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._socket, name)
