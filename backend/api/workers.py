"""The workers API: the fleet, one worker, its labs."""

from __future__ import annotations

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
from apiflask.validators import OneOf
from bson import ObjectId
from bson.errors import InvalidId
from marshmallow import fields as ma_fields
from mongoengine import fields as me_fields

from backend import events
from backend.auth import current_user, require
from backend.connections import redis_client
from backend.models import LAB_STATES, WORKER_STATUSES, Lab, Worker

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
@bp.input(WorkerQuery, location="query", arg_name="query")
@bp.output(FleetOut)
@bp.doc(summary="The fleet", responses=[401])
@require("user")
def list_workers(query: dict[str, str]) -> dict[str, Any]:
    # Read the event position first: an event that lands while the fleet is read
    # is then replayed to the client rather than lost.
    last_event_id = events.last_event_id(redis_client())
    workers = Worker.objects(**query).order_by("name")
    return {
        "workers": [worker_view(w) for w in workers],
        "last_event_id": last_event_id,
    }


@bp.get("/<worker_id>/labs")
@bp.output(LabsOut)
@bp.doc(summary="A worker's labs", responses=[401, 404])
@require("user")
def list_labs(worker_id: str) -> dict[str, Any]:
    worker = worker_or_404(worker_id)
    labs = Lab.objects(worker_id=str(worker.pk)).order_by("title")
    return {"labs": [lab.to_dict() for lab in labs]}


__all__ = ["bp", "LAB_STATES"]
