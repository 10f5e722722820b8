"""The CML client: reads one worker's CML controller over its REST API.

``CMLClient`` talks to ``{base_url}/api/v0/`` over one urllib3 connection pool and
turns every failure into one of the ``CMLError`` classes of ``backend.errors``.
``CMLClient.collect()`` gathers everything a refresh stores for a worker: the
``cml_*`` worker fields and the worker's lab documents.

Tokens are cached in Redis per controller and user, so every process shares
them, until shortly before the JWT's ``exp``. A 401 drops the cached token and
signs in again once, then retries once; a 403 never signs in again.

The parse functions accept the differences recorded between CML 2.7 and 2.10:
fields that are missing in older releases (``owner_fullname``,
``effective_permissions``, ``hyperthreading``) and numbers sent as ints or floats.
"""

from __future__ import annotations

import functools
import json as _json
import logging
import math
import os
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import certifi
import jwt
import urllib3
from redis import Redis, RedisError
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as TLSError
from urllib3.util import parse_url
from urllib3.util.ssl_ import create_urllib3_context

from backend.errors import (
    CMLAuthenticationFailed,
    CMLError,
    CMLNotPermitted,
    CMLUnexpectedResponse,
    CMLUnreachable,
    NotFound,
)

log = logging.getLogger(__name__)

TOKEN_KEY_PREFIX = "cmlfleet:cml-token:"
#: A cached token is dropped this many seconds before its ``exp``.
TOKEN_EXPIRY_MARGIN = 30.0
#: How long to cache a token whose ``exp`` cannot be read or looks past.
FALLBACK_TOKEN_TTL = 300.0
#: Threads that fetch side by side for every client of the process: the system
#: calls of a collect and each lab's detail. They mostly wait on the network,
#: so there are enough for a refresh of 50 workers at once (4 system calls and
#: a few labs each); shared, so that no call pays for starting threads.
FETCH_WORKERS = 256
#: Connections open at once per controller: more requests wait for one, so a
#: controller with many labs is not asked for all of them at the same moment.
CONNECTIONS_PER_CONTROLLER = 12

SERVICE_STATUSES = ("unavailable", "starting", "available", "error")

CML_FIELDS = (
    "cml_service_status",
    "cml_version",
    "cml_ready",
    "cml_labs_count",
    "cml_labs_running",
    "cml_nodes_total",
    "cml_nodes_running",
    "cml_allocated_cpus",
    "cml_allocated_memory",
    "cml_cpu_count",
    "cml_cpu_utilization",
    "cml_memory_total",
    "cml_memory_used",
    "cml_disk_total",
    "cml_disk_used",
    "cml_health_valid",
    "cml_is_licensed",
    "cml_license_registration",
    "cml_license_authorization",
    "cml_license_product",
    "cml_license_expires",
    "cml_license_smart_account",
    "cml_license_virtual_account",
    "cml_synced_at",
)
LAB_FIELDS = (
    "lab_id",
    "title",
    "description",
    "state",
    "owner_username",
    "node_count",
    "link_count",
    "created",
    "modified",
)

T = TypeVar("T")


# Results


@dataclass(frozen=True)
class SystemInformation:
    version: str
    ready: bool


@dataclass(frozen=True)
class SystemHealth:
    valid: bool | None
    is_licensed: bool | None
    is_enterprise: bool | None
    controller_valid: bool | None
    invalid_computes: tuple[str, ...]


@dataclass(frozen=True)
class ComputeStats:
    id: str
    hostname: str
    is_controller: bool
    cpu_count: int
    cpu_percent: float
    memory_total: int
    memory_used: int
    disk_total: int
    disk_used: int
    allocated_cpus: int
    allocated_memory: int
    total_nodes: int | None
    running_nodes: int | None


@dataclass(frozen=True)
class SystemStats:
    """Totals over every compute; ``allocated_memory`` is in CML's unit (KiB)."""

    computes: tuple[ComputeStats, ...]
    cpu_count: int
    cpu_utilization: float | None
    memory_total: int
    memory_used: int
    disk_total: int
    disk_used: int
    allocated_cpus: int
    allocated_memory: int
    nodes_total: int | None
    nodes_running: int | None


