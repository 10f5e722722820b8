"""Serving the simulator: gevent's WSGI server, over HTTPS or plain HTTP.

``serve_forever`` runs it in the foreground for ``cmlfleet simulate-cml``.
``start_simulator`` runs it in a background thread with its own gevent hub (or,
in a process patched by gevent, in a greenlet of the main hub) and returns a
``SimulatorServer`` handle for tests and the embedded demo.

The certificate is self-signed for ``127.0.0.1`` and ``localhost``, generated at
start into a temporary directory that lives as long as the server.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import gevent.monkey
import gevent.ssl
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gevent.pywsgi import WSGIHandler, WSGIServer

from backend.simulator.api import DropConnection, SimulatorApp
from backend.simulator.controller import DEFAULT_VERSION, Controller, Faults, Fleet

log = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 1.0
_BACKLOG = 1024


def write_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CML simulator")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )

    certificate_path = directory / "simulator.crt"
    key_path = directory / "simulator.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path


class _Handler(WSGIHandler):
    """Closes the connection unanswered when the application drops it."""

    def run_application(self) -> None:
        try:
            super().run_application()
        except DropConnection:
            self.close_connection = True


class _Server(WSGIServer):
    handler_class = _Handler

    def handle(self, sock: Any, address: Any) -> None:
        # Without TCP_NODELAY every answer on a kept-alive connection after the
        # first waits ~40 ms for the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)

    def wrap_socket_and_handle(self, client_socket: Any, address: Any) -> Any:
        # A client that gives up during the TLS handshake (a timeout test, a
        # benchmark being stopped) is routine here, not worth a traceback.
        try:
            return super().wrap_socket_and_handle(client_socket, address)
        except (ssl.SSLError, OSError) as exc:
            log.debug("simulator: TLS connection from %s failed (%s)", address, exc)
            return None


@contextmanager
def _listening(
    app: SimulatorApp, host: str, port: int, use_tls: bool
) -> Iterator[tuple[_Server, Path | None]]:
    """A started server, and the certificate path when it speaks TLS."""
    with tempfile.TemporaryDirectory(prefix="cml-simulator-") as directory:
        options: dict[str, Any] = {}
        certificate = None
        if use_tls:
            certificate, key = write_certificate(Path(directory))
            context = gevent.ssl.SSLContext(gevent.ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificate, key)
            options["ssl_context"] = context

        server = _Server(
            (host, port),
            app,
            log=None,
            error_log=log,
            backlog=_BACKLOG,
            **options,
        )
        server.start()
        try:
            yield server, certificate
        finally:
            server.stop(timeout=STOP_GRACE_SECONDS)


def _url(host: str, port: int, use_tls: bool) -> str:
    return f"{'https' if use_tls else 'http'}://{host}:{port}"


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 9443,
    *,
    use_tls: bool = True,
    controllers: int = 0,
    token_lifetime: float = 86400,
    username: str = "admin",
    password: str = "admin",
    drift: float = 1.0,
    version: str = DEFAULT_VERSION,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve simulated controllers in the foreground until interrupted or SIGTERM.

    Args:
        port: 0 picks a free port; ``on_ready`` learns the URL.
        controllers: how many controllers (``cml-001`` …) to create up front;
            any other id is created when first asked for.
        token_lifetime: seconds until an issued token expires.
        drift: how fast numbers and labs move; 1.0 is the normal pace, 0 freezes.
        version: the CML release every controller reports.
        on_ready: called with the server URL once it listens.
    """
    fleet = Fleet(
        username=username,
        password=password,
        token_lifetime=token_lifetime,
        drift=drift,
        version=version,
    )
    fleet.precreate(controllers)
    with _listening(SimulatorApp(fleet), host, port, use_tls) as (server, _):
        url = _url(host, server.server_port, use_tls)
        log.info(
            "simulator: serving CML %s at %s/<controller-id>/ (%d created up front)",
            version,
            url,
            controllers,
        )
        if on_ready is not None:
            on_ready(url)

        # Stopping must not block the hub, so it gets a greenlet of its own.
        stopper = gevent.signal_handler(signal.SIGTERM, gevent.spawn, server.stop)
        try:
            server.serve_forever()
        finally:
            stopper.cancel()


