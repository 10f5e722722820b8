"""Admin actions through the API, carried out by a real RQ worker against moto."""

from dataclasses import replace

import pytest
from fleet_fixtures import published
from rq import SimpleWorker

from backend import jobs
from backend.models import AuditEntry, Lab, Worker
from backend.refresh import refresh


def run_jobs(redis_client) -> None:
    SimpleWorker([jobs.queue(redis_client)], connection=redis_client).work(burst=True)


def types_of(redis_client) -> list[str]:
    return [e["type"] for e in published(redis_client)]


@pytest.fixture
def worker_id(app, fleet, admin):
    fleet.launch("trainer")
    with app.app_context():
        refresh(fleet.ctx)
    return admin.get("/api/workers").get_json()["workers"][0]["id"]


def test_launch_saves_a_pending_worker_then_starts_the_instance(
    app, fleet, admin, redis_client
):
    response = admin.post(
        "/api/workers", json={"name": "ccna-1", "region": "us-east-1"}
    )

    assert response.status_code == 202
    worker = response.get_json()["worker"]
    assert worker["status"] == "pending"
    assert types_of(redis_client) == ["worker.created"]

    with app.app_context():
        run_jobs(redis_client)
        saved = Worker.objects.get(pk=worker["id"])

    assert saved.aws_instance_id.startswith("i-")
    assert saved.ami_id == "ami-0c1ab29a0d0f3e002", "the newest CML-2.9* image"
    assert saved.status in ("pending", "running")
    instance = fleet.ec2.describe_instances(InstanceIds=[saved.aws_instance_id])
    tags = {
        t["Key"]: t["Value"]
        for t in instance["Reservations"][0]["Instances"][0]["Tags"]
    }
    assert tags == {"Name": "ccna-1", "cmlfleet:managed": "true"}
    with app.app_context():
        outcomes = [e.outcome for e in AuditEntry.objects(action="launch")]
    assert sorted(outcomes) == ["accepted", "ok"]


def test_failed_launch_leaves_a_failed_worker_with_the_reason(
    app, fleet, admin, redis_client
):
    response = admin.post(
        "/api/workers",
        json={
            "name": "broken",
            "region": "us-east-1",
            "ami_id": "ami-00000000deadbeef",
        },
    )
    worker_id = response.get_json()["worker"]["id"]

    with app.app_context():
        run_jobs(redis_client)
        saved = Worker.objects.get(pk=worker_id)

    assert saved.status == "failed"
    assert saved.aws_instance_id is None
    assert "InvalidAMIID" in saved.last_error["message"]
    failed = [e for e in published(redis_client) if e["type"] == "worker.action.failed"]
    assert failed[0]["data"]["action"] == "launch"
    assert "InvalidAMIID" in failed[0]["data"]["error"]
    assert "Traceback" not in failed[0]["data"]["error"]


def test_launch_uses_the_configured_launch_template(app, fleet, admin, redis_client):
    fleet.ec2.create_key_pair(KeyName="lab-ops")
    fleet.ec2.create_launch_template(
        LaunchTemplateName="cml-worker", LaunchTemplateData={"KeyName": "lab-ops"}
    )
    fleet.ctx.settings = replace(
        fleet.ctx.settings, worker_launch_template="cml-worker"
    )

    response = admin.post("/api/workers", json={"name": "vpc-1", "region": "us-east-1"})
    with app.app_context():
        run_jobs(redis_client)
        saved = Worker.objects.get(pk=response.get_json()["worker"]["id"])

    assert saved.status in ("pending", "running")
    (instance,) = fleet.ec2.describe_instances(InstanceIds=[saved.aws_instance_id])[
        "Reservations"
    ][0]["Instances"]
    assert instance["KeyName"] == "lab-ops"


def test_launch_with_a_missing_launch_template_names_it(
    app, fleet, admin, redis_client
):
    fleet.ctx.settings = replace(fleet.ctx.settings, worker_launch_template="gone")

    response = admin.post("/api/workers", json={"name": "vpc-2", "region": "us-east-1"})
    with app.app_context():
        run_jobs(redis_client)
        saved = Worker.objects.get(pk=response.get_json()["worker"]["id"])

    assert saved.status == "failed"
    assert saved.aws_instance_id is None
    assert "'gone' (WORKER_LAUNCH_TEMPLATE)" in saved.last_error["message"]


def test_launch_refuses_a_region_that_is_not_managed(admin):
    response = admin.post("/api/workers", json={"name": "x", "region": "mars-east-1"})

    assert response.status_code == 400
    assert "AWS_REGIONS" in response.get_json()["message"]


def test_launch_refuses_unknown_fields(admin):
    response = admin.post(
        "/api/workers", json={"name": "x", "region": "us-east-1", "size": "huge"}
    )

    assert response.status_code == 400
    assert "size" in response.get_json()["message"]


def test_stop_and_start_change_status_and_publish(
    app, fleet, admin, worker_id, redis_client
):
    assert admin.post(f"/api/workers/{worker_id}/stop").status_code == 202
    with app.app_context():
        run_jobs(redis_client)
        assert Worker.objects.get(pk=worker_id).status in ("stopping", "stopped")

    assert admin.post(f"/api/workers/{worker_id}/start").status_code == 202
    with app.app_context():
        run_jobs(redis_client)
        assert Worker.objects.get(pk=worker_id).status in ("pending", "running")

    changes = [
        e["data"]["changes"]["status"]
        for e in published(redis_client)
        if e["type"] == "worker.status.changed"
    ]
    assert changes[0][0] == "running"
    assert changes[-1][1] in ("pending", "running")