@dataclass(frozen=True)
class Licensing:
    registration: str | None
    authorization: str | None
    product: str | None
    expires: datetime | None
    smart_account: str | None
    virtual_account: str | None
    is_enterprise: bool | None

    @property
    def is_licensed(self) -> bool:
        return (self.registration, self.authorization) == (
            "COMPLETED",
            "IN_COMPLIANCE",
        )


@dataclass(frozen=True)
class Lab:
    id: str
    title: str
    description: str
    state: str
    owner_id: str | None
    owner_username: str | None
    owner_fullname: str | None
    node_count: int
    link_count: int
    created: datetime | None
    modified: datetime | None
    effective_permissions: tuple[str, ...] | None

    def document(self) -> dict[str, Any]:
        """The lab as the labs collection stores it (without worker and sync time)."""
        return {
            "lab_id": self.id,
            "title": self.title,
            "description": self.description,
            "state": self.state,
            "owner_username": self.owner_username,
            "node_count": self.node_count,
            "link_count": self.link_count,
            "created": self.created,
            "modified": self.modified,
        }


@dataclass(frozen=True)
class CMLSnapshot:
    """What one collect read: ``fields`` holds every ``cml_*`` worker field,
    ``labs`` one document per lab."""

    fields: dict[str, Any]
    labs: list[dict[str, Any]]


