"""The workers API: the fleet, one worker, its labs."""

from __future__ import annotations

import json
from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.exceptions import HTTPError
from apiflask.fields import (
    Boolean,
    DateTime,
    Dict,
    Float,
    Integer,
    List,
    Nested,
    String,
)
from apiflask.validators import Length, OneOf, Regexp
from bson import ObjectId
from bson.errors import InvalidId
from flask import Response, current_app
from marshmallow import fields as ma_fields
from mongoengine import fields as me_fields

from backend import events, jobs, lifecycle
from backend.auth import current_user, require
from backend.connections import redis_client, settings
from backend.errors import AWSError
from backend.models import WORKER_STATUSES, Lab, Worker, audit
from backend.refresh import Context

bp = APIBlueprint("workers", __name__, url_prefix="/api/workers", tag="Workers")

_FIELD_TYPES: dict[type, type[ma_fields.Field]] = {
    me_fields.StringField: String,
    me_fields.IntField: Integer,
    me_fields.FloatField: Float,
    me_fields.BooleanField: Boolean,
    me_fields.DateTimeField: DateTime,
    me_fields.DictField: Dict,
}


def _schema_for(document: type, name: str, extra: dict[str, Any]) -> type[Schema]:
    """An output schema with one field per document field, so the two never drift."""
    declared: dict[str, Any] = dict(extra)
    for field_name, field in document._fields.items():  # type: ignore[attr-defined]
        if field_name == "id":
            continue
        declared[field_name] = _FIELD_TYPES[type(field)](allow_none=True)
    return type(name, (Schema,), declared)


WorkerOut = _schema_for(Worker, "WorkerOut", {"id": String()})
LabOut = _schema_for(Lab, "LabOut", {})


class WorkerQuery(Schema):
    status = String(validate=OneOf(WORKER_STATUSES))
    region = String()


class FleetOut(Schema):
    workers = List(Nested(WorkerOut))
    last_event_id = String()


class LabsOut(Schema):
    labs = List(Nested(LabOut))


def role() -> str:
    user = current_user()
    return user.role if user else "user"


def worker_or_404(worker_id: str) -> Worker:
    try:
        key = ObjectId(worker_id)
    except (InvalidId, TypeError):
        raise HTTPError(404, f"There is no worker {worker_id!r}.") from None
    worker = Worker.objects(pk=key).first()
    if worker is None:
        raise HTTPError(404, f"There is no worker {worker_id!r}.")
    return worker


def worker_view(worker: Worker) -> dict[str, Any]:
    return events.worker_for_role(worker.to_dict(), role())


@bp.get("/<worker_id>")
@bp.output(WorkerOut)
@bp.doc(summary="One worker", responses=[401, 404])
@require("user")
def get_worker(worker_id: str) -> dict[str, Any]:
    return worker_view(worker_or_404(worker_id))


@bp.get("")
@require("user")
@bp.input(WorkerQuery, location="query", arg_name="query")
@bp.output(FleetOut)
@bp.doc(summary="The fleet", responses=[401])
def list_workers(query: dict[str, str]) -> Response:
    # Read the event position first: an event that lands while the fleet is read
    # is then replayed to the client rather than lost.
    last_event_id = events.last_event_id(redis_client())
    documents = Worker.objects(**query).order_by("name").as_pymongo()
    body = {
        "workers": [
            events.worker_for_role(Worker.dict_from_raw(d), role()) for d in documents
        ],
        "last_event_id": last_event_id,
    }
    # The whole fleet is the page's first request: encoded directly rather than
    # through the output schema, which documents the same shape.
    return current_app.response_class(events.dumps(body), mimetype="application/json")


@bp.get("/<worker_id>/labs")
@bp.output(LabsOut)
@bp.doc(summary="A worker's labs", responses=[401, 404])
@require("user")
def list_labs(worker_id: str) -> dict[str, Any]:
    worker = worker_or_404(worker_id)
    labs = Lab.objects(worker_id=str(worker.pk)).order_by("title")
    return {"labs": [lab.to_dict() for lab in labs]}


# --- admin actions and refresh ---------------------------------------------------


class LaunchIn(Schema):
    name = String(required=True, validate=Length(1, 128))
    region = String(required=True, validate=Length(1, 32))
    instance_type = String(validate=Length(1, 64))
    ami_id = String(validate=Regexp(r"^ami-[0-9a-f]{8,17}$"))


class ImportIn(Schema):
    region = String(required=True, validate=Length(1, 32))
    instance_ids = List(
        String(validate=Regexp(r"^i-[0-9a-f]{8,17}$")), validate=Length(1, 1000)
    )


class MonitoringIn(Schema):
    enabled = Boolean(required=True)


class JobOut(Schema):
    job_id = String()


class LaunchOut(Schema):
    worker = Nested(WorkerOut)


class ImportOut(Schema):
    imported = List(Nested(WorkerOut))
    skipped = List(Dict())


def _managed_region(region: str) -> str:
    regions = settings().aws_regions
    if region not in regions:
        raise HTTPError(
            400,
            f"Region {region!r} is not managed; AWS_REGIONS lists "
            f"{', '.join(regions)}.",
            detail={"json": {"region": [f"must be one of {', '.join(regions)}"]}},
            extra_data={"error": "validation_error"},
        )
    return region


