"""Admin actions on workers: launch, import, start, stop, terminate, monitoring, labs.

Each action runs as an RQ job (``jobs.run_action``), except import, which the API
answers at once. A failed AWS or CML call is audited, stored in ``last_error``
and told to admins as a ``worker.action.failed`` event with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from backend import aws
from backend.errors import AWSError, CMLError
from backend.models import Worker, audit
from backend.refresh import Context, refresh

log = logging.getLogger(__name__)

Handler = Callable[..., dict[str, Any]]


def run(
    ctx: Context, action: str, worker_id: str, actor: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    """Carry out one admin action; a failure is audited and told to admins."""
    worker = Worker.objects(pk=worker_id).first()
    if worker is None:
        log.warning("worker %s: gone before %s ran", worker_id, action)
        return None
    handler = ACTIONS[action]
    target = f"{worker.name} ({worker_id})"
    try:
        result = handler(ctx, worker, **params)
    except (AWSError, CMLError) as exc:
        message = str(exc)
        log.warning("worker %s: %s failed (%s)", worker_id, action, message)
        _fail(ctx, worker, action, message)
        audit(action, "failed", actor=actor, target=target, detail=message)
        return {"ok": False, "error": message}
    audit(action, "ok", actor=actor, target=target)
    return {"ok": True, **(result or {})}


def _fail(ctx: Context, worker: Worker, action: str, message: str) -> None:
    source = "cml" if action.startswith("lab_") else "aws"
    worker.last_error = {"source": source, "message": message, "at": datetime.now(UTC)}
    changes: dict[str, list[Any]] = {}
    if action == "launch":
        changes["status"] = [worker.status, "failed"]
        worker.status = "failed"
    worker.updated_at = datetime.now(UTC)
    worker.save()
    data = worker.to_dict()
    if changes:
        ctx.publish(
            "worker.status.changed",
            str(worker.pk),
            {"worker": data, "changes": changes},
        )
    ctx.publish(
        "worker.action.failed",
        str(worker.pk),
        {"action": action, "error": message, "worker": data},
    )


def _apply(
    ctx: Context, worker: Worker, fields: dict[str, Any], event_type: str
) -> None:
    """Save ``fields`` on ``worker`` and publish what changed."""
    before = worker.to_dict()
    for name, value in fields.items():
        setattr(worker, name, value)
    worker.updated_at = datetime.now(UTC)
    worker.last_error = (
        None
        if (before.get("last_error") or {}).get("source") == "aws"
        else worker.last_error
    )
    worker.save()
    after = worker.to_dict()
    changes = {
        name: [before.get(name), after.get(name)]
        for name in fields
        if before.get(name) != after.get(name)
    }
    if not changes:
        return
    ctx.publish(event_type, str(worker.pk), {"worker": after, "changes": changes})
    if event_type != "worker.status.changed" and "status" in changes:
        ctx.publish(
            "worker.status.changed",
            str(worker.pk),
            {"worker": after, "changes": {"status": changes["status"]}},
        )


def _launch(
    ctx: Context, worker: Worker, *, ami_id: str | None = None
) -> dict[str, Any]:
    settings = ctx.settings
    if not ami_id:
        image = aws.find_ami(worker.region, settings.worker_ami_name, clients=ctx.aws)
        ami_id = image.ami_id
    record = aws.launch_instance(
        worker.region,
        name=worker.name,
        instance_type=worker.instance_type or settings.worker_instance_type,
        ami_id=ami_id,
        tag=settings.worker_tag,
        launch_template=settings.worker_launch_template,
        client_token=f"cmlfleet-{worker.pk}",
        clients=ctx.aws,
    )
    _apply(
        ctx,
        worker,
        {
            "aws_instance_id": record.aws_instance_id,
            "ami_id": record.ami_id,
            "ami_name": record.ami_name,
            "instance_type": record.instance_type,
            "status": record.status,
            "ec2_state": record.ec2_state,
            "aws_tags": record.aws_tags,
            "private_ip": record.private_ip,
            "public_ip": record.public_ip,
        },
        "worker.status.changed",
    )
    return {"aws_instance_id": record.aws_instance_id}


def _lifecycle(call: str, event_type: str = "worker.status.changed") -> Any:
    def handler(ctx: Context, worker: Worker) -> dict[str, Any]:
        if not worker.aws_instance_id:
            raise AWSError("NoInstance", "the worker has no EC2 instance yet", call)
        operation = getattr(aws, call)
        state = operation(worker.region, worker.aws_instance_id, clients=ctx.aws)
        fields: dict[str, Any] = {
            "ec2_state": state,
            "status": aws.status_for_ec2_state(state),
        }
        if fields["status"] in ("terminated", "shutting-down"):
            fields["terminated_at"] = datetime.now(UTC)
        _apply(ctx, worker, fields, event_type)
        if fields["status"] in ("terminated", "shutting-down"):
            ctx.publish(
                "worker.terminated",
                str(worker.pk),
                {"worker": worker.to_dict(), "changes": {}},
            )
        return {"state": state}

    return handler


def _monitoring(ctx: Context, worker: Worker, *, enabled: bool) -> dict[str, Any]:
    if not worker.aws_instance_id:
        raise AWSError("NoInstance", "the worker has no EC2 instance yet", "monitoring")
    state = aws.set_detailed_monitoring(
        worker.region, worker.aws_instance_id, enabled, clients=ctx.aws
    )
    _apply(ctx, worker, {"ec2_detailed_monitoring": state}, "worker.monitoring.changed")
    return {"ec2_detailed_monitoring": state}


def _lab_action(verb: str) -> Any:
    def handler(ctx: Context, worker: Worker, *, lab_id: str) -> dict[str, Any]:
        if not worker.https_endpoint:
            raise CMLError("the worker has no CML endpoint yet")
        client = ctx.cml_client(worker.https_endpoint)
        getattr(client, f"{verb}_lab")(lab_id)
        refresh(ctx, worker_id=str(worker.pk))
        return {"lab_id": lab_id}

    return handler


ACTIONS: dict[str, Any] = {
    "launch": _launch,
    "start": _lifecycle("start_instance"),
    "stop": _lifecycle("stop_instance"),
    "terminate": _lifecycle("terminate_instance"),
    "monitoring": _monitoring,
    "lab_start": _lab_action("start"),
    "lab_stop": _lab_action("stop"),
    "lab_wipe": _lab_action("wipe"),
}


def import_instances(
    ctx: Context, region: str, instance_ids: list[str] | None, actor: str
) -> tuple[list[Worker], list[dict[str, str]]]:
    """Track existing instances as workers: the ids given, or all found by tag.

    Without ids, discovery finds the instances that carry ``WORKER_TAG`` and run an
    AMI matching ``WORKER_AMI_NAME``; instances given by id are given that tag.
    Instances already tracked are skipped and reported, never duplicated; so are
    terminated ones.
    """
    settings = ctx.settings
    if instance_ids:
        # EC2 refuses the whole lookup when an id is unknown (AWSError), so what
        # comes back is every instance asked for.
        records = aws.describe_instances(region, instance_ids, clients=ctx.aws)
    else:
        records = aws.discover_instances(
            region, settings.worker_tag, settings.worker_ami_name, clients=ctx.aws
        )
    known = {
        w.aws_instance_id
        for w in Worker.objects(
            aws_instance_id__in=[r.aws_instance_id for r in records]
        )
    }
    fresh: list[aws.InstanceRecord] = []
    skipped: list[dict[str, str]] = []
    for record in records:
        if record.aws_instance_id in known:
            skipped.append(
                {"instance_id": record.aws_instance_id, "reason": "already a worker"}
            )
            continue
        if record.status in ("terminated", "shutting-down"):
            skipped.append(
                {"instance_id": record.aws_instance_id, "reason": "terminated"}
            )
            continue
        fresh.append(record)

    # A refresh reads only the instances that carry the worker tag, and takes a
    # worker whose instance it no longer finds for terminated: an instance
    # imported by id gets the tag before it becomes a worker.
    key, value = aws.parse_worker_tag(settings.worker_tag)
    untagged = [r.aws_instance_id for r in fresh if r.aws_tags.get(key) != value]
    aws.tag_instances(region, untagged, settings.worker_tag, clients=ctx.aws)

    imported: list[Worker] = []
    for record in fresh:
        worker = Worker(
            name=record.name or record.aws_instance_id,
            region=region,
            aws_instance_id=record.aws_instance_id,
            instance_type=record.instance_type,
            ami_id=record.ami_id,
            ami_name=record.ami_name,
            aws_tags={**record.aws_tags, key: value},
            status=record.status,
            ec2_state=record.ec2_state,
            ec2_detailed_monitoring=record.ec2_detailed_monitoring,
            ec2_launch_time=record.ec2_launch_time,
            public_ip=record.public_ip,
            private_ip=record.private_ip,
        ).save()
        imported.append(worker)
        ctx.publish(
            "worker.imported",
            str(worker.pk),
            {"worker": worker.to_dict(), "changes": {}},
        )
        log.info("worker %s: imported %s", worker.pk, record.aws_instance_id)
    return imported, skipped