# Parsing recorded bodies


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from CML's ISO-8601 times or its zone-less licensing
    times (``2026-08-20 17:25:30``, which are UTC); None when absent or unreadable.
    """
    if not isinstance(value, str) or not value.strip():
        return None

    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        log.debug("cml: unreadable time %r", value)
        return None

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_system_information(body: Any) -> SystemInformation:
    return SystemInformation(version=str(body["version"]), ready=bool(body["ready"]))


def parse_system_health(body: Any) -> SystemHealth:
    computes = body.get("computes") or {}
    controller = body.get("controller") or {}
    return SystemHealth(
        valid=_optional_bool(body.get("valid")),
        is_licensed=_optional_bool(body.get("is_licensed")),
        is_enterprise=_optional_bool(body.get("is_enterprise")),
        controller_valid=_optional_bool(controller.get("valid")),
        invalid_computes=tuple(
            str(compute.get("hostname") or compute_id)
            for compute_id, compute in computes.items()
            if compute.get("valid") is False
        ),
    )


def parse_system_stats(body: Any) -> SystemStats:
    """Totals summed over ``computes``; ``all`` only stands in when none are listed.

    There is no ``total_vcpus`` in any CML release: the CPU count is each
    compute's ``cpu.count`` and memory its ``memory.total``. ``dominfo`` exists
    per compute only.
    """
    computes = tuple(
        _compute_stats(compute_id, compute)
        for compute_id, compute in (body.get("computes") or {}).items()
    )
    if not computes and body.get("all"):
        computes = (_compute_stats("all", {"hostname": "all", "stats": body["all"]}),)

    cpu_count = sum(compute.cpu_count for compute in computes)
    utilization = None
    if cpu_count:
        weighted = sum(c.cpu_percent * c.cpu_count for c in computes)
        utilization = round(weighted / cpu_count, 2)

    return SystemStats(
        computes=computes,
        cpu_count=cpu_count,
        cpu_utilization=utilization,
        memory_total=sum(compute.memory_total for compute in computes),
        memory_used=sum(compute.memory_used for compute in computes),
        disk_total=sum(compute.disk_total for compute in computes),
        disk_used=sum(compute.disk_used for compute in computes),
        allocated_cpus=sum(compute.allocated_cpus for compute in computes),
        allocated_memory=sum(compute.allocated_memory for compute in computes),
        nodes_total=_sum_known(compute.total_nodes for compute in computes),
        nodes_running=_sum_known(compute.running_nodes for compute in computes),
    )


def _compute_stats(compute_id: str, compute: Mapping[str, Any]) -> ComputeStats:
    stats = compute["stats"]
    cpu = stats.get("cpu") or {}
    memory = stats.get("memory") or {}
    disk = stats.get("disk") or {}
    dominfo = stats.get("dominfo") or {}
    return ComputeStats(
        id=compute_id,
        hostname=str(compute.get("hostname", "")),
        is_controller=bool(compute.get("is_controller", False)),
        cpu_count=int(cpu.get("count") or 0),
        cpu_percent=float(cpu.get("percent") or 0.0),
        memory_total=int(memory.get("total") or 0),
        memory_used=int(memory.get("used") or 0),
        disk_total=int(disk.get("total") or 0),
        disk_used=int(disk.get("used") or 0),
        allocated_cpus=int(dominfo.get("allocated_cpus") or 0),
        allocated_memory=int(dominfo.get("allocated_memory") or 0),
        total_nodes=_optional_int(dominfo.get("total_nodes")),
        running_nodes=_optional_int(dominfo.get("running_nodes")),
    )


def parse_licensing(body: Any) -> Licensing:
    """``expires`` is the registration's expiry, or the authorization's if absent."""
    registration = body.get("registration") or {}
    authorization = body.get("authorization") or {}
    product = body.get("product_license") or {}
    return Licensing(
        registration=registration.get("status"),
        authorization=authorization.get("status"),
        product=product.get("active"),
        expires=parse_time(registration.get("expires"))
        or parse_time(authorization.get("expires")),
        smart_account=registration.get("smart_account"),
        virtual_account=registration.get("virtual_account"),
        is_enterprise=_optional_bool(product.get("is_enterprise")),
    )


def parse_lab(body: Any) -> Lab:
    permissions = body.get("effective_permissions")
    return Lab(
        id=str(body["id"]),
        title=str(body.get("lab_title") or ""),
        description=str(body.get("lab_description") or ""),
        state=str(body["state"]),
        owner_id=body.get("owner"),
        owner_username=body.get("owner_username"),
        owner_fullname=body.get("owner_fullname"),
        node_count=int(body.get("node_count") or 0),
        link_count=int(body.get("link_count") or 0),
        created=parse_time(body.get("created")),
        modified=parse_time(body.get("modified")),
        effective_permissions=None if permissions is None else tuple(permissions),
    )


def _optional_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _sum_known(values: Any) -> int | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


# Status and errors


def service_status(info: SystemInformation, health: SystemHealth) -> str:
    """``cml_service_status`` of a controller that answered.

    * ``starting`` while ``system_information`` says not ready: no compute can
      start nodes yet, which is how a controller looks while it boots (its
      health is usually not valid then either, so readiness is asked first);
    * ``error`` when ready but ``system_health`` is not valid (a compute or a
      controller service is broken);
    * ``available`` otherwise.

    A controller that did not answer gets ``status_for_error`` instead.
    """
    if not info.ready:
        return "starting"
    if health.valid is False:
        return "error"
    return "available"


def status_for_error(exc: BaseException) -> str:
    """``cml_service_status`` after a failed collect.

    ``unavailable`` when the controller did not answer, ``starting`` for a 502
    (the web front answers while CML's services are still coming up),
    ``error`` for everything else: bad credentials, refusals, other 4xx/5xx.
    """
    if isinstance(exc, CMLUnreachable):
        return "unavailable"
    if isinstance(exc, CMLUnexpectedResponse) and exc.status == 502:
        return "starting"
    return "error"


def describe_error(exc: BaseException) -> str:
    """A short sentence for a worker's ``last_error.message``."""
    if isinstance(exc, CMLUnexpectedResponse):
        return f"CML answered {exc.status}: {exc.description}"[:300]
    if isinstance(exc, CMLError | NotFound):
        return str(exc)[:300]
    return f"unexpected {type(exc).__name__}: {exc}"[:300]


# Counting calls


class CallCounter:
    """HTTP requests sent to controllers, by call name; thread-safe."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def record(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def by_call(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    @property
    def authentications(self) -> int:
        with self._lock:
            return self._counts["authenticate"]

    @property
    def requests(self) -> int:
        """Every request other than authentication."""
        with self._lock:
            return sum(self._counts.values()) - self._counts["authenticate"]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


#: Every request any client in this process sent, for benchmarks.
calls = CallCounter()


# Transport


class _UnverifiedHTTPSPool(HTTPSConnectionPool):
    """A pool for controllers whose certificates are deliberately not verified.

    urllib3 warns on every unverified request. ``CML_VERIFY_TLS=false`` is an
    explicit choice for self-signed controllers, so the warning is left out for
    this pool alone instead of through the process-wide warning filters, which
    other code (and our tests, where warnings are errors) rely on.
    """

    def _validate_conn(self, conn: Any) -> None:
        if conn.is_closed:
            conn.connect()


@functools.lru_cache(maxsize=8)
def _tls_context(verify: bool | str) -> ssl.SSLContext:
    """One TLS context per trust setting, shared by every client of the process.

    Left to itself, urllib3 builds a context for every new connection and loads
    a whole CA bundle into it, tens of milliseconds of CPU each time.
    """
    if verify is False:
        context = create_urllib3_context(cert_reqs=ssl.CERT_NONE)
        context.check_hostname = False
        return context

    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    bundle = certifi.where() if verify is True else verify
    try:
        if os.path.isdir(bundle):
            context.load_verify_locations(capath=bundle)
        else:
            context.load_verify_locations(cafile=bundle)
    except (OSError, ssl.SSLError) as exc:
        raise CMLError(f"the CA bundle {bundle} cannot be used ({exc})") from None
    return context


def _controller_pool(
    base_url: str, verify: bool | str, timeout: urllib3.Timeout
) -> tuple[HTTPConnectionPool, str]:
    """Keep-alive connections to one controller and the path its API lives under.

    urllib3 is used directly: a request through it costs a third of the CPU of
    the same request through ``requests``, whose sessions, hooks and cookie
    handling a controller's API does not need. Proxy and ``.netrc`` settings of
    the environment are not read either: controllers are reached directly.
    """
    url = parse_url(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise CMLError(f"{base_url!r} is not an http(s) URL of a CML controller")

    options: dict[str, Any] = {
        "port": url.port,
        "timeout": timeout,
        "maxsize": CONNECTIONS_PER_CONTROLLER,
        "block": True,
        "retries": False,
    }
    pool: HTTPConnectionPool
    if url.scheme == "http":
        pool = HTTPConnectionPool(url.host, **options)
    elif verify is False:
        pool = _UnverifiedHTTPSPool(
            url.host,
            ssl_context=_tls_context(False),
            cert_reqs="CERT_NONE",
            assert_hostname=False,
            **options,
        )
    else:
        pool = HTTPSConnectionPool(
            url.host,
            ssl_context=_tls_context(verify),
            cert_reqs="CERT_REQUIRED",
            **options,
        )
    return pool, (url.path or "").rstrip("/")


@dataclass(frozen=True)
class _Token:
    value: str
    fresh_until: float


_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _connection_failure(exc: BaseException) -> str:
    text = str(exc)
    if match := _ERRNO_TEXT.search(text):
        return match[1].strip().lower()
    if "RemoteDisconnected" in text or "without response" in text:
        return "the connection was closed without an answer"
    return text[:120]


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _fetch_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(FETCH_WORKERS, thread_name_prefix="cml-fetch")
        return _pool


class CMLClient:
    """One controller's REST API.

    Args:
        base_url: the controller root, e.g. ``https://10.0.0.5`` or, behind the
            simulator, ``https://127.0.0.1:9443/i-0abc123``.
        username, password: the CML account.
        redis: where tokens are shared between processes; None keeps them in
            this client only.
        verify: True, False, or the path of a CA bundle (CMLError if it
            cannot be read).
        connect_timeout, read_timeout: seconds, per request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        redis: Redis | None,
        verify: bool | str = False,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.calls = CallCounter()
        self._password = password
        self._redis = redis
        self._timeouts = (connect_timeout, read_timeout)
        self._token_key = f"{TOKEN_KEY_PREFIX}{self.base_url}|{username}"
        self._token: _Token | None = None
        self._token_lock = threading.Lock()

        self._pool, self._prefix = _controller_pool(
            self.base_url,
            verify,
            urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        )

    def __repr__(self) -> str:
        return f"CMLClient({self.base_url!r}, username={self.username!r})"

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> CMLClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Calls

    def system_information(self) -> SystemInformation:
        body = self._call("system_information", "GET", "system_information", auth=False)
        return _parsed("system_information", parse_system_information, body)

    def system_health(self) -> SystemHealth:
        body = self._call("system_health", "GET", "system_health")
        return _parsed("system_health", parse_system_health, body)

    def system_stats(self) -> SystemStats:
        body = self._call("system_stats", "GET", "system_stats")
        return _parsed("system_stats", parse_system_stats, body)

    def licensing(self) -> Licensing:
        body = self._call("licensing", "GET", "licensing")
        return _parsed("licensing", parse_licensing, body)

    def lab(self, lab_id: str) -> Lab:
        body = self._lab_call("lab", "GET", lab_id, "")
        return _parsed("lab", parse_lab, body)

    def labs(self) -> list[Lab]:
        """Every lab on the controller, details fetched concurrently.

        A lab deleted between the listing and its detail is left out.
        """
        ids = self._call("labs", "GET", "labs", params={"show_all": "true"})
        if not isinstance(ids, list):
            raise CMLUnexpectedResponse(200, "labs: expected a list of lab ids")
        if not ids:
            return []

        found = _fetch_pool().map(self._lab_if_exists, [str(i) for i in ids])
        return [lab for lab in found if lab is not None]

    def start_lab(self, lab_id: str) -> None:
        self._lab_call("start_lab", "PUT", lab_id, "/start")

    def stop_lab(self, lab_id: str) -> None:
        self._lab_call("stop_lab", "PUT", lab_id, "/stop")

    def wipe_lab(self, lab_id: str) -> None:
        self._lab_call("wipe_lab", "PUT", lab_id, "/wipe")

    def collect(self) -> CMLSnapshot:
        """Everything a refresh stores for the worker, read in as few round trips
        as the API allows: sign in if needed, then the four system calls and the
        labs side by side.
        """
        self._current_token()
        pool = _fetch_pool()
        info = pool.submit(self.system_information)
        health = pool.submit(self.system_health)
        stats = pool.submit(self.system_stats)
        licensing = pool.submit(self._licensing_if_permitted)
        # Should the labs fail, the system calls still run out, each bounded by
        # the timeouts; nothing waits for them.
        labs = self.labs()
        return _snapshot(
            info.result(), health.result(), stats.result(), licensing.result(), labs
        )

    def _licensing_if_permitted(self) -> Licensing | None:
        try:
            return self.licensing()
        except CMLNotPermitted:
            log.debug("cml %s: licensing is for administrators only", self.base_url)
            return None

    def _lab_if_exists(self, lab_id: str) -> Lab | None:
        try:
            return self.lab(lab_id)
        except NotFound:
            log.debug("cml %s: lab %s vanished while listing", self.base_url, lab_id)
            return None

    def _lab_call(self, name: str, method: str, lab_id: str, suffix: str) -> Any:
        try:
            return self._call(name, method, f"labs/{quote(lab_id, safe='')}{suffix}")
        except CMLUnexpectedResponse as exc:
            if exc.status == 404:
                raise NotFound(f"lab {lab_id} does not exist on this worker") from None
            raise

    # Requests

    def _call(
        self,
        name: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Any:
        token = self._current_token() if auth else None
        response = self._send(name, method, path, token=token, params=params)
        if token is not None and response.status == 401:
            log.warning(
                "cml %s: token refused on %s, signing in again", self.base_url, name
            )
            token = self._renew_token(stale=token)
            response = self._send(name, method, path, token=token, params=params)
        return self._body(name, response, authenticated=token is not None)

    def _send(
        self,
        name: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = None
        if json is not None:
            body = _json.dumps(json).encode()
            headers["Content-Type"] = "application/json"
        url = f"{self._prefix}/api/v0/{path}"
        if params:
            url += "?" + urlencode(params)
        self.calls.record(name)
        calls.record(name)
        connect_timeout, read_timeout = self._timeouts
        started = time.monotonic()
        try:
            response = self._pool.urlopen(
                method,
                url,
                body=body,
                headers=headers,
                redirect=False,
                assert_same_host=False,
                pool_timeout=math.ceil(connect_timeout + read_timeout),
            )
        except TLSError as exc:
            raise CMLError(
                f"TLS with the controller failed ({_connection_failure(exc)}); "
                "check CML_VERIFY_TLS"
            ) from None
        except NewConnectionError as exc:
            raise CMLUnreachable(
                f"connection failed: {_connection_failure(exc)}"
            ) from None
        except ConnectTimeoutError:
            raise CMLUnreachable(
                f"no connection within {connect_timeout:g} s"
            ) from None
        except ReadTimeoutError:
            raise CMLUnreachable(f"no answer within {read_timeout:g} s") from None
        except ProtocolError as exc:
            raise CMLUnreachable(
                f"connection failed: {_connection_failure(exc)}"
            ) from None
        except HTTPError as exc:
            raise CMLError(f"request failed: {exc}") from None

        log.debug(
            "cml %s: %s %s -> %s in %.0f ms",
            self.base_url,
            method,
            path,
            response.status,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _body(
        self, name: str, response: urllib3.BaseHTTPResponse, authenticated: bool
    ) -> Any:
        status = response.status
        if 200 <= status < 300:
            if status == 204 or not response.data:
                return None
            try:
                return _json.loads(response.data)
            except ValueError:
                raise CMLUnexpectedResponse(status, f"{name}: not JSON") from None

        description = _description(response)
        if status == 401 and authenticated:
            raise CMLAuthenticationFailed(
                f"CML refused a fresh token for {name} (401: {description})"
            )
        if status == 403:
            raise CMLNotPermitted(
                f"CML user {self.username!r} may not call {name} (403: {description})"
            )
        raise CMLUnexpectedResponse(status, description)

    # Tokens

    def _current_token(self) -> str:
        with self._token_lock:
            token = self._token
            if token is not None and token.fresh_until > time.monotonic():
                return token.value

            shared = self._shared_token()
            if shared is not None:
                self._token = _Token(shared, time.monotonic() + _cache_seconds(shared))
                return shared

            return self._sign_in()

    def _renew_token(self, stale: str) -> str:
        """Sign in again after ``stale`` was refused, unless another thread of
        this client already has."""
        with self._token_lock:
            token = self._token
            if (
                token is not None
                and token.value != stale
                and token.fresh_until > time.monotonic()
            ):
                return token.value

            self._token = None
            self._forget_shared_token(stale)
            return self._sign_in()

    def _sign_in(self) -> str:
        response = self._send(
            "authenticate",
            "POST",
            "authenticate",
            json={"username": self.username, "password": self._password},
        )
        if response.status in (401, 403):
            raise CMLAuthenticationFailed(
                f"CML rejected the password of user {self.username!r} "
                f"({response.status}); check CML_USERNAME and CML_PASSWORD"
            )

        token = self._body("authenticate", response, authenticated=False)
        if not isinstance(token, str) or not token:
            raise CMLUnexpectedResponse(response.status, "authenticate: no token")

        seconds = _cache_seconds(token)
        self._token = _Token(token, time.monotonic() + seconds)
        self._share_token(token, seconds)
        log.info("cml %s: signed in as %s", self.base_url, self.username)
        return token

    def _shared_token(self) -> str | None:
        if self._redis is None:
            return None

        try:
            value = self._redis.get(self._token_key)
        except RedisError as exc:
            log.warning("cml %s: token cache unavailable (%s)", self.base_url, exc)
            return None
        if isinstance(value, bytes):
            return value.decode()
        return value if isinstance(value, str) else None

    def _share_token(self, token: str, seconds: float) -> None:
        if self._redis is None or seconds <= 0:
            return

        try:
            self._redis.set(self._token_key, token, px=max(1, int(seconds * 1000)))
        except RedisError as exc:
            log.warning("cml %s: token cache unavailable (%s)", self.base_url, exc)

    def _forget_shared_token(self, stale: str) -> None:
        if self._redis is None:
            return

        # Only the refused token goes: another process may already have stored
        # a newer one, and deleting that would make it sign in again.
        try:
            if self._shared_token() == stale:
                self._redis.delete(self._token_key)
        except RedisError as exc:
            log.warning("cml %s: token cache unavailable (%s)", self.base_url, exc)


def _cache_seconds(token: str) -> float:
    """How long to keep a token: until ``TOKEN_EXPIRY_MARGIN`` before its ``exp``.

    Short-lived tokens are kept for half their remaining life instead, so they
    are still renewed before they expire. The JWT is read, not verified: only
    the controller can verify it, and it will say so with a 401.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return FALLBACK_TOKEN_TTL

    expires = claims.get("exp")
    if not isinstance(expires, int | float):
        return FALLBACK_TOKEN_TTL

    remaining = expires - time.time()
    if remaining <= 0:
        # Fresh from the controller yet past its exp: the clocks disagree.
        return FALLBACK_TOKEN_TTL
    if remaining > 2 * TOKEN_EXPIRY_MARGIN:
        return remaining - TOKEN_EXPIRY_MARGIN
    return remaining / 2


def _description(response: urllib3.BaseHTTPResponse) -> str:
    try:
        body = _json.loads(response.data)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("description"):
        return str(body["description"])[:200]
    if 300 <= response.status < 400:
        return f"redirected to {response.headers.get('Location', '?')}"
    text = response.data.decode("utf-8", "replace").strip()
    return text[:200] or response.reason or "no description"


def _parsed(name: str, parse: Callable[[Any], T], body: Any) -> T:
    try:
        return parse(body)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CMLUnexpectedResponse(
            200, f"{name}: malformed answer ({exc.__class__.__name__}: {exc})"
        ) from None


def _snapshot(
    info: SystemInformation,
    health: SystemHealth,
    stats: SystemStats,
    licensing: Licensing | None,
    labs: list[Lab],
) -> CMLSnapshot:
    is_licensed = health.is_licensed
    if is_licensed is None and licensing is not None:
        is_licensed = licensing.is_licensed

    nodes_total = stats.nodes_total
    if nodes_total is None:
        nodes_total = sum(lab.node_count for lab in labs)

    fields: dict[str, Any] = {
        "cml_service_status": service_status(info, health),
        "cml_version": info.version,
        "cml_ready": info.ready,
        "cml_labs_count": len(labs),
        "cml_labs_running": sum(lab.state == "STARTED" for lab in labs),
        "cml_nodes_total": nodes_total,
        "cml_nodes_running": stats.nodes_running or 0,
        "cml_allocated_cpus": stats.allocated_cpus,
        "cml_allocated_memory": stats.allocated_memory,
        "cml_cpu_count": stats.cpu_count,
        "cml_cpu_utilization": stats.cpu_utilization,
        "cml_memory_total": stats.memory_total,
        "cml_memory_used": stats.memory_used,
        "cml_disk_total": stats.disk_total,
        "cml_disk_used": stats.disk_used,
        "cml_health_valid": health.valid,
        "cml_is_licensed": is_licensed,
        **_license_fields(licensing),
        "cml_synced_at": datetime.now(UTC),
    }
    return CMLSnapshot(fields=fields, labs=[lab.document() for lab in labs])


def _license_fields(licensing: Licensing | None) -> dict[str, Any]:
    """The license fields; all None when the account may not read licensing."""
    if licensing is None:
        licensing = Licensing(None, None, None, None, None, None, None)

    return {
        "cml_license_registration": licensing.registration,
        "cml_license_authorization": licensing.authorization,
        "cml_license_product": licensing.product,
        "cml_license_expires": licensing.expires,
        "cml_license_smart_account": licensing.smart_account,
        "cml_license_virtual_account": licensing.virtual_account,
    }