class SimulatorServer:
    """A simulator running in the background; stop it with ``stop()``.

    Attributes:
        fleet: the simulated controllers, for direct inspection.
        url: the server root, e.g. ``https://127.0.0.1:43121``.
        certificate: path of the self-signed certificate (None over HTTP); valid
            as a CA bundle for ``verify=`` until the server stops.
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        use_tls: bool = True,
        outage_hold: float | None = None,
    ) -> None:
        self.fleet = fleet
        self.app = SimulatorApp(fleet)
        if outage_hold is not None:
            self.app.outage_hold = outage_hold
        self.url = ""
        self.certificate: Path | None = None
        self._host = host
        self._port = port
        self._use_tls = use_tls
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stopping: gevent.event.Event | None = None
        self._hub: Any = None
        self._thread = threading.Thread(
            target=self._run, name="cml-simulator", daemon=True
        )

    def start(self) -> SimulatorServer:
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure
        return self

    def _run(self) -> None:
        self._hub = gevent.get_hub()
        self._stopping = gevent.event.Event()
        try:
            with _listening(self.app, self._host, self._port, self._use_tls) as (
                server,
                certificate,
            ):
                self.url = _url(self._host, server.server_port, self._use_tls)
                self.certificate = certificate
                log.info("simulator: serving at %s", self.url)
                self._ready.set()
                self._stopping.wait()
        except Exception as exc:
            # Whatever stopped the server from listening (a port in use, most
            # likely) is raised again by start() in the thread that asked.
            self._failure = exc
            self._ready.set()
        finally:
            if not gevent.monkey.is_module_patched("threading"):
                # This thread owns its hub; an unpatched process leaves it behind.
                self._hub.destroy(destroy_loop=True)

    def stop(self) -> None:
        """Stop serving; held and in-flight requests are cut after a short grace."""
        if self._stopping is None or not self._thread.is_alive():
            return

        self._hub.loop.run_callback_threadsafe(self._stopping.set)
        self._thread.join(timeout=STOP_GRACE_SECONDS + 5)
        log.info("simulator: stopped serving at %s", self.url)

    def __enter__(self) -> SimulatorServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def controller(self, controller_id: str) -> Controller:
        return self.fleet.controller(controller_id)

    def controller_url(self, controller_id: str) -> str:
        """The controller's root URL, ending in ``/``.

        The trailing slash keeps clients that resolve ``api/v0/`` relative to
        the URL (virl2-client does) under the controller's prefix.
        """
        return f"{self.url}/{controller_id}/"

    def set_faults(
        self,
        controller_id: str,
        *,
        latency_ms: int = 0,
        outage: bool = False,
        disconnect: bool = False,
        error_status: int | None = None,
        revoke_tokens: bool = False,
    ) -> None:
        """Replace a controller's faults; ``revoke_tokens`` ends all its sessions."""
        controller = self.fleet.controller(controller_id)
        if revoke_tokens:
            self.app.issuer.revoke_all(controller)
        controller.faults = Faults(
            latency_ms=latency_ms,
            outage=outage,
            disconnect=disconnect,
            error_status=error_status,
        )

    def clear_faults(self, controller_id: str) -> None:
        self.fleet.controller(controller_id).faults = Faults()

    def configure(self, controller_id: str, **settings: Any) -> None:
        """Change ``version``, ``ready``, ``healthy``, ``licensed``, ``drift`` or
        ``token_lifetime`` of one controller."""
        self.fleet.controller(controller_id).configure(**settings)

    def stats(self, controller_id: str) -> dict[str, Any]:
        """Requests and authentications the controller has received."""
        controller = self.fleet.controller(controller_id)
        with controller.lock:
            return controller.counters.as_dict()


def start_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    use_tls: bool = True,
    controllers: int = 0,
    token_lifetime: float = 86400,
    username: str = "admin",
    password: str = "admin",
    drift: float = 1.0,
    version: str = DEFAULT_VERSION,
    outage_hold: float | None = None,
) -> SimulatorServer:
    """Start a simulator in the background on ``port`` (0 picks a free one).

    Arguments are those of ``serve_forever``; ``outage_hold`` shortens how long
    an outage holds a request before closing the connection.
    """
    fleet = Fleet(
        username=username,
        password=password,
        token_lifetime=token_lifetime,
        drift=drift,
        version=version,
    )
    fleet.precreate(controllers)
    server = SimulatorServer(
        fleet, host=host, port=port, use_tls=use_tls, outage_hold=outage_hold
    )
    return server.start()


class SimulatorProcess:
    """A simulator in a child process (``python -m backend.simulator``).

    For benchmarks: a simulator in a thread shares the interpreter lock with
    the code under test, and hundreds of controllers would measure that lock
    rather than the client. Faults, settings and counters go over HTTP.
    """

    def __init__(self, *, use_tls: bool = True, drift: float = 1.0) -> None:
        arguments = ["--port", "0", "--drift", str(drift)]
        if not use_tls:
            arguments.append("--http")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "backend.simulator", *arguments],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()
        if not line:
            self._process.wait(timeout=5)
            raise RuntimeError("the simulator process exited before it listened")

        self.url = line
        self._tls = ssl.create_default_context()
        # Only the control routes of our own child are called through this.
        self._tls.check_hostname = False
        self._tls.verify_mode = ssl.CERT_NONE

    def controller_url(self, controller_id: str) -> str:
        return f"{self.url}/{controller_id}/"

    def set_faults(self, controller_id: str, **faults: Any) -> None:
        """Replace a controller's faults, as ``SimulatorServer.set_faults``."""
        self._control("PUT", controller_id, "faults", faults)

    def clear_faults(self, controller_id: str) -> None:
        self._control("DELETE", controller_id, "faults")

    def configure(self, controller_id: str, **settings: Any) -> None:
        self._control("PATCH", controller_id, "config", settings)

    def stats(self, controller_id: str) -> dict[str, Any]:
        stats: dict[str, Any] = self._control("GET", controller_id, "stats")
        return stats

    def stop(self) -> int:
        """Stop the child with SIGTERM; returns its exit status (0 when clean)."""
        self._process.terminate()
        status = self._process.wait(timeout=STOP_GRACE_SECONDS + 5)
        if self._process.stdout is not None:
            self._process.stdout.close()
        return status

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _control(
        self, method: str, controller_id: str, what: str, body: Any = None
    ) -> Any:
        request = urllib.request.Request(
            f"{self.url}/{controller_id}/_sim/{what}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10, context=self._tls) as answer:
            return json.loads(answer.read())
