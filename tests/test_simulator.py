"""The CML simulator: Cisco's own client connects to it, and it behaves like CML."""

from __future__ import annotations

import gc
import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from virl2_client import ClientLibrary
from virl2_client.exceptions import APIError
from werkzeug.test import Client

from backend.simulator import (
    Fleet,
    SimulatorApp,
    SimulatorProcess,
    SimulatorServer,
    responses,
    start_simulator,
)
from backend.simulator.controller import Controller
from backend.simulator.tokens import TokenIssuer

pytest_plugins = ["simulator_fixtures"]


class Http:
    """Plain HTTP calls to one simulated controller, trusting its certificate."""

    def __init__(self, simulator: SimulatorServer, controller_id: str) -> None:
        self.root = simulator.url
        self.base = simulator.controller_url(controller_id)
        self.api = f"{self.base}api/v0/"
        self.session = requests.Session()
        self.verify = str(simulator.certificate)

    def request(self, method: str, url: str, **options: Any) -> requests.Response:
        options.setdefault("timeout", 5)
        return self.session.request(method, url, verify=self.verify, **options)

    def sign_in(self, password: str = "admin") -> requests.Response:
        body = {"username": "admin", "password": password}
        return self.request("POST", self.api + "authenticate", json=body)

    def token(self) -> str:
        token: str = self.sign_in().json()
        return token

    def get(self, path: str, token: str | None = None, **options: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.request("GET", self.api + path, headers=headers, **options)


@pytest.fixture
def http(cml_simulator: SimulatorServer, controller_id: str) -> Iterator[Http]:
    client = Http(cml_simulator, controller_id)
    yield client
    client.session.close()


@pytest.fixture
def pcl(cml_simulator: SimulatorServer, controller_id: str) -> Iterator[ClientLibrary]:
    """virl2-client connected over HTTPS to a fresh simulated controller."""
    client = ClientLibrary(
        cml_simulator.controller_url(controller_id),
        "admin",
        "admin",
        ssl_verify=False,
    )
    yield client
    client._session.close()


def quietly_collect_leaked_sockets() -> None:
    """virl2-client leaves its connection open when its constructor fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


# virl2-client


def test_virl2_client_lists_every_lab(
    pcl: ClientLibrary, cml_simulator: SimulatorServer, controller_id: str
) -> None:
    controller = cml_simulator.controller(controller_id)

    labs = pcl.all_labs(show_all=True)

    assert sorted(lab.id for lab in labs) == sorted(lab.id for lab in controller.labs)
    assert {lab.title for lab in labs} == {lab.title for lab in controller.labs}
    assert {lab.owner for lab in labs} == {
        lab.owner.username for lab in controller.labs
    }


def test_virl2_client_reads_lab_state_details_and_nodes(
    pcl: ClientLibrary, cml_simulator: SimulatorServer, controller_id: str
) -> None:
    seeded = cml_simulator.controller(controller_id).labs[0]
    lab = pcl.join_existing_lab(seeded.id)

    details = lab.details()

    assert lab.state() == seeded.state
    assert details["lab_title"] == seeded.title
    assert details["node_count"] == len(lab.nodes()) == len(seeded.nodes)
    assert len(lab.links()) == len(seeded.links)


def test_virl2_client_starts_and_stops_a_lab(
    pcl: ClientLibrary, cml_simulator: SimulatorServer, controller_id: str
) -> None:
    lab = pcl.all_labs(show_all=True)[0]

    lab.start()
    assert lab.state() == "STARTED"
    assert {node.state for node in lab.nodes()} == {"BOOTED"}

    lab.stop()
    assert lab.state() == "STOPPED"
    assert cml_simulator.controller(controller_id).labs[0].state == "STOPPED"


def test_virl2_client_reads_licensing_and_system(pcl: ClientLibrary) -> None:
    licensing = pcl.licensing.status()

    assert licensing["registration"]["status"] == "COMPLETED"
    assert licensing["authorization"]["status"] == "IN_COMPLIANCE"
    assert pcl.system_info()["version"] == "2.9.1+build.7"
    assert pcl.get_system_health()["valid"] is True


def test_virl2_client_signs_in_through_authentication_on_cml_2_10(
    cml_simulator: SimulatorServer, controller_id: str
) -> None:
    cml_simulator.configure(controller_id, version="2.10.0+build.12")

    client = ClientLibrary(
        cml_simulator.controller_url(controller_id), "admin", "admin", ssl_verify=False
    )
    client._session.close()

    admin = cml_simulator.controller(controller_id).admin
    assert client.user_id == admin.id
    assert cml_simulator.stats(controller_id)["by_endpoint"]["authentication"] == 1


def test_virl2_client_signs_in_again_after_logout(
    pcl: ClientLibrary, cml_simulator: SimulatorServer, controller_id: str
) -> None:
    assert pcl.logout() is True

    assert pcl.get_lab_list(show_all=True)
    assert cml_simulator.stats(controller_id)["authentications"] == 2


def test_virl2_client_reports_a_wrong_password(
    cml_simulator: SimulatorServer, controller_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = ClientLibrary(
        cml_simulator.controller_url(controller_id), "admin", "nope", ssl_verify=False
    )
    client._session.close()

    assert "please check your username and password" in caplog.text
    assert not hasattr(client, "user_id")


def test_virl2_client_without_trailing_slash_is_told_to_add_it(
    cml_simulator: SimulatorServer, controller_id: str
) -> None:
    url = cml_simulator.controller_url(controller_id).rstrip("/")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(APIError, match="trailing slash"):
            ClientLibrary(url, "admin", "admin", ssl_verify=False)
    quietly_collect_leaked_sockets()


# CML's behaviour over HTTP


def test_index_lists_the_controllers(
    http: Http, cml_simulator: SimulatorServer, controller_id: str
) -> None:
    http.get("system_information")

    listed = http.request("GET", http.root + "/").json()["controllers"]

    entry = next(item for item in listed if item["id"] == controller_id)
    assert entry["url"] == cml_simulator.controller_url(controller_id)
    assert entry["version"] == "2.9.1+build.7"


def test_error_bodies_match_cml(http: Http) -> None:
    token = http.token()

    missing = http.get("labs")
    invalid = http.get("labs", token=token[:-4] + "AAAA")
    refused = http.sign_in(password="wrong")
    no_lab = http.get("labs/6db4c3fb-e5a4-4b9d-9610-bf9353dc137b", token=token)
    no_route = http.get("no_such_thing", token=token)

    assert (missing.status_code, missing.json()) == (
        401,
        {"code": 401, "description": "No authorization token provided."},
    )
    assert (invalid.status_code, invalid.json()["code"]) == (401, 401)
    assert refused.status_code == 403
    assert set(refused.json()) == {"code", "description"}
    assert no_lab.json() == {
        "code": 404,
        "description": "Lab not found: 6db4c3fb-e5a4-4b9d-9610-bf9353dc137b",
    }
    assert no_route.json() == {"code": 404, "description": "Not Found"}


def test_public_and_bare_value_answers(http: Http) -> None:
    token = http.token()
    lab_id = http.get("labs", token=token, params={"show_all": "true"}).json()[0]

    assert http.get("system_information").json()["ready"] is True
    assert http.get("authok", token=token).json() == "OK"
    assert http.get(f"labs/{lab_id}/check_if_converged", token=token).json() is True
    started = http.request(
        "PUT",
        f"{http.api}labs/{lab_id}/start",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (started.status_code, started.content) == (204, b"")
    assert http.get(f"labs/{lab_id}/state", token=token).json() == "STARTED"


def test_labs_without_show_all_lists_only_own_labs(
    http: Http, cml_simulator: SimulatorServer, controller_id: str
) -> None:
    token = http.token()
    controller = cml_simulator.controller(controller_id)

    own = http.get("labs", token=token).json()
    every = http.get("labs", token=token, params={"show_all": "true"}).json()

    assert own == [lab.id for lab in controller.labs if lab.owner is controller.admin]
    assert every == [lab.id for lab in controller.labs]


def test_logout_ends_the_token(http: Http) -> None:
    token = http.token()

    http.request(
        "DELETE", http.api + "logout", headers={"Authorization": f"Bearer {token}"}
    )

    assert http.get("labs", token=token).status_code == 401


def test_tokens_of_one_controller_are_unknown_to_another(
    http: Http, cml_simulator: SimulatorServer
) -> None:
    other = Http(cml_simulator, "another-controller")
    try:
        assert other.get("labs", token=http.token()).status_code == 401
    finally:
        other.session.close()


def test_tokens_are_cml_shaped_jwts(http: Http, cml_simulator: SimulatorServer) -> None:
    claims = jwt.decode(http.token(), options={"verify_signature": False})

    assert claims["iss"] == "com.cisco.virl"
    assert claims["exp"] - claims["iat"] == 86400
    assert {"sub", "jti"} <= set(claims)


# Fault injection and counters over HTTP


def test_faults_answer_every_call_with_the_injected_status(http: Http) -> None:
    set_faults = http.request(
        "PUT", http.base + "_sim/faults", json={"error_status": 503}
    )

    answer = http.get("system_information")
    cleared = http.request("DELETE", http.base + "_sim/faults")

    assert set_faults.json()["error_status"] == 503
    assert (answer.status_code, answer.json()) == (
        503,
        {"code": 503, "description": "Service Unavailable"},
    )
    assert cleared.json()["error_status"] is None
    assert http.get("system_information").status_code == 200


def test_faults_reject_unknown_or_malformed_settings(http: Http) -> None:
    unknown = http.request("PUT", http.base + "_sim/faults", json={"explode": True})
    malformed = http.request("PUT", http.base + "_sim/faults", json={"latency_ms": "x"})

    assert (unknown.status_code, unknown.json()["description"]) == (
        400,
        "unknown fault: explode",
    )
    assert malformed.status_code == 400


def test_latency_delays_each_answer(http: Http) -> None:
    http.request("PUT", http.base + "_sim/faults", json={"latency_ms": 300})

    started = time.monotonic()
    http.get("system_information")

    assert time.monotonic() - started >= 0.3


def test_revoking_tokens_over_http_refuses_them(http: Http) -> None:
    token = http.token()

    http.request("PUT", http.base + "_sim/faults", json={"revoke_tokens": True})

    assert http.get("labs", token=token).status_code == 401
    assert http.get("labs", token=http.token()).status_code == 200


def test_outage_leaves_requests_unanswered(http: Http) -> None:
    http.request("PUT", http.base + "_sim/faults", json={"outage": True})

    with pytest.raises(requests.ReadTimeout):
        http.get("system_information", timeout=0.3)


def test_disconnect_closes_connections_unanswered(http: Http) -> None:
    http.request("PUT", http.base + "_sim/faults", json={"disconnect": True})

    with pytest.raises(requests.ConnectionError):
        http.get("system_information")


def test_config_changes_what_the_controller_reports(http: Http) -> None:
    patched = http.request(
        "PATCH",
        http.base + "_sim/config",
        json={"version": "2.7.0+build.1", "ready": False},
    )

    info = http.get("system_information").json()

    assert patched.json()["version"] == "2.7.0+build.1"
    assert info == {"version": "2.7.0+build.1", "ready": False}


def test_stats_count_requests_and_authentications(http: Http) -> None:
    token = http.token()
    http.sign_in(password="wrong")
    http.get("labs", token=token)

    stats = http.request("GET", http.base + "_sim/stats").json()
    reset = http.request("DELETE", http.base + "_sim/stats").json()

    assert stats["requests"] == 3
    assert (stats["authentications"], stats["failed_authentications"]) == (2, 1)
    assert stats["by_endpoint"]["labs"] == 1
    assert reset["requests"] == 0


def test_slow_controllers_are_served_concurrently(
    cml_simulator: SimulatorServer,
) -> None:
    ids = [f"concurrency-{number}" for number in range(50)]
    for controller_id in ids:
        cml_simulator.set_faults(controller_id, latency_ms=200)
    clients = [Http(cml_simulator, controller_id) for controller_id in ids]
    statuses: list[int] = []

    def ask(client: Http) -> None:
        statuses.append(client.get("system_information").status_code)

    threads = [threading.Thread(target=ask, args=(client,)) for client in clients]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        for client in clients:
            client.session.close()
    elapsed = time.monotonic() - started

    assert statuses == [200] * 50
    # One after the other they would take 10 s.
    assert elapsed < 4.0, f"50 requests of 200 ms took {elapsed:.2f} s"


def test_plain_http_mode_serves_the_same_api() -> None:
    with start_simulator(use_tls=False, drift=0) as server:
        answer = requests.get(
            server.controller_url("plain") + "api/v0/system_information", timeout=5
        )

    assert server.url.startswith("http://")
    assert answer.json()["version"] == "2.9.1+build.7"


def test_simulator_process_takes_faults_and_stops_cleanly() -> None:
    simulator = SimulatorProcess(use_tls=False, drift=0)
    try:
        simulator.set_faults("child", error_status=500)
        answer = requests.get(
            simulator.controller_url("child") + "api/v0/system_information", timeout=5
        )
        stats = simulator.stats("child")
    finally:
        status = simulator.stop()

    assert answer.status_code == 500
    assert stats["requests"] == 1
    assert status == 0


# Seeding and drift, in process


def test_same_id_starts_the_same_and_other_ids_differ() -> None:
    first = Fleet(drift=0).controller("i-0abc123")
    again = Fleet(drift=0).controller("i-0abc123")
    other = Fleet(drift=0).controller("i-0def456")

    def picture(controller: Controller) -> Any:
        return (
            [responses.lab_detail(controller, lab) for lab in controller.labs],
            [responses.topology(controller, lab) for lab in controller.labs],
            responses.system_stats(controller),
            responses.licensing(controller),
        )

    assert picture(first) == picture(again)
    assert picture(first) != picture(other)


def test_drift_moves_numbers_and_labs_over_time() -> None:
    now = [0.0]
    moving = Controller("drifting", drift=1.0, clock=lambda: now[0])
    frozen = Controller("drifting", drift=0.0, clock=lambda: now[0])
    before = responses.system_stats(moving), [lab.state for lab in moving.labs]

    now[0] += 600
    moving.advance()
    frozen.advance()

    assert responses.system_stats(moving)["all"] != before[0]["all"]
    assert [lab.state for lab in moving.labs] != before[1]
    assert responses.system_stats(frozen) == before[0]
    assert [lab.state for lab in frozen.labs] == before[1]


def test_expired_tokens_are_refused() -> None:
    now = [time.time()]
    fleet = Fleet(drift=0, token_lifetime=60)
    app = SimulatorApp(fleet, TokenIssuer(clock=lambda: now[0]))
    client = Client(app)
    token = client.post(
        "/i-1/api/v0/authenticate", json={"username": "admin", "password": "admin"}
    ).get_json()

    now[0] -= 61
    stale = client.post(
        "/i-1/api/v0/authenticate", json={"username": "admin", "password": "admin"}
    ).get_json()

    fresh_answer = client.get(
        "/i-1/api/v0/labs", headers={"Authorization": f"Bearer {token}"}
    )
    stale_answer = client.get(
        "/i-1/api/v0/labs", headers={"Authorization": f"Bearer {stale}"}
    )
    assert fresh_answer.status_code == 200
    assert stale_answer.status_code == 401
    assert stale_answer.get_json()["code"] == 401
