"""The JSON bodies a controller answers, shaped like recorded CML responses.

Shapes follow the recorded 2.9.1 answers and change with the controller's
reported version the way real releases do: 2.7 lacks ``allow_ssh_pubkey_auth``,
``oui``, ``owner_fullname``, ``effective_permissions`` and ``docker_shim``;
2.9.0 and older report integer byte counts and no ``hyperthreading``; 2.10 adds
``timeout`` and ``features``, lab ``autostart`` and ``node_staging``, the health
overload flags, and drops lab ``groups``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.simulator.controller import ComputeLoad, Controller, Lab, Node, User

ALL_PERMISSIONS = ["lab_exec", "lab_view", "lab_edit", "lab_admin"]
SSMS_URL = "https://smartreceiver.cisco.com/licservice/license"


def timestamp(moment: datetime) -> str:
    """ISO-8601 with offset, seconds precision, as CML writes lab and user times."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def licensing_time(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` without a zone, as CML writes licensing times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def system_information(controller: Controller) -> dict[str, Any]:
    version = controller.parsed_version
    body: dict[str, Any] = {"version": controller.version, "ready": controller.ready}
    if version >= (2, 8, 0):
        body["allow_ssh_pubkey_auth"] = False
        body["oui"] = "52:54:00:00:00:00"
    if version >= (2, 10, 0):
        body["timeout"] = 10
        body["features"] = []
    return body


def system_health(controller: Controller) -> dict[str, Any]:
    version = controller.parsed_version
    computes = {}
    for index, compute in enumerate(controller.computes):
        broken = not controller.healthy and index == 0
        health: dict[str, Any] = {
            "kvm_vmx_enabled": True,
            "enough_cpus": True,
            "lld_connected": True,
            "lld_synced": True,
            "libvirt": not broken,
            "fabric": True,
            "device_mux": True,
            "refplat_images_available": True,
        }
        if version >= (2, 8, 0):
            health["docker_shim"] = True
        health["valid"] = not broken
        health["admission_state"] = "READY" if controller.ready else "ONLINE"
        health["is_controller"] = compute.is_controller
        health["hostname"] = compute.hostname
        if version >= (2, 10, 0):
            health.update(
                cpu_overload=False, memory_overload=False, disk_overload=False
            )
        computes[compute.id] = health

    core: dict[str, Any] = {
        "core_connected": True,
        "nodes_loaded": True,
        "images_loaded": True,
        "valid": True,
    }
    if version >= (2, 10, 0):
        core.update(airhandler=True, dispatcher=True, ipsnooper=True, pcapdemux=True)

    return {
        "valid": controller.healthy,
        "computes": computes,
        "is_licensed": controller.licensed,
        "is_enterprise": True,
        "controller": core,
    }


def system_stats(controller: Controller) -> dict[str, Any]:
    version = controller.parsed_version
    number = float if version >= (2, 9, 1) else int
    loads = controller.compute_loads()

    def usage(used: int, total: int) -> dict[str, Any]:
        return {
            "used": number(used),
            "free": number(total - used),
            "total": number(total),
        }

    computes = {}
    for load in loads:
        compute = load.compute
        cpu: dict[str, Any] = {
            "count": compute.cpu_count,
            "percent": load.cpu_percent,
            "model": compute.cpu_model,
        }
        if version >= (2, 9, 1):
            cpu["hyperthreading"] = False
        cpu["predicted"] = load.predicted_cpus
        cpu["load"] = list(load.load)
        computes[compute.id] = {
            "hostname": compute.hostname,
            "is_controller": compute.is_controller,
            "stats": {
                "cpu": cpu,
                "memory": usage(load.memory_used, compute.memory_total),
                "disk": usage(load.disk_used, compute.disk_total),
                "dominfo": _dominfo(load),
            },
        }

    cpu_count = sum(load.compute.cpu_count for load in loads)
    percent = sum(load.cpu_percent * load.compute.cpu_count for load in loads)
    controller_load = next(load for load in loads if load.compute.is_controller)
    return {
        "computes": computes,
        "all": {
            "cpu": {"count": cpu_count, "percent": percent / cpu_count},
            "memory": usage(
                sum(load.memory_used for load in loads),
                sum(load.compute.memory_total for load in loads),
            ),
            "disk": usage(
                sum(load.disk_used for load in loads),
                sum(load.compute.disk_total for load in loads),
            ),
        },
        "controller": {
            "disk": usage(controller_load.disk_used, controller_load.compute.disk_total)
        },
    }


def _dominfo(load: ComputeLoad) -> dict[str, Any]:
    return {
        "total_nodes": load.total_nodes,
        "total_orphans": 0,
        "running_nodes": load.running_nodes,
        "running_orphans": 0,
        "allocated_cpus": load.allocated_cpus,
        "allocated_memory": load.allocated_memory_kib,
    }


