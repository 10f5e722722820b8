"""OpenTelemetry metrics served on ``/metrics`` in the Prometheus text format.

The fleet gauges are observable: each scrape reads the shared state (MongoDB for
the workers, Redis for refresh totals), so every web process reports the same
fleet whichever process refreshed it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

# The Flask instrumentation reads this when it starts: emit the stable HTTP
# semantic conventions (http.server.request.duration) rather than the old ones.
os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

from apiflask import APIBlueprint, APIFlask  # noqa: E402
from flask import Response, current_app  # noqa: E402
from opentelemetry.exporter.prometheus import PrometheusMetricReader  # noqa: E402
from opentelemetry.instrumentation.flask import FlaskInstrumentor  # noqa: E402
from opentelemetry.metrics import CallbackOptions, Observation  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry  # noqa: E402
from prometheus_client.exposition import generate_latest  # noqa: E402

from backend.auth import public  # noqa: E402
from backend.models import WORKER_STATUSES, Worker  # noqa: E402
from backend.refresh import STATS_KEY  # noqa: E402

bp = APIBlueprint("telemetry", __name__, tag="Telemetry")

# Routes whose spans and durations would only be noise: the scrape itself and the
# event streams, which stay open for as long as a browser does.
EXCLUDED_URLS = "/metrics,/api/workers/events,/api/workers/ws,/healthz,/readyz"
FLEET_CACHE_SECONDS = 1.0

# gauge name -> (worker field, description, unit)
WORKER_GAUGES = {
    "cml_worker_labs_count": ("cml_labs_count", "Labs on the worker's CML", "1"),
    "cml_worker_nodes_running": ("cml_nodes_running", "Running nodes", "1"),
    "cml_worker_allocated_cpus": (
        "cml_allocated_cpus",
        "vCPUs allocated to nodes",
        "1",
    ),
    "cml_worker_allocated_memory": (
        "cml_allocated_memory",
        "Memory allocated to nodes, as CML reports it",
        "1",
    ),
    "cml_worker_cpu_utilization": (
        "cpu_utilization",
        "CPU utilisation in percent (CloudWatch, else CML)",
        "1",
    ),
    "cml_worker_memory_utilization": (
        "memory_utilization",
        "Memory utilisation in percent (CloudWatch agent, else CML)",
        "1",
    ),
    "cml_worker_up": ("up", "1 when the worker's CML API answers", "1"),
}


class FleetReader:
    """Reads the fleet once per scrape, however many gauges ask."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._read_at = 0.0
        self._rows: list[dict[str, Any]] = []

    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            if time.monotonic() - self._read_at > FLEET_CACHE_SECONDS:
                self._rows = [worker_row(w) for w in Worker.objects.exclude("aws_tags")]
                self._read_at = time.monotonic()
            return self._rows


def worker_row(worker: Worker) -> dict[str, Any]:
    cpu = worker.cloudwatch_cpu_utilization
    if cpu is None:
        cpu = worker.cml_cpu_utilization
    memory = worker.cloudwatch_memory_utilization
    if memory is None and worker.cml_memory_total:
        memory = 100.0 * (worker.cml_memory_used or 0) / worker.cml_memory_total
    return {
        "labels": {
            "worker_id": str(worker.pk),
            "worker_name": worker.name,
            "region": worker.region,
        },
        "status": worker.status,
        "cml_labs_count": worker.cml_labs_count,
        "cml_nodes_running": worker.cml_nodes_running,
        "cml_allocated_cpus": worker.cml_allocated_cpus,
        "cml_allocated_memory": worker.cml_allocated_memory,
        "cpu_utilization": cpu,
        "memory_utilization": memory,
        "up": 1 if worker.cml_service_status == "available" else 0,
    }


def _worker_callback(
    reader: FleetReader, field: str
) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        for row in reader.rows():
            if row["status"] == "terminated" or row[field] is None:
                continue
            yield Observation(row[field], row["labels"])

    return observe


def _stats(app: APIFlask) -> dict[str, float]:
    raw = app.extensions["cmlfleet.redis"].hgetall(STATS_KEY)
    return {k.decode(): float(v) for k, v in raw.items()}


def init_app(app: APIFlask) -> None:
    registry = CollectorRegistry()
    reader = PrometheusMetricReader(registry=registry)
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "cmlfleet-web"}),
    )
    meter = provider.get_meter("cmlfleet")
    fleet = FleetReader()

    for name, (field, description, unit) in WORKER_GAUGES.items():
        meter.create_observable_gauge(
            name,
            callbacks=[_worker_callback(fleet, field)],
            description=description,
            unit=unit,
        )

    def by_status(options: CallbackOptions) -> Iterable[Observation]:
        counts = dict.fromkeys(WORKER_STATUSES, 0)
        for row in fleet.rows():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        for status, count in counts.items():
            yield Observation(count, {"status": status})

    meter.create_observable_gauge(
        "cml_fleet_workers", callbacks=[by_status], description="Workers by status"
    )

    def refresh_counter(key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(_stats(app).get(key, 0.0))

        return observe

    def failures(options: CallbackOptions) -> Iterable[Observation]:
        for key, value in _stats(app).items():
            if key.startswith("failures:"):
                yield Observation(value, {"source": key.partition(":")[2]})

    meter.create_observable_counter(
        "cmlfleet_refresh_runs",
        callbacks=[refresh_counter("runs")],
        description="Fleet and worker refreshes completed",
    )
    meter.create_observable_counter(
        "cmlfleet_refresh_duration_seconds_total",
        callbacks=[refresh_counter("seconds_total")],
        description="Time spent refreshing, summed",
        unit="s",
    )
    meter.create_observable_gauge(
        "cmlfleet_refresh_last_duration_seconds",
        callbacks=[refresh_counter("last_seconds")],
        description="Duration of the latest refresh",
        unit="s",
    )
    meter.create_observable_counter(
        "cmlfleet_refresh_skipped",
        callbacks=[refresh_counter("skipped")],
        description="Fleet refreshes skipped because another was still running",
    )
    meter.create_observable_counter(
        "cmlfleet_refresh_failures",
        callbacks=[failures],
        description="Sources that could not be read, by source",
    )

    FlaskInstrumentor().instrument_app(
        app, meter_provider=provider, excluded_urls=EXCLUDED_URLS
    )
    app.extensions["cmlfleet.metrics"] = (provider, registry)
    app.register_blueprint(bp)


@bp.get("/metrics")
@bp.doc(summary="Prometheus metrics", hide=True)
@public
def metrics() -> Response:
    _, registry = current_app.extensions["cmlfleet.metrics"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
