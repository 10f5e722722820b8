"""The refresh pipeline against moto and the CML simulator."""

import threading
from dataclasses import replace
from datetime import datetime

import pytest
from fleet_fixtures import published
from prometheus_client.parser import text_string_to_metric_families
from rq import SimpleWorker

from backend import jobs
from backend import refresh as refresh_module
from backend.models import Lab, Worker
from backend.refresh import _insert_labs, refresh

CML_FIELDS = [name for name in Worker._fields if name.startswith("cml_")]


def run_jobs(redis_client) -> None:
    SimpleWorker([jobs.queue(redis_client)], connection=redis_client).work(burst=True)


def test_first_refresh_imports_and_fills_every_field(app, fleet, redis_client):
    running = fleet.launch("lab-a", count=2)
    fleet.seed_metrics(running[0], cpu=42.5, memory=61.0)
    fleet.seed_metrics(running[1], cpu=7.0, memory=None)
    fleet.launch("untagged", tagged=False)

    with app.app_context():
        outcome = refresh(fleet.ctx)
        workers = {w.aws_instance_id: w for w in Worker.objects}

    assert outcome.seen == 2 and outcome.failed == 0
    assert set(workers) == set(running)
    first = workers[running[0]]
    assert first.status == "running"
    assert first.https_endpoint == f"{fleet.simulator.url}/{running[0]}"
    assert first.cloudwatch_cpu_utilization == pytest.approx(42.5)
    assert first.cloudwatch_memory_utilization == pytest.approx(61.0)
    assert workers[running[1]].cloudwatch_memory_utilization is None
    assert first.ec2_instance_status and first.ec2_checked_at
    for name in CML_FIELDS:
        assert getattr(first, name) is not None, name
    assert first.cml_service_status == "available"
    assert first.last_error is None
    with app.app_context():
        assert Lab.objects(worker_id=str(first.pk)).count() == first.cml_labs_count

    types = [e["type"] for e in published(redis_client)]
    assert types.count("worker.imported") == 2
    assert types.count("worker.labs.updated") == 2


def test_unchanged_fleet_publishes_nothing(app, fleet, redis_client):
    fleet.launch("lab-a", count=3)
    with app.app_context():
        refresh(fleet.ctx)
        before = len(published(redis_client))
        outcome = refresh(fleet.ctx)

    assert outcome.events == 0
    assert len(published(redis_client)) == before


def test_change_publishes_one_event_per_source(app, fleet, redis_client):
    (instance,) = fleet.launch("lab-a")
    with app.app_context():
        refresh(fleet.ctx)
        last = published(redis_client)[-1]["id"]
        fleet.seed_metrics(instance, cpu=99.0, memory=None)
        fleet.ec2.stop_instances(InstanceIds=[instance])
        refresh(fleet.ctx)

    new = [e for e in published(redis_client) if e["id"] != last][1:]
    types = sorted(e["type"] for e in new)
    assert types == sorted(set(types)), "one event per changed source"
    assert "worker.status.changed" in types
    assert "worker.cloudwatch_metrics.updated" in types
    status = next(e for e in new if e["type"] == "worker.status.changed")
    assert status["data"]["changes"]["status"] == ["running", "stopped"]
    assert status["data"]["worker"]["status"] == "stopped"


def test_cml_outage_marks_only_that_worker(app, fleet, redis_client):
    dead, healthy = fleet.launch("lab", count=2)
    fleet.simulator.set_faults(dead, outage=True)

    with app.app_context():
        outcome = refresh(fleet.ctx)
        workers = {w.aws_instance_id: w for w in Worker.objects}

    assert outcome.failed == 1
    assert workers[dead].cml_service_status == "unavailable"
    assert workers[dead].last_error["source"] == "cml"
    assert workers[dead].status == "running"
    assert workers[healthy].cml_service_status == "available"
    assert workers[healthy].cml_version is not None
    assert workers[healthy].last_error is None


def test_vanished_instance_marks_worker_terminated(app, fleet, redis_client):
    (instance,) = fleet.launch("lab-a")
    with app.app_context():
        refresh(fleet.ctx)
        fleet.ec2.terminate_instances(InstanceIds=[instance])
        refresh(fleet.ctx)
        worker = Worker.objects.get(aws_instance_id=instance)

    assert worker.status == "terminated"
    assert worker.terminated_at is not None
    assert "worker.terminated" in [e["type"] for e in published(redis_client)]


def test_overlapping_fleet_refreshes_never_run_together(app, fleet, redis_client):
    instances = fleet.launch("slow", count=2)
    for instance in instances:
        fleet.simulator.set_faults(instance, latency_ms=300)
    results = []

    def run() -> None:
        with app.app_context():
            results.append(jobs.refresh_fleet_job())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(r["skipped"] for r in results) == [False, True]
    assert int(redis_client.hget("cmlfleet:refresh:stats", "skipped")) == 1
    assert redis_client.get(jobs.LEASE_KEY) is None, "the lease is released"


def test_metrics_endpoint_reports_labs_per_worker(app, fleet, user):
    fleet.launch("lab", count=3)
    with app.app_context():
        refresh(fleet.ctx)

    text = user.get("/metrics").get_data(as_text=True)
    api = {w["id"]: w for w in user.get("/api/workers").get_json()["workers"]}

    samples = {
        s.labels["worker_id"]: s
        for family in text_string_to_metric_families(text)
        if family.name == "cml_worker_labs_count"
        for s in family.samples
    }
    assert set(samples) == set(api)
    for worker_id, sample in samples.items():
        assert sample.value == api[worker_id]["cml_labs_count"]
        assert sample.labels["worker_name"] == api[worker_id]["name"]
        assert sample.labels["region"] == "us-east-1"
    assert "cml_fleet_workers" in text
    assert "cmlfleet_refresh_runs" in text