def licensing(controller: Controller) -> dict[str, Any]:
    """Licensing status; dates move with the calendar day so they stay current."""
    rng = random.Random(f"cml-simulator/{controller.id}/licensing")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    registered = today - timedelta(days=rng.randint(30, 600), hours=rng.randint(0, 23))
    renewed = today - timedelta(days=rng.randint(1, 29), hours=rng.randint(0, 23))
    registration_expires = today + timedelta(days=rng.randint(60, 360), hours=17)
    authorization_expires = renewed + timedelta(days=90)
    smart_account = rng.choice(("Acme Labs", "Globex Training", "Initech Networks"))
    virtual_account = rng.choice(("Lab Fleet", "Training", "Default"))

    if controller.licensed:
        registration: dict[str, Any] = {
            "status": "COMPLETED",
            "smart_account": smart_account,
            "virtual_account": virtual_account,
            "expires": licensing_time(registration_expires),
            "register_time": _time_info(registered, None, "OK", "SUCCESS"),
            "renew_time": _time_info(renewed, renewed + timedelta(days=180)),
        }
        authorization: dict[str, Any] = {
            "status": "IN_COMPLIANCE",
            "expires": licensing_time(authorization_expires),
            "renew_time": _time_info(
                renewed, renewed + timedelta(days=30), status="SUCCEEDED"
            ),
        }
    else:
        registration = {
            "status": "NOT_REGISTERED",
            "smart_account": None,
            "virtual_account": None,
            "expires": None,
            "register_time": _empty_time_info(),
            "renew_time": _empty_time_info(),
        }
        authorization = {
            "status": "EVAL",
            "expires": None,
            "renew_time": _empty_time_info(),
        }

    node_count = sum(len(lab.nodes) for lab in controller.labs)
    return {
        "registration": registration,
        "authorization": authorization,
        "features": [
            {
                "id": "regid.2019-10.com.cisco.CML_ENT_BASE,1.0_"
                "15d3393c-846c-4e00-a54e-1ea90f2b2160",
                "name": "CML - Enterprise License",
                "description": "Cisco Modeling Labs - Enterprise License with 20 "
                "nodes capacity included",
                "in_use": 1,
                "status": "IN_COMPLIANCE" if controller.licensed else "INIT",
                "version": "1.0",
                "min": 0,
                "max": 1,
                "minEndDate": None,
                "maxEndDate": None,
            },
            {
                "id": "regid.2019-10.com.cisco.CML_NODE_COUNT,1.0_"
                "2607650b-6ca8-46d5-81e5-e6688b7383c4",
                "name": "CML - Expansion Nodes",
                "description": "Cisco Modeling Labs - Expansion Nodes",
                "in_use": max(0, node_count - 20),
                "status": "IN_COMPLIANCE" if controller.licensed else "INIT",
                "version": "1.0",
                "min": 0,
                "max": 300,
                "minEndDate": None,
                "maxEndDate": None,
            },
        ],
        "reservation_mode": False,
        "transport": {
            "default_ssms": SSMS_URL,
            "ssms": SSMS_URL,
            "proxy": {"server": None, "port": None},
        },
        "udi": {"hostname": "cml-controller", "product_uuid": controller.product_uuid},
        "product_license": {"active": "CML_Enterprise", "is_enterprise": True},
    }


def _time_info(
    attempted: datetime,
    scheduled: datetime | None,
    failure: str | None = None,
    success: str = "SUCCESS",
    status: str | None = None,
) -> dict[str, Any]:
    return {
        "succeeded": None,
        "attempted": licensing_time(attempted),
        "scheduled": None if scheduled is None else licensing_time(scheduled),
        "status": status,
        "failure": failure,
        "success": success,
    }


def _empty_time_info() -> dict[str, Any]:
    return dict.fromkeys(
        ("succeeded", "attempted", "scheduled", "status", "failure", "success")
    )


def lab_detail(controller: Controller, lab: Lab) -> dict[str, Any]:
    version = controller.parsed_version
    body: dict[str, Any] = {
        "id": lab.id,
        "created": timestamp(lab.created),
        "modified": timestamp(lab.modified),
        "lab_description": lab.description,
        "lab_notes": "",
        "lab_title": lab.title,
        "owner": lab.owner.id,
        "owner_username": lab.owner.username,
    }
    if version >= (2, 8, 0):
        body["owner_fullname"] = lab.owner.fullname
    body["state"] = lab.state
    body["node_count"] = len(lab.nodes)
    body["link_count"] = len(lab.links)
    if version < (2, 10, 0):
        body["groups"] = []
    if version >= (2, 8, 0):
        body["effective_permissions"] = list(ALL_PERMISSIONS)
    if version >= (2, 10, 0):
        body["autostart"] = {"enabled": False, "priority": None, "delay": None}
        body["node_staging"] = {
            "enabled": False,
            "start_remaining": True,
            "abort_on_failure": False,
        }
    return body


