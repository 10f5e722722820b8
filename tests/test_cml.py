"""The CML client against the simulator, and against recorded CML bodies."""

from __future__ import annotations

import logging
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import requests
import urllib3
from cml_recordings import (
    LAB_2_9_1,
    LAB_OLD,
    LICENSING_2_9_1,
    SYSTEM_HEALTH_2_9_1,
    SYSTEM_INFORMATION_2_4,
    SYSTEM_INFORMATION_2_9_1,
    SYSTEM_STATS_2_9_1,
    system_stats_2_9_0,
)

from backend.cml import (
    CML_FIELDS,
    LAB_FIELDS,
    CMLClient,
    describe_error,
    parse_lab,
    parse_licensing,
    parse_system_health,
    parse_system_information,
    parse_system_stats,
    status_for_error,
)
from backend.errors import (
    CMLAuthenticationFailed,
    CMLError,
    CMLNotPermitted,
    CMLUnexpectedResponse,
    CMLUnreachable,
    NotFound,
)
from backend.simulator import SimulatorServer

pytest_plugins = ["simulator_fixtures"]

MakeClient = Callable[..., CMLClient]


@pytest.fixture
def make_client(
    cml_simulator: SimulatorServer,
    redis_client: redis.Redis,
) -> Iterator[MakeClient]:
    """Builds clients for simulated controllers and closes them afterwards."""
    clients: list[CMLClient] = []

    def make(controller: str, **options: Any) -> CMLClient:
        options.setdefault("username", "admin")
        options.setdefault("password", "admin")
        options.setdefault("redis", redis_client)
        client = CMLClient(cml_simulator.controller_url(controller), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: MakeClient, controller_id: str) -> CMLClient:
    return make_client(controller_id)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# Every call against the simulator


def test_system_information_reports_version_and_readiness(client: CMLClient) -> None:
    info = client.system_information()

    assert info.version == "2.9.1+build.7"
    assert info.ready is True


