"""MongoDB documents: users, workers, labs and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    FloatField,
    IntField,
    StringField,
)

ROLES = ("admin", "user")
WORKER_STATUSES = (
    "pending",
    "running",
    "stopping",
    "stopped",
    "shutting-down",
    "terminated",
    "failed",
    "unknown",
)
CML_SERVICE_STATUSES = ("unavailable", "starting", "available", "error")
MONITORING_STATES = ("disabled", "pending", "enabled", "disabling")
LAB_STATES = ("DEFINED_ON_CORE", "STOPPED", "STARTED")

# Fields only an admin receives, over REST and over the event stream.
ADMIN_ONLY_FIELDS = frozenset(
    {
        "aws_instance_id",
        "private_ip",
        "ami_id",
        "ami_name",
        "aws_tags",
        "cml_license_smart_account",
        "cml_license_virtual_account",
        "last_error",
    }
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(Document):
    username = StringField(required=True, unique=True, max_length=64)
    password_hash = StringField(required=True)
    role = StringField(required=True, choices=ROLES)
    created_at = DateTimeField(default=utcnow)

    meta = {"collection": "users"}


class Worker(Document):
    """One EC2 instance running a CML controller; fields are prefixed by source."""

    # identity
    name = StringField(required=True, max_length=128)
    region = StringField(required=True)
    aws_instance_id = StringField(unique=True, sparse=True)
    instance_type = StringField()
    ami_id = StringField()
    ami_name = StringField()
    aws_tags = DictField()
    status = StringField(required=True, choices=WORKER_STATUSES, default="pending")
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)
    terminated_at = DateTimeField()

    # network
    public_ip = StringField()
    private_ip = StringField()
    https_endpoint = StringField()

    # EC2
    ec2_state = StringField()
    ec2_instance_status = StringField()
    ec2_system_status = StringField()
    ec2_detailed_monitoring = StringField(choices=MONITORING_STATES)
    ec2_launch_time = DateTimeField()
    ec2_checked_at = DateTimeField()

    # CloudWatch
    cloudwatch_cpu_utilization = FloatField()
    cloudwatch_memory_utilization = FloatField()
    cloudwatch_period_seconds = IntField()
    cloudwatch_collected_at = DateTimeField()

    # CML
    cml_service_status = StringField(
        choices=CML_SERVICE_STATUSES, default="unavailable"
    )
    cml_version = StringField()
    cml_ready = BooleanField()
    cml_labs_count = IntField()
    cml_labs_running = IntField()
    cml_nodes_total = IntField()
    cml_nodes_running = IntField()
    cml_allocated_cpus = IntField()
    cml_allocated_memory = IntField()
    cml_cpu_count = IntField()
    cml_cpu_utilization = FloatField()
    cml_memory_total = IntField()
    cml_memory_used = IntField()
    cml_disk_total = IntField()
    cml_disk_used = IntField()
    cml_health_valid = BooleanField()
    cml_is_licensed = BooleanField()
    cml_license_registration = StringField()
    cml_license_authorization = StringField()
    cml_license_product = StringField()
    cml_license_expires = DateTimeField()
    cml_license_smart_account = StringField()
    cml_license_virtual_account = StringField()
    cml_synced_at = DateTimeField()

    last_error = DictField(null=True, default=None)

    meta = {
        "collection": "workers",
        "indexes": ["status", "region", ("region", "status"), "name"],
    }

    @classmethod
    def dict_from_raw(cls, document: dict[str, Any]) -> dict[str, Any]:
        """``to_dict`` of a raw MongoDB document, without building the Document."""
        data: dict[str, Any] = {"id": str(document["_id"])}
        for name, field in cls._fields.items():
            if name == "id":
                continue
            value = document.get(field.db_field, field.default)
            data[name] = value() if callable(value) else value
        data["last_error"] = data.get("last_error") or None
        return data

    def to_dict(self) -> dict[str, Any]:
        """Every worker field of the contract, admin-only ones included."""
        data: dict[str, Any] = {"id": str(self.pk)}
        for name in self._fields:
            if name == "id":
                continue
            data[name] = getattr(self, name)
        data["last_error"] = self.last_error or None
        return data


class Lab(Document):
    worker_id = StringField(required=True)
    lab_id = StringField(required=True)
    title = StringField()
    description = StringField()
    state = StringField(choices=LAB_STATES)
    owner_username = StringField()
    node_count = IntField()
    link_count = IntField()
    created = DateTimeField()
    modified = DateTimeField()
    synced_at = DateTimeField()

    meta = {
        "collection": "labs",
        "indexes": [{"fields": ["worker_id", "lab_id"], "unique": True}],
    }

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields if name != "id"}


class AuditEntry(Document):
    """Who did what, when, and how it ended: sign-ins and admin actions."""

    at = DateTimeField(default=utcnow, required=True)
    actor = StringField()
    action = StringField(required=True)
    target = StringField()
    outcome = StringField(required=True, choices=("ok", "failed", "denied", "accepted"))
    detail = StringField()
    client_address = StringField()

    meta = {"collection": "audit", "indexes": ["-at", "actor", "action"]}


def audit(
    action: str,
    outcome: str,
    *,
    actor: str | None = None,
    target: str | None = None,
    detail: str | None = None,
    client_address: str | None = None,
) -> AuditEntry:
    """Append one entry to the audit trail."""
    return AuditEntry(
        actor=actor,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail,
        client_address=client_address,
    ).save()