def topology(
    controller: Controller, lab: Lab, exclude_configurations: bool = False
) -> dict[str, Any]:
    """The topology document ``virl2-client`` imports; node keys suit PCL 2.8+."""
    version = controller.parsed_version
    if version >= (2, 10, 0):
        schema = "0.3.1"
    elif version >= (2, 8, 0):
        schema = "0.3.0"
    else:
        schema = "0.2.2"

    return {
        "lab": {
            "version": schema,
            "title": lab.title,
            "description": lab.description,
            "notes": "",
            "owner": lab.owner.id,
        },
        "nodes": [_topology_node(node, exclude_configurations) for node in lab.nodes],
        "links": [
            {
                "id": link.id,
                "interface_a": link.interface_a.id,
                "interface_b": link.interface_b.id,
                "node_a": link.interface_a.node_id,
                "node_b": link.interface_b.node_id,
                "label": link.label,
            }
            for link in lab.links
        ],
        "annotations": [],
        "smart_annotations": [],
    }


def _topology_node(node: Node, exclude_configurations: bool) -> dict[str, Any]:
    kind = node.kind
    configuration: list[dict[str, str]] = []
    if node.is_vm and not exclude_configurations:
        configuration = [{"name": "day0", "content": f"hostname {node.label}\n"}]

    return {
        "id": node.id,
        "label": node.label,
        "node_definition": kind.definition,
        "image_definition": kind.image,
        "configuration": configuration,
        "x": node.x,
        "y": node.y,
        "ram": kind.ram_mib or None,
        "cpus": kind.cpus or None,
        "cpu_limit": 100 if node.is_vm else None,
        "data_volume": None,
        "boot_disk_size": None,
        "hide_links": False,
        "tags": [],
        "parameters": {},
        "interfaces": [
            {
                "id": interface.id,
                "node": node.id,
                "label": interface.label,
                "slot": interface.slot,
                "type": "physical",
                "mac_address": interface.mac_address,
            }
            for interface in node.interfaces
        ],
    }


def node_detail(lab: Lab, node: Node, operational: bool) -> dict[str, Any]:
    body = _topology_node(node, exclude_configurations=True)
    del body["interfaces"]
    running = node.state == "BOOTED"
    body.update(
        lab_id=lab.id,
        state=node.state,
        boot_progress="Booted" if running else "Not running",
        compute_id=node.compute_id if running else None,
        pinned_compute_id=None,
        resource_pool=None,
        iol_app_id=None,
        vnc_key=None,
        serial_consoles=[],
    )
    if operational:
        body["operational"] = {
            "boot_disk_size": None,
            "cpu_limit": body["cpu_limit"],
            "cpus": body["cpus"],
            "data_volume": None,
            "ram": body["ram"],
            "compute_id": body["compute_id"],
            "image_definition": body["image_definition"],
            "vnc_key": None,
            "resource_pool": None,
            "iol_app_id": None,
            "serial_consoles": [],
        }
    return body


def lab_element_state(lab: Lab) -> dict[str, Any]:
    return {
        "nodes": {node.id: node.state for node in lab.nodes},
        "links": {link.id: lab.state for link in lab.links},
        "interfaces": {
            interface.id: lab.state
            for node in lab.nodes
            for interface in node.interfaces
        },
    }


def simulation_stats(lab: Lab) -> dict[str, Any]:
    running = lab.state == "STARTED"
    return {
        "nodes": {
            node.id: {
                "cpu_usage": 3.5 if running and node.is_vm else 0.0,
                "ram_usage": node.kind.ram_mib * 0.8 if running else 0,
                "disk_usage": 0,
                "block0_rd_bytes": 0,
                "block0_wr_bytes": 0,
                "cpu_limit": 100,
                "cpus": node.kind.cpus,
                "ram": node.kind.ram_mib,
                "is_running": running and node.is_vm,
            }
            for node in lab.nodes
        },
        "links": {
            link.id: {
                "readbytes": 0,
                "readpackets": 0,
                "writebytes": 0,
                "writepackets": 0,
                "drops": 0,
            }
            for link in lab.links
        },
    }


def users(controller: Controller) -> list[dict[str, Any]]:
    return [user_detail(controller, user) for user in controller.users]


def user_detail(controller: Controller, user: User) -> dict[str, Any]:
    opt_in: bool | str = True
    if controller.parsed_version >= (2, 10, 0):
        opt_in = "accepted"

    return {
        "username": user.username,
        "fullname": user.fullname,
        "description": "",
        "email": None,
        "admin": user.admin,
        "groups": [],
        "associations": [],
        "resource_pool": None,
        "opt_in": opt_in,
        "tour_version": "2.6.0+build.5",
        "id": user.id,
        "created": timestamp(user.created),
        "modified": timestamp(user.created),
        "directory_dn": None,
        "labs": [lab.id for lab in controller.labs if lab.owner is user],
        "pubkey_info": "",
    }


def authentication_info(user: User, token: str) -> dict[str, Any]:
    """What ``GET /authentication`` (2.10) and ``POST /auth_extended`` answer."""
    return {
        "username": user.username,
        "id": user.id,
        "token": token,
        "admin": user.admin,
        "error": None,
    }
