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
import logging
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
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
) -> None:
    """Serve simulated controllers in the foreground until interrupted.

    Args:
        controllers: how many controllers (``cml-001`` …) to create up front;
            any other id is created when first asked for.
        token_lifetime: seconds until an issued token expires.
        drift: how fast numbers and labs move; 1.0 is the normal pace, 0 freezes.
        version: the CML release every controller reports.
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
        server.serve_forever()


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
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
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
        """Change ``version``, ``ready``, ``healthy``, ``licensed`` or ``drift``."""
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


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now, for tests that need a dead address."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
