"""`cmlfleet demo` as a user meets it: a real process, real HTTP, a live stream."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

INTERVAL = 4


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo():
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backend.cli",
            "demo",
            "--port",
            str(port),
            "--workers",
            "6",
            "--interval",
            str(INTERVAL),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    url = None
    output = []
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "demo running at" in line:
            url = line.rsplit(" ", 1)[-1].strip()
            output += [process.stdout.readline() for _ in range(2)]
    if url is None:
        process.kill()
        pytest.fail("the demo did not start:\n" + "".join(output[-30:]))
    yield url, "".join(output)
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    process.stdout.close()


def _signed_in(url: str, username: str, password: str) -> requests.Session:
    session = requests.Session()
    response = session.post(
        url + "api/auth/login",
        json={"username": username, "password": password},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    session.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return session


def _wait_for_fleet(session: requests.Session, url: str) -> list[dict]:
    deadline = time.monotonic() + 3 * INTERVAL + 30
    while time.monotonic() < deadline:
        workers = session.get(url + "api/workers", timeout=10).json()["workers"]
        running = [w for w in workers if w["status"] == "running"]
        if len(workers) == 6 and running and all(w["cml_version"] for w in running):
            return workers
        time.sleep(0.5)
    pytest.fail(f"the seeded fleet never filled in: {workers}")


def test_demo_prints_url_and_logins(demo):
    url, output = demo

    assert url.startswith("http://127.0.0.1:")
    assert "admin/admin" in output and "user/user" in output


def test_demo_serves_the_seeded_fleet_with_cml_fields(demo):
    url, _ = demo
    session = _signed_in(url, "admin", "admin")

    workers = _wait_for_fleet(session, url)

    assert {w["region"] for w in workers} == {"us-east-1", "eu-west-1"}
    assert {"running", "stopped"} <= {w["status"] for w in workers}
    running = [w for w in workers if w["status"] == "running"]
    for worker in running:
        assert worker["cml_service_status"] == "available"
        assert worker["cml_labs_count"] >= 1
        assert worker["cml_nodes_total"] is not None
        assert worker["cml_license_registration"]
    labs = session.get(url + f"api/workers/{running[0]['id']}/labs", timeout=10)
    assert labs.json()["labs"]


def test_demo_streams_metric_events_within_two_intervals(demo):
    url, _ = demo
    session = _signed_in(url, "user", "user")
    _wait_for_fleet(session, url)

    types = []
    started = time.monotonic()
    with session.get(url + "api/workers/events", stream=True, timeout=10) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("event:"):
                types.append(line.split(":", 1)[1].strip())
            if line.startswith("data:") and types and types[-1].endswith("updated"):
                envelope = json.loads(line[5:])
                assert "aws_instance_id" not in envelope["data"]["worker"]
                break
            if time.monotonic() - started > 2 * INTERVAL + 10:
                break

    assert any(t.endswith("metrics.updated") for t in types), types


def test_demo_refreshes_on_demand_and_reports_metrics_and_history(demo):
    url, _ = demo
    session = _signed_in(url, "user", "user")
    workers = _wait_for_fleet(session, url)
    worker = next(w for w in workers if w["status"] == "running")

    completed = None
    with session.get(url + "api/workers/events", stream=True, timeout=10) as stream:
        asked = session.post(url + f"api/workers/{worker['id']}/refresh", timeout=10)
        assert asked.status_code == 202, asked.text
        started = time.monotonic()
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                envelope = json.loads(line[5:])
                if (
                    envelope["type"] == "worker.refresh.completed"
                    and envelope["worker_id"] == worker["id"]
                ):
                    completed = envelope
                    break
            if time.monotonic() - started > 30:
                break
    assert completed is not None, "no worker.refresh.completed for the refresh asked"

    fleet = {
        w["id"]: w
        for w in session.get(url + "api/workers", timeout=10).json()["workers"]
    }
    text = session.get(url + "metrics", timeout=10).text
    labs = {
        sample.labels["worker_id"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "cml_worker_labs_count"
        for sample in family.samples
    }
    running = [w for w in fleet.values() if w["status"] == "running"]
    assert running and all(labs[w["id"]] == w["cml_labs_count"] for w in running)

    history = session.get(url + f"api/workers/{worker['id']}/metrics", timeout=10)
    assert history.status_code == 200
    points = history.json()["points"]
    assert sum(p["count"] for p in points) >= 2, "one sample per refresh"
    assert any("cml_labs_count" in p for p in points)
