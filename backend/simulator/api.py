"""The simulator's HTTP face, a plain WSGI application.

* ``GET /`` lists the controllers.
* ``/<controller-id>/api/v0/...`` is CML's REST API for that controller, created
  on first use. Errors are ``{"code": <status>, "description": "..."}``.
* ``/<controller-id>/_sim/{faults,config,stats}`` lets tests and benchmarks
  inject faults, change what the controller reports and read its counters.
  These never suffer the injected faults.

Faults are applied before anything else: a request is counted, then dropped,
held, delayed or answered with the injected status. Delays use ``gevent.sleep``
so a slow controller never holds up the others.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import gevent
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from backend.simulator import responses
from backend.simulator.controller import (
    Controller,
    Counters,
    Faults,
    Fleet,
    Lab,
    Node,
    User,
    Version,
)
from backend.simulator.tokens import TokenIssuer

log = logging.getLogger(__name__)

#: Longest an outage holds a request before closing its connection unanswered.
OUTAGE_HOLD_SECONDS = 300.0
_OUTAGE_POLL_SECONDS = 0.05
_TRUE_WORDS = {"true", "1", "yes", "on"}


class DropConnection(Exception):
    """Raised by the application to close the connection without an answer."""


@dataclass
class Call:
    """One authenticated (or public) API request on its way to a handler."""

    controller: Controller
    request: Request
    user: User | None = None
    jti: str | None = None
    lab: Lab | None = None
    node: Node | None = None
    args: dict[str, str] = field(default_factory=dict)

    def flag(self, name: str) -> bool:
        return self.request.args.get(name, "").lower() in _TRUE_WORDS

    @property
    def signed_in(self) -> User:
        assert self.user is not None, "handler of a public route asked for a user"
        return self.user


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: str
    public: bool = False
    since: Version = Version(0, 0, 0)


API_ROUTES = (
    Route("GET", "/system_information", "system_information", public=True),
    Route("POST", "/authenticate", "authenticate", public=True),
    Route("POST", "/auth_extended", "auth_extended", public=True),
    Route("GET", "/authok", "authok"),
    Route("GET", "/authentication", "authentication", since=Version(2, 10, 0)),
    Route("DELETE", "/logout", "logout"),
    Route("GET", "/system_health", "system_health"),
    Route("GET", "/system_stats", "system_stats"),
    Route("GET", "/licensing", "licensing"),
    Route("GET", "/users", "users"),
    Route("GET", "/resource_pools", "resource_pools"),
    Route("GET", "/labs", "labs"),
    Route("GET", "/labs/<lab_id>", "lab"),
    Route("GET", "/labs/<lab_id>/state", "lab_state"),
    Route("PUT", "/labs/<lab_id>/start", "start_lab"),
    Route("PUT", "/labs/<lab_id>/stop", "stop_lab"),
    Route("PUT", "/labs/<lab_id>/wipe", "wipe_lab"),
    Route("GET", "/labs/<lab_id>/check_if_converged", "check_if_converged"),
    Route("GET", "/labs/<lab_id>/lab_element_state", "lab_element_state"),
    Route("GET", "/labs/<lab_id>/topology", "topology"),
    Route("GET", "/labs/<lab_id>/nodes", "nodes"),
    Route("GET", "/labs/<lab_id>/nodes/<node_id>", "node"),
    Route("GET", "/labs/<lab_id>/simulation_stats", "simulation_stats"),
    Route("GET", "/labs/<lab_id>/layer3_addresses", "layer3_addresses"),
    Route("GET", "/labs/<lab_id>/resource_pools", "lab_resource_pools"),
)
_ROUTES_BY_HANDLER = {route.handler: route for route in API_ROUTES}

_CONTROL_MAP = Map(
    [
        Rule("/faults", endpoint="faults", methods=["GET", "PUT", "DELETE"]),
        Rule("/config", endpoint="config", methods=["GET", "PATCH"]),
        Rule("/stats", endpoint="stats", methods=["GET", "DELETE"]),
    ],
    merge_slashes=False,
)
_API_MAP = Map(
    [
        Rule(route.path, endpoint=route.handler, methods=[route.method])
        for route in API_ROUTES
    ],
    merge_slashes=False,
)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def error_response(status: int, description: str | None = None) -> Response:
    """An error body exactly as CML writes them."""
    text = description or HTTP_STATUS_CODES.get(status, "Error")
    return json_response({"code": status, "description": text}, status)


def no_content() -> Response:
    return Response(status=204)


class SimulatorApp:
    """The WSGI application serving every controller of one ``Fleet``."""

    def __init__(
        self,
        fleet: Fleet,
        issuer: TokenIssuer | None = None,
        *,
        outage_hold: float = OUTAGE_HOLD_SECONDS,
    ) -> None:
        self.fleet = fleet
        self.issuer = issuer or TokenIssuer()
        self.outage_hold = outage_hold

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path == "/":
            if request.method not in ("GET", "HEAD"):
                return error_response(405)
            return self.index(request)

        controller_id, _, rest = path[1:].partition("/")
        rest = "/" + rest
        if controller_id == "api":
            return error_response(
                404,
                "This simulator hosts many controllers, each under its own prefix: "
                "use https://<host>:<port>/<controller-id>/ (virl2-client needs "
                "the trailing slash).",
            )
        if not rest.startswith(("/_sim/", "/api/v0/")):
            return error_response(404)

        try:
            controller = self.fleet.controller(controller_id)
        except ValueError:
            return error_response(404)

        if rest.startswith("/_sim/"):
            return self.control(controller, request, rest.removeprefix("/_sim"))
        return self.api(controller, request, rest.removeprefix("/api/v0"))

    def index(self, request: Request) -> Response:
        return json_response(
            {
                "controllers": [
                    {
                        "id": controller.id,
                        "url": f"{request.host_url}{controller.id}/",
                        "version": controller.version,
                        "labs": len(controller.labs),
                        "faults": controller.faults.as_dict(),
                        "requests": controller.counters.requests,
                    }
                    for controller in self.fleet.controllers()
                ]
            }
        )

    def control(self, controller: Controller, request: Request, path: str) -> Response:
        try:
            endpoint, _ = _CONTROL_MAP.bind("sim").match(path, request.method)
        except HTTPException as exc:
            return error_response(exc.code or 404)

        body: Any = request.get_json(silent=True) if request.data else {}
        if request.method in ("PUT", "PATCH") and not isinstance(body, dict):
            return error_response(400, "The body must be a JSON object.")

        handle = getattr(self, f"_control_{endpoint}")
        try:
            response: Response = handle(controller, request.method, body)
        except ValueError as exc:
            return error_response(400, str(exc))
        return response

    def _control_faults(
        self, controller: Controller, method: str, body: dict[str, Any]
    ) -> Response:
        if method == "PUT":
            faults = Faults.from_dict(body)
            if body.get("revoke_tokens"):
                self.issuer.revoke_all(controller)
            controller.faults = faults
            log.info("simulator %s: faults set to %s", controller.id, faults)
        elif method == "DELETE":
            controller.faults = Faults()
        return json_response(controller.faults.as_dict())

    def _control_config(
        self, controller: Controller, method: str, body: dict[str, Any]
    ) -> Response:
        if method == "PATCH":
            controller.configure(**body)
        return json_response(controller.settings())

    def _control_stats(
        self, controller: Controller, method: str, body: dict[str, Any]
    ) -> Response:
        with controller.lock:
            if method == "DELETE":
                controller.counters = Counters()
            return json_response(controller.counters.as_dict())

    def api(self, controller: Controller, request: Request, path: str) -> Response:
        try:
            handler, args = _API_MAP.bind("cml").match(path, request.method)
        except HTTPException as exc:
            self._count(controller, "unknown")
            faulted = self._suffer_faults(controller)
            return error_response(exc.code or 404) if faulted is None else faulted

        route = _ROUTES_BY_HANDLER[handler]
        self._count(controller, handler)
        faulted = self._suffer_faults(controller)
        if faulted is not None:
            return faulted

        if route.since > controller.parsed_version:
            return error_response(404)

        controller.advance()
        call = Call(controller, request, args=dict(args))
        if not route.public:
            refusal = self._authorize(call)
            if refusal is not None:
                return refusal

        refusal = self._resolve(call)
        if refusal is not None:
            return refusal

        response: Response = getattr(self, f"api_{handler}")(call)
        return response

    def _count(self, controller: Controller, handler: str) -> None:
        with controller.lock:
            controller.counters.requests += 1
            controller.counters.by_endpoint[handler] += 1

    def _suffer_faults(self, controller: Controller) -> Response | None:
        """Drop, hold or delay the request as injected; maybe answer an error."""
        faults = controller.faults
        if faults.disconnect:
            raise DropConnection

        if faults.outage:
            # A request caught in an outage is never answered, even when the
            # outage ends first: its client has long given up on it.
            deadline = time.monotonic() + self.outage_hold
            while controller.faults.outage and time.monotonic() < deadline:
                gevent.sleep(_OUTAGE_POLL_SECONDS)
            raise DropConnection

        if faults.latency_ms:
            gevent.sleep(faults.latency_ms / 1000)

        if faults.error_status is not None:
            return error_response(faults.error_status)
        return None

    def _authorize(self, call: Call) -> Response | None:
        scheme, _, token = call.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return error_response(401, "No authorization token provided.")

        verified = self.issuer.verify(call.controller, token.strip())
        if verified is None:
            return error_response(401, "401: Unauthorized")

        call.user, call.jti = verified
        return None

    @staticmethod
    def _resolve(call: Call) -> Response | None:
        lab_id = call.args.get("lab_id")
        if lab_id is not None:
            call.lab = call.controller.lab(lab_id)
            if call.lab is None:
                return error_response(404, f"Lab not found: {lab_id}")

        node_id = call.args.get("node_id")
        if node_id is not None and call.lab is not None:
            call.node = call.lab.node(node_id)
            if call.node is None:
                return error_response(404, f"Node not found: {node_id}")
        return None

    def _sign_in(self, call: Call) -> tuple[User, str] | Response:
        data = call.request.get_json(silent=True)
        if not isinstance(data, dict) or not all(
            isinstance(data.get(key), str) for key in ("username", "password")
        ):
            return error_response(400, "Input validation failed")

        controller = call.controller
        with controller.lock:
            controller.counters.authentications += 1
            accepted = (data["username"], data["password"]) == (
                self.fleet.username,
                self.fleet.password,
            )
            if not accepted:
                controller.counters.failed_authentications += 1
        if not accepted:
            return error_response(403, "Authentication failed!")

        user = controller.admin
        return user, self.issuer.issue(controller, user, controller.token_lifetime)

    # The API handlers, one per route, named api_<route handler>.

    def api_system_information(self, call: Call) -> Response:
        return json_response(responses.system_information(call.controller))

    def api_authenticate(self, call: Call) -> Response:
        outcome = self._sign_in(call)
        if isinstance(outcome, Response):
            return outcome
        return json_response(outcome[1])

    def api_auth_extended(self, call: Call) -> Response:
        outcome = self._sign_in(call)
        if isinstance(outcome, Response):
            return outcome
        return json_response(responses.authentication_info(*outcome))

    def api_authok(self, call: Call) -> Response:
        return json_response("OK")

    def api_authentication(self, call: Call) -> Response:
        token = call.request.headers["Authorization"].partition(" ")[2].strip()
        return json_response(responses.authentication_info(call.signed_in, token))

    def api_logout(self, call: Call) -> Response:
        if call.flag("clear_all_sessions"):
            self.issuer.end_sessions_of(call.controller, call.signed_in.id)
        elif call.jti is not None:
            self.issuer.end_session(call.controller, call.jti)
        return json_response(True)

    def api_system_health(self, call: Call) -> Response:
        return json_response(responses.system_health(call.controller))

    def api_system_stats(self, call: Call) -> Response:
        return json_response(responses.system_stats(call.controller))

    def api_licensing(self, call: Call) -> Response:
        return json_response(responses.licensing(call.controller))

    def api_users(self, call: Call) -> Response:
        return json_response(responses.users(call.controller))

    def api_resource_pools(self, call: Call) -> Response:
        return json_response([])

    def api_labs(self, call: Call) -> Response:
        user = call.signed_in
        with call.controller.lock:
            labs = call.controller.labs
            if not call.flag("show_all"):
                labs = [lab for lab in labs if lab.owner is user]
            return json_response([lab.id for lab in labs])

    def api_lab(self, call: Call) -> Response:
        assert call.lab is not None
        with call.controller.lock:
            return json_response(responses.lab_detail(call.controller, call.lab))

    def api_lab_state(self, call: Call) -> Response:
        assert call.lab is not None
        return json_response(call.lab.state)

    def api_start_lab(self, call: Call) -> Response:
        return self._change_state(call, "STARTED")

    def api_stop_lab(self, call: Call) -> Response:
        return self._change_state(call, "STOPPED")

    def api_wipe_lab(self, call: Call) -> Response:
        assert call.lab is not None
        if call.lab.state == "STARTED":
            return error_response(
                400, "The lab must be stopped before it can be wiped."
            )
        return self._change_state(call, "DEFINED_ON_CORE")

    def _change_state(self, call: Call, state: str) -> Response:
        assert call.lab is not None
        with call.controller.lock:
            if call.lab.state == "DEFINED_ON_CORE" and state == "STOPPED":
                return no_content()
            call.lab.set_state(state)
        log.debug("simulator %s: lab %s now %s", call.controller.id, call.lab.id, state)
        return no_content()

    def api_check_if_converged(self, call: Call) -> Response:
        return json_response(True)

    def api_lab_element_state(self, call: Call) -> Response:
        assert call.lab is not None
        with call.controller.lock:
            return json_response(responses.lab_element_state(call.lab))

    def api_topology(self, call: Call) -> Response:
        assert call.lab is not None
        exclude = call.flag("exclude_configurations")
        with call.controller.lock:
            return json_response(responses.topology(call.controller, call.lab, exclude))

    def api_nodes(self, call: Call) -> Response:
        lab = call.lab
        assert lab is not None
        with call.controller.lock:
            if not call.flag("data"):
                return json_response([node.id for node in lab.nodes])
            operational = call.flag("operational")
            return json_response(
                [responses.node_detail(lab, node, operational) for node in lab.nodes]
            )

    def api_node(self, call: Call) -> Response:
        assert call.lab is not None and call.node is not None
        with call.controller.lock:
            return json_response(
                responses.node_detail(call.lab, call.node, call.flag("operational"))
            )

    def api_simulation_stats(self, call: Call) -> Response:
        assert call.lab is not None
        with call.controller.lock:
            return json_response(responses.simulation_stats(call.lab))

    def api_layer3_addresses(self, call: Call) -> Response:
        return json_response({})

    def api_lab_resource_pools(self, call: Call) -> Response:
        return json_response([])