def test_on_demand_refresh_reuses_a_queued_job_and_reports_completion(
    app, fleet, user, redis_client
):
    fleet.launch("lab")
    with app.app_context():
        refresh(fleet.ctx)
    worker_id = user.get("/api/workers").get_json()["workers"][0]["id"]

    first = user.post(f"/api/workers/{worker_id}/refresh")
    second = user.post(f"/api/workers/{worker_id}/refresh")
    assert first.status_code == second.status_code == 202
    assert first.get_json()["job_id"] == second.get_json()["job_id"]
    assert jobs.queue(redis_client).count == 1

    with app.app_context():
        run_jobs(redis_client)

    done = [
        e for e in published(redis_client) if e["type"] == "worker.refresh.completed"
    ]
    assert len(done) == 1
    assert done[0]["data"] == {
        "job_id": first.get_json()["job_id"],
        "ok": True,
        "summary": done[0]["data"]["summary"],
    }
    assert done[0]["worker_id"] == worker_id


def test_fleet_lists_last_event_id_after_refresh(app, fleet, user, redis_client):
    fleet.launch("lab")
    with app.app_context():
        refresh(fleet.ctx)

    body = user.get("/api/workers").get_json()

    assert body["last_event_id"] == published(redis_client)[-1]["id"]


def test_worker_stopped_since_last_refresh_is_not_marked_by_its_cml_read(
    app, fleet, redis_client
):
    # CML is read side by side with AWS for workers stored as running; once AWS
    # says the instance stopped, that read must count for nothing.
    stopped, running = fleet.launch("lab", count=2)
    with app.app_context():
        refresh(fleet.ctx)
        fleet.ec2.stop_instances(InstanceIds=[stopped])
        fleet.simulator.set_faults(stopped, outage=True)
        outcome = refresh(fleet.ctx)
        workers = {w.aws_instance_id: w for w in Worker.objects}

    assert outcome.failed == 0 and "cml" not in outcome.failures
    assert workers[stopped].status == "stopped"
    assert workers[stopped].cml_service_status == "unavailable"
    assert workers[stopped].last_error is None
    assert workers[running].cml_service_status == "available"


def test_worker_at_a_new_endpoint_is_read_there(app, fleet, redis_client):
    (instance,) = fleet.launch("lab")
    real = fleet.ctx.settings.cml_endpoint
    fleet.ctx.settings = replace(
        fleet.ctx.settings, cml_endpoint="http://127.0.0.1:9/{instance_id}"
    )
    with app.app_context():
        first = refresh(fleet.ctx)
        assert first.failed == 1
        fleet.ctx.settings = replace(fleet.ctx.settings, cml_endpoint=real)
        second = refresh(fleet.ctx)
        worker = Worker.objects.get(aws_instance_id=instance)

    assert second.failed == 0
    assert worker.https_endpoint == f"{fleet.simulator.url}/{instance}"
    assert worker.cml_service_status == "available"
    assert worker.last_error is None
    assert worker.cml_labs_count == len(fleet.simulator.controller(instance).labs)


def test_labs_inserted_by_another_refresh_meanwhile_are_replaced(app):
    # An on-demand refresh of one worker may store a new lab while the fleet
    # refresh is about to insert the same one.
    labs = Lab._get_collection()
    with app.app_context():
        Lab(worker_id="w1", lab_id="lab-1", title="old").save()
        _insert_labs(
            labs,
            [
                {"worker_id": "w1", "lab_id": "lab-1", "title": "new"},
                {"worker_id": "w1", "lab_id": "lab-2", "title": "other"},
            ],
        )
        titles = {lab.lab_id: lab.title for lab in Lab.objects(worker_id="w1")}

    assert titles == {"lab-1": "new", "lab-2": "other"}


def test_labs_event_carries_the_labs_the_api_returns(app, fleet, user, redis_client):
    (instance,) = fleet.launch("lab")
    controller = fleet.simulator.controller(instance)
    with app.app_context():
        refresh(fleet.ctx)
        worker = Worker.objects.get(aws_instance_id=instance)
    event = next(
        e for e in published(redis_client) if e["type"] == "worker.labs.updated"
    )
    api = user.get(f"/api/workers/{worker.pk}/labs").get_json()["labs"]

    def comparable(lab: dict) -> dict:
        times = ("created", "modified", "synced_at")
        return {
            key: datetime.fromisoformat(value.replace("Z", "+00:00"))
            if key in times and value
            else value
            for key, value in lab.items()
        }

    by_id = {lab["lab_id"]: comparable(lab) for lab in event["data"]["labs"]}
    assert set(by_id) == {lab.id for lab in controller.labs}
    assert by_id == {lab["lab_id"]: comparable(lab) for lab in api}


def test_instance_saved_meanwhile_is_left_to_whoever_saved_it(
    app, fleet, redis_client, monkeypatch
):
    (instance,) = fleet.launch("lab")
    load = refresh_module._load_workers

    def load_then_finish_a_launch(worker_id):
        # A launch saves its worker after this refresh has loaded the fleet.
        loaded = load(worker_id)
        Worker(name="launched", region="us-east-1", aws_instance_id=instance).save()
        return loaded

    monkeypatch.setattr(refresh_module, "_load_workers", load_then_finish_a_launch)
    with app.app_context():
        outcome = refresh(fleet.ctx)
        workers = list(Worker.objects(aws_instance_id=instance))

    assert [w.name for w in workers] == ["launched"]
    assert outcome.seen == 0
    assert "worker.imported" not in [e["type"] for e in published(redis_client)]
