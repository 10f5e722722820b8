"""The Procfile and the compose files describe the same system as the design."""

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from backend.models import Worker
from backend.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = {
    "web": "cmlfleet web",
    "worker": "cmlfleet worker",
    "scheduler": "cmlfleet scheduler",
}


def _procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_procfile_runs_every_process_and_initialises_on_release():
    procfile = _procfile()

    assert procfile == {**PROCESSES, "release": "cmlfleet init"}


def test_compose_runs_the_same_processes_as_the_procfile():
    services = _compose()["services"]

    for name, command in PROCESSES.items():
        assert " ".join(services[name]["command"]) == command
    assert " ".join(services["init"]["command"]) == "cmlfleet init"


def test_compose_has_the_stores_the_design_names():
    services = _compose()["services"]

    assert services["mongo"]["image"].startswith("mongo:7")
    assert services["redis"]["image"].startswith("redis:7")
    assert "--appendonly" in services["redis"]["command"]
    assert any("redis-data" in v for v in services["redis"]["volumes"])
    for name in PROCESSES:
        environment = services[name]["environment"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["MONGODB_URL"].startswith("mongodb://mongo:27017/")


def test_compose_environment_is_settings_the_app_knows():
    settings_doc = (ROOT / "README.md").read_text()
    known = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", settings_doc))
    aws_sdk = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

    for name, service in _compose()["services"].items():
        if name in PROCESSES or name == "init":
            unknown = set(service["environment"]) - known - aws_sdk
            assert not unknown, f"{name}: {unknown}"


def test_compose_defaults_pass_settings_validation():
    environment = dict(_compose()["services"]["web"]["environment"])
    resolved = {
        key: re.sub(
            r"\$\{[A-Z_]+(?::[-?]([^}]*))?\}", lambda m: m.group(1) or "", str(value)
        )
        for key, value in environment.items()
    }
    resolved["SECRET_KEY"] = "a-long-random-secret-key"
    resolved["CML_ENDPOINT"] = "https://{public_ip}"

    settings = load_settings(resolved)

    assert settings.port == 8000


def test_web_port_matches_the_published_port_and_prometheus_target():
    services = _compose()["services"]
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())

    assert services["web"]["ports"] == ["8000:8000"]
    job = prometheus["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["web:8000"]


def test_demo_profile_adds_moto_and_the_simulator():
    services = _compose()["services"]

    assert services["moto"]["profiles"] == ["demo"]
    assert services["cml-simulator"]["profiles"] == ["demo"]
    assert services["moto"]["command"][:2] == ["cmlfleet", "simulate-aws"]
    assert services["cml-simulator"]["command"][:2] == ["cmlfleet", "simulate-cml"]
    # Other containers reach them: they listen on every address of their own.
    for name in ("moto", "cml-simulator"):
        command = services[name]["command"]
        assert command[command.index("--host") + 1] == "0.0.0.0"


def test_grafana_dashboard_queries_metrics_the_app_exports(user, app):
    with app.app_context():
        Worker(
            name="w1",
            region="us-east-1",
            status="running",
            cml_service_status="available",
            cml_labs_count=2,
            cml_nodes_running=3,
            cml_allocated_cpus=4,
            cml_allocated_memory=8192,
            cloudwatch_cpu_utilization=12.0,
            cloudwatch_memory_utilization=40.0,
        ).save()
        app.extensions["cmlfleet.redis"].hincrby(
            "cmlfleet:refresh:stats", "failures:cml", 1
        )
    text = user.get("/metrics").get_data(as_text=True)
    exported = {f.name for f in text_string_to_metric_families(text)}
    exported |= {
        s.name for f in text_string_to_metric_families(text) for s in f.samples
    }
    dashboard = json.loads(
        (ROOT / "deploy/grafana/dashboards/cmlfleet.json").read_text()
    )

    for panel in dashboard["panels"]:
        names = re.findall(r"\b(cml\w+)", panel["targets"][0]["expr"])
        for name in names:
            assert name in exported or name.removesuffix("_total") in exported, name