def test_detailed_monitoring_toggles(app, fleet, admin, worker_id, redis_client):
    response = admin.put(f"/api/workers/{worker_id}/monitoring", json={"enabled": True})
    assert response.status_code == 202
    with app.app_context():
        run_jobs(redis_client)

    worker = admin.get(f"/api/workers/{worker_id}").get_json()
    assert worker["ec2_detailed_monitoring"] in ("pending", "enabled")
    event = [
        e for e in published(redis_client) if e["type"] == "worker.monitoring.changed"
    ][-1]
    assert event["data"]["changes"]["ec2_detailed_monitoring"][0] == "disabled"

    admin.put(f"/api/workers/{worker_id}/monitoring", json={"enabled": False})
    with app.app_context():
        run_jobs(redis_client)
    worker = admin.get(f"/api/workers/{worker_id}").get_json()
    assert worker["ec2_detailed_monitoring"] in ("disabling", "disabled")


def test_monitoring_needs_a_boolean(admin, worker_id):
    response = admin.put(
        f"/api/workers/{worker_id}/monitoring", json={"enabled": "maybe"}
    )

    assert response.status_code == 400
    assert "enabled" in response.get_json()["message"]


def test_terminate_marks_the_worker_and_refuses_further_actions(
    app, fleet, admin, worker_id, redis_client
):
    assert admin.delete(f"/api/workers/{worker_id}").status_code == 202
    with app.app_context():
        run_jobs(redis_client)
        refresh(fleet.ctx)

    worker = admin.get(f"/api/workers/{worker_id}").get_json()
    assert worker["status"] == "terminated"
    assert "worker.terminated" in types_of(redis_client)
    assert admin.post(f"/api/workers/{worker_id}/start").status_code == 409


def test_import_discovers_by_tag_and_ami_and_skips_duplicates(app, fleet, admin):
    fleet.launch("old-one", count=2)
    fleet.launch("stranger", tagged=False)

    first = admin.post("/api/workers/import", json={"region": "us-east-1"})
    second = admin.post("/api/workers/import", json={"region": "us-east-1"})

    assert first.status_code == 200
    assert len(first.get_json()["imported"]) == 2
    assert first.get_json()["imported"][0]["ami_name"].startswith("CML-2.9")
    assert second.get_json()["imported"] == []
    assert {s["reason"] for s in second.get_json()["skipped"]} == {"already a worker"}


def test_import_by_id_reports_unknown_ids(app, fleet, admin):
    (known,) = fleet.launch("named", tagged=False)

    response = admin.post(
        "/api/workers/import",
        json={"region": "us-east-1", "instance_ids": [known, "i-0123456789abcdef0"]},
    )

    # EC2 refuses the whole lookup when one id is unknown: nothing is imported
    # and the admin is told which id it was.
    assert response.status_code == 400
    assert "i-0123456789abcdef0" in response.get_json()["message"]
    assert admin.get("/api/workers").get_json()["workers"] == []


def test_import_by_id_tags_the_instance_so_refreshes_keep_it(app, fleet, admin):
    (legacy,) = fleet.launch("legacy", tagged=False)

    response = admin.post(
        "/api/workers/import", json={"region": "us-east-1", "instance_ids": [legacy]}
    )
    with app.app_context():
        refresh(fleet.ctx)
        worker = Worker.objects.get(aws_instance_id=legacy)

    assert response.status_code == 200
    assert worker.status == "running"
    assert worker.cml_version is not None
    assert worker.aws_tags["cmlfleet:managed"] == "true"
    instance = fleet.ec2.describe_instances(InstanceIds=[legacy])
    tags = {
        t["Key"]: t["Value"]
        for t in instance["Reservations"][0]["Instances"][0]["Tags"]
    }
    assert tags == {"Name": "legacy", "cmlfleet:managed": "true"}


def test_import_refuses_malformed_instance_ids(admin):
    response = admin.post(
        "/api/workers/import", json={"region": "us-east-1", "instance_ids": ["bogus"]}
    )

    assert response.status_code == 400
    assert "instance_ids" in response.get_json()["message"]


def test_lab_start_and_stop_go_through_cml(app, fleet, admin, worker_id, redis_client):
    with app.app_context():
        lab = Lab.objects(worker_id=worker_id, state__ne="STARTED").first()
    assert lab is not None

    response = admin.post(f"/api/workers/{worker_id}/labs/{lab.lab_id}/start")
    assert response.status_code == 202
    with app.app_context():
        run_jobs(redis_client)
        assert (
            Lab.objects.get(worker_id=worker_id, lab_id=lab.lab_id).state == "STARTED"
        )

    admin.post(f"/api/workers/{worker_id}/labs/{lab.lab_id}/stop")
    with app.app_context():
        run_jobs(redis_client)
        assert (
            Lab.objects.get(worker_id=worker_id, lab_id=lab.lab_id).state == "STOPPED"
        )
    assert "worker.labs.updated" in types_of(redis_client)


def test_unknown_lab_is_404(admin, worker_id):
    response = admin.post(f"/api/workers/{worker_id}/labs/nope/start")

    assert response.status_code == 404


def test_user_cannot_act_and_nothing_is_queued(user, worker_id, redis_client):
    for method, path in [
        ("POST", f"/api/workers/{worker_id}/stop"),
        ("DELETE", f"/api/workers/{worker_id}"),
        ("PUT", f"/api/workers/{worker_id}/monitoring"),
    ]:
        assert user.request(method, path, json={"enabled": True}).status_code == 403
    assert jobs.queue(redis_client).count == 0