def test_system_health_reports_valid_and_licensed(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    assert client.system_health().valid is True

    cml_simulator.configure(controller_id, healthy=False, licensed=False)
    health = client.system_health()

    assert health.valid is False
    assert health.is_licensed is False
    assert health.invalid_computes == ("cml-controller",)


def test_system_stats_sums_every_compute(
    make_client: MakeClient, cml_simulator: SimulatorServer
) -> None:
    controller = next(
        cml_simulator.controller(f"multi-{n}")
        for n in range(100)
        if len(cml_simulator.controller(f"multi-{n}").computes) > 1
    )
    loads = controller.compute_loads()

    stats = make_client(controller.id).system_stats()

    assert len(stats.computes) == len(loads)
    assert stats.cpu_count == sum(load.compute.cpu_count for load in loads)
    assert stats.memory_total == sum(load.compute.memory_total for load in loads)
    assert stats.allocated_cpus == sum(load.allocated_cpus for load in loads)
    assert stats.nodes_running == sum(load.running_nodes for load in loads)
    assert 0 < stats.cpu_utilization < 100


def test_licensing_reads_registration_and_accounts(client: CMLClient) -> None:
    licensing = client.licensing()

    assert licensing.registration == "COMPLETED"
    assert licensing.authorization == "IN_COMPLIANCE"
    assert licensing.product == "CML_Enterprise"
    assert licensing.smart_account
    assert licensing.expires is not None and licensing.expires.tzinfo == UTC


def test_labs_lists_every_lab_of_every_owner(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    controller = cml_simulator.controller(controller_id)

    labs = client.labs()

    assert {lab.id: lab.title for lab in labs} == {
        lab.id: lab.title for lab in controller.labs
    }
    assert {lab.owner_username for lab in labs} == {
        lab.owner.username for lab in controller.labs
    }


def test_lab_actions_start_stop_and_wipe_a_lab(client: CMLClient) -> None:
    lab_id = client.labs()[0].id

    client.start_lab(lab_id)
    assert client.lab(lab_id).state == "STARTED"

    client.stop_lab(lab_id)
    assert client.lab(lab_id).state == "STOPPED"

    client.wipe_lab(lab_id)
    assert client.lab(lab_id).state == "DEFINED_ON_CORE"


def test_lab_action_on_a_missing_lab_raises_not_found(client: CMLClient) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        client.start_lab("6db4c3fb-e5a4-4b9d-9610-bf9353dc137b")


# collect()


def test_collect_fills_every_cml_field_of_a_healthy_licensed_controller(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    snapshot = client.collect()

    assert set(snapshot.fields) == set(CML_FIELDS)
    assert [name for name, value in snapshot.fields.items() if value is None] == []
    assert snapshot.fields["cml_service_status"] == "available"
    assert snapshot.fields["cml_is_licensed"] is True
    assert snapshot.fields["cml_synced_at"].tzinfo == UTC
    assert snapshot.fields["cml_labs_count"] == len(
        cml_simulator.controller(controller_id).labs
    )


def test_collect_returns_lab_documents_with_utc_times(client: CMLClient) -> None:
    labs = client.collect().labs

    assert labs
    for lab in labs:
        assert tuple(lab) == LAB_FIELDS
        assert lab["created"].tzinfo == UTC
        assert lab["state"] in ("DEFINED_ON_CORE", "STOPPED", "STARTED")


def test_collect_counts_running_labs_and_nodes(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    for lab in client.labs():
        client.start_lab(lab.id)

    fields = client.collect().fields

    controller = cml_simulator.controller(controller_id)
    assert fields["cml_labs_running"] == len(controller.labs)
    assert fields["cml_nodes_running"] == fields["cml_nodes_total"] > 0
    assert fields["cml_allocated_cpus"] > 0


@pytest.mark.parametrize(
    ("settings", "status"),
    [
        ({"ready": False}, "starting"),
        ({"healthy": False}, "error"),
        ({"ready": False, "healthy": False}, "starting"),
    ],
)
def test_collect_derives_service_status(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
    settings: dict[str, bool],
    status: str,
) -> None:
    cml_simulator.configure(controller_id, **settings)

    assert client.collect().fields["cml_service_status"] == status


def test_collect_reports_an_unlicensed_controller(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    cml_simulator.configure(controller_id, licensed=False)

    fields = client.collect().fields

    assert fields["cml_is_licensed"] is False
    assert fields["cml_license_registration"] == "NOT_REGISTERED"
    assert fields["cml_license_smart_account"] is None


@pytest.mark.parametrize("version", ["2.7.0+build.1", "2.10.0+build.12"])
def test_collect_reads_other_cml_releases(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
    version: str,
) -> None:
    cml_simulator.configure(controller_id, version=version)

    snapshot = client.collect()

    assert snapshot.fields["cml_version"] == version
    assert all(lab["owner_username"] for lab in snapshot.labs)
    assert snapshot.fields["cml_memory_total"] > 0


# Tokens


def test_token_expiry_mid_run_signs_in_again_transparently(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    cml_simulator.configure(controller_id, token_lifetime=2)
    client.collect()

    time.sleep(2.1)
    client.collect()

    assert client.calls.authentications == 2
    assert cml_simulator.stats(controller_id)["authentications"] == 2


def test_revoked_token_recovers_with_exactly_one_sign_in(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    client.collect()
    cml_simulator.set_faults(controller_id, revoke_tokens=True)

    snapshot = client.collect()

    assert snapshot.fields["cml_service_status"] == "available"
    assert client.calls.authentications == 2
    assert cml_simulator.stats(controller_id)["authentications"] == 2


def test_bad_password_fails_after_exactly_one_sign_in(
    make_client: MakeClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    client = make_client(controller_id, password="wrong-password")

    with pytest.raises(CMLAuthenticationFailed, match="CML_PASSWORD"):
        client.collect()

    assert client.calls.authentications == 1
    assert client.calls.requests == 0
    assert cml_simulator.stats(controller_id)["authentications"] == 1


def test_forbidden_answer_never_signs_in_again(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    client.collect()
    cml_simulator.set_faults(controller_id, error_status=403)

    with pytest.raises(CMLNotPermitted, match="403"):
        client.system_health()

    assert client.calls.authentications == 1


def test_token_is_shared_between_clients_through_redis(
    make_client: MakeClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    make_client(controller_id).collect()

    second = make_client(controller_id)
    second.collect()

    assert second.calls.authentications == 0
    assert cml_simulator.stats(controller_id)["authentications"] == 1


def test_secrets_never_reach_the_log(
    make_client: MakeClient,
    controller_id: str,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    make_client(controller_id).collect()
    with pytest.raises(CMLAuthenticationFailed):
        make_client(
            controller_id, username="other", password="hunter2-secret"
        ).collect()

    tokens = [
        redis_client.get(key) for key in redis_client.keys("cmlfleet:cml-token:*")
    ]
    assert tokens
    for token in tokens:
        assert token.decode() not in caplog.text
    assert "hunter2-secret" not in caplog.text


# Failures and timeouts


def test_dead_and_slow_controllers_time_out_without_delaying_a_healthy_one(
    make_client: MakeClient,
    cml_simulator: SimulatorServer,
) -> None:
    names = {"dead": "timing-dead", "slow": "timing-slow", "healthy": "timing-ok"}
    clients = {
        role: make_client(name, read_timeout=1.0) for role, name in names.items()
    }
    for client in clients.values():
        client.collect()
    cml_simulator.set_faults(names["dead"], outage=True)
    cml_simulator.set_faults(names["slow"], latency_ms=3000)

    outcomes: dict[str, tuple[float, object]] = {}

    def collect(role: str) -> None:
        started = time.monotonic()
        try:
            result: object = clients[role].collect()
        except CMLError as exc:
            result = exc
        outcomes[role] = (time.monotonic() - started, result)

    threads = [threading.Thread(target=collect, args=(role,)) for role in clients]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        for name in names.values():
            cml_simulator.clear_faults(name)

    for role in ("dead", "slow"):
        seconds, result = outcomes[role]
        assert isinstance(result, CMLUnreachable)
        assert "no answer within 1 s" in str(result)
        assert 1.0 <= seconds < 2.5
    seconds, result = outcomes["healthy"]
    assert not isinstance(result, Exception)
    assert seconds < 0.8


def test_refused_connection_is_unreachable(redis_client: redis.Redis) -> None:
    url = f"https://127.0.0.1:{free_port()}/i-0gone"
    with CMLClient(
        url, username="admin", password="admin", redis=redis_client
    ) as client:
        with pytest.raises(CMLUnreachable, match="connection refused"):
            client.collect()


def test_connection_closed_without_answer_is_unreachable(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    cml_simulator.set_faults(controller_id, disconnect=True)

    with pytest.raises(CMLUnreachable, match="closed without an answer"):
        client.system_information()


def test_server_error_carries_status_and_description(
    client: CMLClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    cml_simulator.set_faults(controller_id, error_status=503)

    with pytest.raises(CMLUnexpectedResponse) as failure:
        client.collect()

    assert failure.value.status == 503
    assert describe_error(failure.value) == "CML answered 503: Service Unavailable"


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (CMLUnreachable("no answer within 10 s"), "unavailable"),
        (CMLUnexpectedResponse(502, "Bad Gateway"), "starting"),
        (CMLUnexpectedResponse(500, "Internal Server Error"), "error"),
        (CMLAuthenticationFailed("rejected"), "error"),
        (CMLNotPermitted("refused"), "error"),
    ],
)
def test_status_for_error_classifies_failures(error: CMLError, status: str) -> None:
    assert status_for_error(error) == status


def test_describe_error_names_unexpected_exceptions() -> None:
    assert describe_error(RuntimeError("boom")) == "unexpected RuntimeError: boom"


# TLS


def test_unverified_tls_warns_neither_here_nor_is_silenced_elsewhere(
    client: CMLClient,
    cml_simulator: SimulatorServer,
) -> None:
    filters_before = list(warnings.filters)

    client.system_information()

    assert warnings.filters == filters_before
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        requests.get(cml_simulator.url + "/", verify=False, timeout=5).close()


def test_ca_bundle_verifies_the_controller_certificate(
    make_client: MakeClient,
    cml_simulator: SimulatorServer,
    controller_id: str,
) -> None:
    trusted = make_client(controller_id, verify=str(cml_simulator.certificate))
    untrusted = make_client(controller_id, verify=True)

    assert trusted.system_information().ready is True
    with pytest.raises(CMLError, match="CML_VERIFY_TLS"):
        untrusted.system_information()


# Recorded bodies of CML 2.4 to 2.10


def test_parse_system_information_accepts_old_and_new_shapes() -> None:
    assert parse_system_information(SYSTEM_INFORMATION_2_9_1).version == "2.9.1+build.7"
    assert parse_system_information(SYSTEM_INFORMATION_2_4).ready is True


def test_parse_system_stats_reads_the_recorded_2_9_captures() -> None:
    for body in (SYSTEM_STATS_2_9_1, system_stats_2_9_0()):
        stats = parse_system_stats(body)

        assert stats.cpu_count == 6
        assert stats.cpu_utilization == 4.17
        assert stats.memory_total == 16748994560
        assert stats.disk_used == 82798108672
        assert stats.allocated_memory == 6291456
        assert (stats.nodes_total, stats.nodes_running) == (182, 8)


def test_parse_system_stats_falls_back_to_totals_without_computes() -> None:
    stats = parse_system_stats({"all": SYSTEM_STATS_2_9_1["all"]})

    assert stats.cpu_count == 6
    assert stats.nodes_total is None


def test_parse_system_health_reads_the_recorded_capture() -> None:
    health = parse_system_health(SYSTEM_HEALTH_2_9_1)

    assert (health.valid, health.is_licensed, health.controller_valid) == (
        True,
        True,
        True,
    )
    assert health.invalid_computes == ()


def test_parse_licensing_reads_zoneless_times_as_utc() -> None:
    licensing = parse_licensing(LICENSING_2_9_1)

    assert licensing.expires == datetime(2026, 8, 20, 17, 25, 30, tzinfo=UTC)
    assert licensing.virtual_account == "Joe Clarke - Lic Test"
    assert licensing.is_licensed is True


def test_parse_lab_accepts_labs_without_newer_fields() -> None:
    new, old = parse_lab(LAB_2_9_1), parse_lab(LAB_OLD)

    assert new.effective_permissions == (
        "lab_exec",
        "lab_view",
        "lab_edit",
        "lab_admin",
    )
    assert old.effective_permissions is None
    assert old.owner_fullname is None
    assert old.document()["modified"] == datetime(2022, 5, 11, 21, 23, 28, tzinfo=UTC)


def test_malformed_body_is_an_unexpected_response(
    client: CMLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "_call", lambda *args, **kwargs: ["not", "stats"])

    with pytest.raises(CMLUnexpectedResponse, match="system_stats: malformed"):
        client.system_stats()
