"""The production topology: web, worker and scheduler as separate processes.

Each product process is started with its own ``cmlfleet`` command, as the
Procfile runs it, and they share nothing but Redis and MongoDB. Redis is a
``redis-server`` of the test's own; MongoDB is ``TEST_MONGODB_URL`` when it names
a real server, otherwise the wire-protocol stand-in of ``mongo_wire.py``; AWS is
moto's server (``cmlfleet simulate-aws``) and the controllers are the CML
simulator, each in a process of its own. Nothing refreshes the fleet but the
scheduler's periodic job and the refreshes a user asks for.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import boto3
import pytest
import requests
from conftest import start_redis_server
from prometheus_client.parser import text_string_to_metric_families
from stream_fixtures import free_port

ROOT = Path(__file__).resolve().parent.parent
INTERVAL = 5
ADMIN = ("ops", "processes-admin-password")
TAG = {"Key": "cmlfleet:managed", "Value": "true"}

T = TypeVar("T")


class Topology:
    """The processes of one test run: started in order, stopped together."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.url = ""
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(
        self, name: str, argv: list[str], env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        with open(self.log_path(name), "wb") as log:
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes[name] = process
        return process

    def log_path(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def tails(self) -> str:
        """The last lines each process wrote, to explain a failure."""
        parts = []
        for name in self.processes:
            path = self.log_path(name)
            if not path.exists():
                continue
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        """Poll ``probe`` until it returns something; fail if a process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    pytest.fail(
                        f"{name} exited with {process.returncode}\n{self.tails()}"
                    )
            result = probe()
            if result is not None:
                return result
            time.sleep(0.25)
        pytest.fail(f"{what} did not happen within {timeout:.0f} s\n{self.tails()}")


def _answers(url: str) -> bool | None:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return None
    return True


def _mongodb_url(topology: Topology, env: dict[str, str]) -> str:
    """A MongoDB URL for the product: a real server's, or the stand-in's."""
    name = f"cmlfleet_processes_{secrets.token_hex(4)}"
    real = os.environ.get("TEST_MONGODB_URL")
    if real:
        return urlunsplit(urlsplit(real)._replace(path="/" + name))

    port = free_port()
    script = str(ROOT / "tests" / "mongo_wire.py")
    topology.start("mongodb", [sys.executable, script, "--port", str(port)], env)
    log = topology.log_path("mongodb")
    topology.wait_for(
        "the MongoDB stand-in", lambda: "listening" in log.read_text() or None, 30
    )
    return f"mongodb://127.0.0.1:{port}/{name}"


def _seed(aws_url: str) -> None:
    """Three tagged CML instances, one of them stopped; one untagged bystander."""
    ec2 = boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=aws_url,
        aws_access_key_id="processes",
        aws_secret_access_key="processes",
    )
    image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["CML-2.9*"]}])
    image_id = image["Images"][0]["ImageId"]
    ids = []
    for name, tags in [
        ("alpha", [TAG]),
        ("bravo", [TAG]),
        ("charlie", [TAG]),
        ("bystander", []),
    ]:
        reservation = ec2.run_instances(
            ImageId=image_id,
            MinCount=1,
            MaxCount=1,
            InstanceType="c5.2xlarge",
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": "Name", "Value": name}, *tags],
                }
            ],
        )
        ids.append(reservation["Instances"][0]["InstanceId"])
    ec2.stop_instances(InstanceIds=[ids[2]])


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    tmp = tmp_path_factory.mktemp("processes")
    topology = Topology(tmp)
    try:
        _start_all(topology)
        yield topology
    finally:
        topology.stop()


def _start_all(topology: Topology) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    redis_port = free_port()
    topology.processes["redis"] = start_redis_server(redis_port, str(topology.workdir))
    mongodb_url = _mongodb_url(topology, base)

    aws_port, cml_port, web_port = free_port(), free_port(), free_port()
    aws_url = f"http://127.0.0.1:{aws_port}"
    cml_url = f"http://127.0.0.1:{cml_port}"
    cmlfleet = [sys.executable, "-m", "backend.cli"]
    topology.start("aws", [*cmlfleet, "simulate-aws", "--port", str(aws_port)], base)
    topology.start(
        "cml", [*cmlfleet, "simulate-cml", "--port", str(cml_port), "--http"], base
    )
    topology.wait_for("moto", lambda: _answers(aws_url + "/moto-api/"), 30)
    topology.wait_for("the CML simulator", lambda: _answers(cml_url + "/"), 30)
    _seed(aws_url)

    env = {
        **base,
        # Plain HTTP on the loopback: a Secure session cookie would never be sent.
        "CMLFLEET_ENV": "development",
        "SECRET_KEY": secrets.token_hex(32),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "MONGODB_URL": mongodb_url,
        "AWS_REGIONS": "us-east-1",
        "AWS_ENDPOINT_URL": aws_url,
        "AWS_ACCESS_KEY_ID": "processes",
        "AWS_SECRET_ACCESS_KEY": "processes",
        "CML_ENDPOINT": cml_url + "/{instance_id}",
        "CML_PASSWORD": "admin",
        "REFRESH_INTERVAL_SECONDS": str(INTERVAL),
        # A quiet stream still yields a line a second, so waits for events end.
        "SSE_HEARTBEAT_SECONDS": "1",
        "ADMIN_USERNAME": ADMIN[0],
        "ADMIN_PASSWORD": ADMIN[1],
        "PORT": str(web_port),
    }
    init = subprocess.run(
        [*cmlfleet, "init"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, init.stdout + init.stderr

    topology.url = f"http://127.0.0.1:{web_port}/"
    topology.start(
        "web", [*cmlfleet, "web", "--host", "127.0.0.1", "--workers", "1"], env
    )
    topology.start("worker", [*cmlfleet, "worker"], env)
    topology.start("scheduler", [*cmlfleet, "scheduler", "--poll", "1"], env)
    topology.wait_for("the web process", lambda: _answers(topology.url + "healthz"), 60)


def _signed_in(topology: Topology) -> requests.Session:
    session = requests.Session()
    response = session.post(
        topology.url + "api/auth/login",
        json={"username": ADMIN[0], "password": ADMIN[1]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    session.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return session


def _fleet(session: requests.Session, topology: Topology) -> dict[str, dict[str, Any]]:
    workers = session.get(topology.url + "api/workers", timeout=10).json()["workers"]
    return {w["name"]: w for w in workers}


def _filled_fleet(
    session: requests.Session, topology: Topology
) -> dict[str, dict[str, Any]]:
    def probe() -> dict[str, dict[str, Any]] | None:
        fleet = _fleet(session, topology)
        running = [w for w in fleet.values() if w["status"] == "running"]
        if (
            len(fleet) == 3
            and len(running) == 2
            and all(w["cml_version"] for w in running)
        ):
            return fleet
        return None

    return topology.wait_for("the scheduled refresh", probe, 3 * INTERVAL + 30)


def _next_event(
    lines: Iterator[str], matches: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any] | None:
    started = time.monotonic()
    for line in lines:
        if line.startswith("data:"):
            envelope = json.loads(line[5:])
            if matches(envelope):
                return envelope
        if time.monotonic() - started > timeout:
            break
    return None


def test_scheduled_refresh_imports_the_tagged_instances_and_reads_their_cml(topology):
    session = _signed_in(topology)

    fleet = _filled_fleet(session, topology)

    assert set(fleet) == {"alpha", "bravo", "charlie"}
    assert fleet["charlie"]["status"] == "stopped"
    for name in ("alpha", "bravo"):
        worker = fleet[name]
        assert worker["cml_service_status"] == "available"
        assert worker["cml_labs_count"] >= 1
        assert worker["cml_license_registration"]
        assert worker["ec2_checked_at"] and worker["cml_synced_at"]
        labs = session.get(
            topology.url + f"api/workers/{worker['id']}/labs", timeout=10
        )
        assert len(labs.json()["labs"]) == worker["cml_labs_count"]


def test_scheduled_refreshes_keep_coming(topology):
    session = _signed_in(topology)
    first = _filled_fleet(session, topology)["alpha"]["ec2_checked_at"]

    def changed() -> str | None:
        checked = _fleet(session, topology)["alpha"]["ec2_checked_at"]
        return checked if checked != first else None

    later = topology.wait_for("a later scheduled refresh", changed, 2 * INTERVAL + 15)

    assert later > first


def test_on_demand_refresh_runs_in_the_worker_and_settles_with_its_event(topology):
    session = _signed_in(topology)
    worker = _filled_fleet(session, topology)["alpha"]

    with session.get(
        topology.url + "api/workers/events", stream=True, timeout=10
    ) as stream:
        asked = session.post(
            topology.url + f"api/workers/{worker['id']}/refresh", timeout=10
        )
        assert asked.status_code == 202, asked.text
        completed = _next_event(
            stream.iter_lines(decode_unicode=True),
            lambda e: (
                e["type"] == "worker.refresh.completed"
                and e["data"]["job_id"] == asked.json()["job_id"]
            ),
            30,
        )

    assert completed is not None, "no worker.refresh.completed\n" + topology.tails()
    assert completed["worker_id"] == worker["id"]
    assert completed["data"]["ok"] is True


def test_metrics_of_the_web_process_show_the_fleet_the_worker_refreshed(topology):
    session = _signed_in(topology)
    fleet = _filled_fleet(session, topology)

    text = requests.get(topology.url + "metrics", timeout=10).text

    families = {f.name: f for f in text_string_to_metric_families(text)}
    labs = {
        s.labels["worker_name"]: s.value
        for s in families["cml_worker_labs_count"].samples
    }
    statuses = {
        s.labels["status"]: s.value for s in families["cml_fleet_workers"].samples
    }
    assert labs["alpha"] == fleet["alpha"]["cml_labs_count"]
    assert labs["bravo"] == fleet["bravo"]["cml_labs_count"]
    assert statuses["running"] == 2
    assert statuses["stopped"] == 1


def test_history_comes_back_from_the_refreshes(topology):
    session = _signed_in(topology)
    worker = _filled_fleet(session, topology)["bravo"]
    path = topology.url + f"api/workers/{worker['id']}/metrics"

    def sampled_twice() -> list[dict[str, Any]] | None:
        points = session.get(path, timeout=10).json()["points"]
        return points if sum(p["count"] for p in points) >= 2 else None

    points = topology.wait_for("two history samples", sampled_twice, 2 * INTERVAL + 15)

    assert any("cml_labs_count" in p for p in points)


def test_admin_enables_detailed_monitoring_through_the_worker(topology):
    session = _signed_in(topology)
    worker = _filled_fleet(session, topology)["alpha"]
    assert worker["ec2_detailed_monitoring"] == "disabled"

    with session.get(
        topology.url + "api/workers/events", stream=True, timeout=10
    ) as stream:
        asked = session.put(
            topology.url + f"api/workers/{worker['id']}/monitoring",
            json={"enabled": True},
            timeout=10,
        )
        assert asked.status_code == 202, asked.text
        changed = _next_event(
            stream.iter_lines(decode_unicode=True),
            lambda e: (
                e["type"] == "worker.monitoring.changed"
                and e["worker_id"] == worker["id"]
            ),
            30,
        )

    assert changed is not None, "no worker.monitoring.changed\n" + topology.tails()
    assert changed["data"]["worker"]["ec2_detailed_monitoring"] in (
        "pending",
        "enabled",
    )

    def enabled() -> bool | None:
        state = _fleet(session, topology)["alpha"]["ec2_detailed_monitoring"]
        return True if state == "enabled" else None

    topology.wait_for("a refresh reading monitoring as enabled", enabled, 3 * INTERVAL)


def test_admin_stops_a_worker_and_the_schedule_sees_it_stopped(topology):
    session = _signed_in(topology)
    worker = _filled_fleet(session, topology)["bravo"]

    with session.get(
        topology.url + "api/workers/events", stream=True, timeout=10
    ) as stream:
        asked = session.post(
            topology.url + f"api/workers/{worker['id']}/stop", timeout=10
        )
        assert asked.status_code == 202, asked.text
        stopped = _next_event(
            stream.iter_lines(decode_unicode=True),
            lambda e: (
                e["type"] == "worker.status.changed"
                and e["worker_id"] == worker["id"]
                and e["data"]["changes"]["status"][1] == "stopped"
            ),
            3 * INTERVAL + 30,
        )

    assert stopped is not None, "bravo never showed as stopped\n" + topology.tails()
    assert _fleet(session, topology)["bravo"]["status"] == "stopped"