def web_context() -> Context:
    """The refresh context of this web process, built on first use."""
    app = current_app
    ctx = app.extensions.get("cmlfleet.context")
    if ctx is None:
        ctx = jobs.build_context(settings(), redis_client())
        app.extensions["cmlfleet.context"] = ctx
    return ctx


def _actor() -> str:
    user = current_user()
    return user.username if user else "?"


def _accept(action: str, worker: Worker, **params: Any) -> tuple[dict[str, str], int]:
    job_id = jobs.enqueue_action(
        redis_client(), action, str(worker.pk), _actor(), **params
    )
    audit(
        action,
        "accepted",
        actor=_actor(),
        target=f"{worker.name} ({worker.pk})",
        detail=json.dumps(params) if params else None,
    )
    return {"job_id": job_id}, 202


def _live(worker: Worker) -> Worker:
    if worker.status == "terminated":
        raise HTTPError(409, f"Worker {worker.name} is terminated.")
    return worker


@bp.post("")
@require("admin")
@bp.input(LaunchIn, arg_name="body")
@bp.output(LaunchOut, status_code=202)
@bp.doc(summary="Launch a worker", responses=[400, 401, 403])
def launch_worker(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    region = _managed_region(body["region"])
    worker = Worker(
        name=body["name"],
        region=region,
        instance_type=body.get("instance_type") or settings().worker_instance_type,
        ami_id=body.get("ami_id"),
        status="pending",
    ).save()
    events.publish(
        redis_client(),
        "worker.created",
        worker_id=str(worker.pk),
        data={"worker": worker.to_dict(), "changes": {}},
        maxlen=settings().event_replay_size,
    )
    _accept("launch", worker, ami_id=body.get("ami_id"))
    return {"worker": worker_view(worker)}, 202


@bp.post("/import")
@require("admin")
@bp.input(ImportIn, arg_name="body")
@bp.output(ImportOut)
@bp.doc(summary="Import existing instances", responses=[400, 401, 403, 503])
def import_workers(body: dict[str, Any]) -> dict[str, Any]:
    region = _managed_region(body["region"])
    try:
        imported, skipped = lifecycle.import_instances(
            web_context(), region, body.get("instance_ids"), _actor()
        )
    except AWSError as exc:
        audit("import", "failed", actor=_actor(), target=region, detail=str(exc))
        raise HTTPError(
            502 if exc.code != "InvalidInstanceID.NotFound" else 400,
            f"AWS refused the import: {exc}",
            extra_data={"error": "aws_error"},
        ) from None
    audit(
        "import",
        "ok",
        actor=_actor(),
        target=region,
        detail=f"{len(imported)} imported, {len(skipped)} skipped",
    )
    return {"imported": [worker_view(w) for w in imported], "skipped": skipped}


@bp.post("/<worker_id>/start")
@bp.output(JobOut, status_code=202)
@bp.doc(summary="Start a worker's instance", responses=[401, 403, 404, 409])
@require("admin")
def start_worker(worker_id: str) -> tuple[dict[str, str], int]:
    return _accept("start", _live(worker_or_404(worker_id)))


@bp.post("/<worker_id>/stop")
@bp.output(JobOut, status_code=202)
@bp.doc(summary="Stop a worker's instance", responses=[401, 403, 404, 409])
@require("admin")
def stop_worker(worker_id: str) -> tuple[dict[str, str], int]:
    return _accept("stop", _live(worker_or_404(worker_id)))


@bp.delete("/<worker_id>")
@bp.output(JobOut, status_code=202)
@bp.doc(summary="Terminate a worker's instance", responses=[401, 403, 404, 409])
@require("admin")
def terminate_worker(worker_id: str) -> tuple[dict[str, str], int]:
    return _accept("terminate", _live(worker_or_404(worker_id)))


@bp.put("/<worker_id>/monitoring")
@require("admin")
@bp.input(MonitoringIn, arg_name="body")
@bp.output(JobOut, status_code=202)
@bp.doc(summary="Turn EC2 detailed monitoring on or off", responses=[401, 403, 404])
def set_monitoring(worker_id: str, body: dict[str, bool]) -> tuple[dict[str, str], int]:
    return _accept(
        "monitoring", _live(worker_or_404(worker_id)), enabled=body["enabled"]
    )


@bp.post("/<worker_id>/refresh")
@bp.output(JobOut, status_code=202)
@bp.doc(summary="Refresh one worker now", responses=[401, 404])
@require("user")
def refresh_worker(worker_id: str) -> tuple[dict[str, str], int]:
    worker = worker_or_404(worker_id)
    return {"job_id": jobs.enqueue_worker_refresh(redis_client(), str(worker.pk))}, 202


@bp.post("/<worker_id>/labs/<lab_id>/<any(start, stop, wipe):verb>")
@bp.output(JobOut, status_code=202)
@bp.doc(summary="Start, stop or wipe a lab", responses=[401, 403, 404, 409])
@require("admin")
def lab_action(worker_id: str, lab_id: str, verb: str) -> tuple[dict[str, str], int]:
    worker = _live(worker_or_404(worker_id))
    if Lab.objects(worker_id=str(worker.pk), lab_id=lab_id).first() is None:
        raise HTTPError(404, f"Worker {worker.name} has no lab {lab_id!r}.")
    return _accept(f"lab_{verb}", worker, lab_id=lab_id)
