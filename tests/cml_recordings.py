"""Response bodies recorded from real CML controllers, as the API reference quotes
them, for the parse functions of ``backend.cml``.
"""

from __future__ import annotations

import copy
from typing import Any

SYSTEM_INFORMATION_2_9_1 = {
    "version": "2.9.1+build.7",
    "ready": True,
    "allow_ssh_pubkey_auth": False,
    "oui": "52:54:00:00:00:00",
}
SYSTEM_INFORMATION_2_4 = {"version": "2.4.1", "ready": True}

SYSTEM_HEALTH_2_9_1 = {
    "valid": True,
    "computes": {
        "17e91b4e-865a-4627-a6bb-50e3dfa988ab": {
            "kvm_vmx_enabled": True,
            "enough_cpus": True,
            "lld_connected": True,
            "lld_synced": True,
            "libvirt": True,
            "fabric": True,
            "device_mux": True,
            "refplat_images_available": True,
            "docker_shim": True,
            "valid": True,
            "admission_state": "READY",
            "is_controller": True,
            "hostname": "cml-controller",
        }
    },
    "is_licensed": True,
    "is_enterprise": True,
    "controller": {
        "core_connected": True,
        "nodes_loaded": True,
        "images_loaded": True,
        "valid": True,
    },
}

SYSTEM_STATS_2_9_1 = {
    "computes": {
        "17e91b4e-865a-4627-a6bb-50e3dfa988ab": {
            "hostname": "cml-controller",
            "is_controller": True,
            "stats": {
                "cpu": {
                    "count": 6,
                    "percent": 4.166666666666667,
                    "model": "Intel(R) Core(TM) i7-5960X CPU @ 3.00GHz",
                    "hyperthreading": False,
                    "predicted": 43,
                    "load": [0.1875, 0.21728515625, 0.18359375],
                },
                "memory": {
                    "used": 2791538688.0,
                    "free": 13624754176.0,
                    "total": 16748994560.0,
                },
                "disk": {
                    "used": 82798108672.0,
                    "free": 37041123328.0,
                    "total": 119839232000.0,
                },
                "dominfo": {
                    "total_nodes": 182,
                    "total_orphans": 50,
                    "running_nodes": 8,
                    "running_orphans": 0,
                    "allocated_cpus": 7,
                    "allocated_memory": 6291456,
                },
            },
        }
    },
    "all": {
        "cpu": {"count": 6, "percent": 4.166666666666667},
        "memory": {
            "used": 2791538688.0,
            "free": 13624754176.0,
            "total": 16748994560.0,
        },
        "disk": {
            "used": 82798108672.0,
            "free": 37041123328.0,
            "total": 119839232000.0,
        },
    },
    "controller": {
        "disk": {
            "used": 77848326144.0,
            "free": 37041123328.0,
            "total": 119839232000.0,
        }
    },
}


def system_stats_2_9_0() -> dict[str, Any]:
    """The 2.9.0+build.3 capture: the same shape, integers, no hyperthreading."""
    body = copy.deepcopy(SYSTEM_STATS_2_9_1)
    for compute in body["computes"].values():
        stats = compute["stats"]
        del stats["cpu"]["hyperthreading"]
        for part in ("memory", "disk"):
            stats[part] = {key: int(value) for key, value in stats[part].items()}
    return body


LICENSING_2_9_1 = {
    "registration": {
        "status": "COMPLETED",
        "smart_account": "Cisco Demo Internal Smart Account",
        "virtual_account": "Joe Clarke - Lic Test",
        "expires": "2026-08-20 17:25:30",
        "register_time": {
            "succeeded": None,
            "attempted": "2023-08-11 19:33:12",
            "scheduled": None,
            "status": None,
            "failure": "OK",
            "success": "SUCCESS",
        },
        "renew_time": {
            "succeeded": None,
            "attempted": "2025-08-20 17:30:32",
            "scheduled": "2026-02-16 17:30:31",
            "status": None,
            "failure": None,
            "success": "SUCCESS",
        },
    },
    "authorization": {
        "status": "IN_COMPLIANCE",
        "expires": "2026-02-20 15:13:31",
        "renew_time": {
            "succeeded": None,
            "attempted": "2025-11-22 15:18:33",
            "scheduled": "2025-12-22 15:18:32",
            "status": "SUCCEEDED",
            "failure": None,
            "success": "SUCCESS",
        },
    },
    "features": [
        {
            "id": "regid.2019-10.com.cisco.CML_ENT_BASE,1.0_"
            "15d3393c-846c-4e00-a54e-1ea90f2b2160",
            "name": "CML - Enterprise License",
            "description": "Cisco Modeling Labs - Enterprise License with 20 "
            "nodes capacity included",
            "in_use": 1,
            "status": "IN_COMPLIANCE",
            "version": "1.0",
            "min": 0,
            "max": 1,
            "minEndDate": None,
            "maxEndDate": None,
        }
    ],
    "reservation_mode": False,
    "transport": {
        "default_ssms": "https://smartreceiver.cisco.com/licservice/license",
        "ssms": "https://smartreceiver.cisco.com/licservice/license",
        "proxy": {"server": None, "port": None},
    },
    "udi": {
        "hostname": "cml-controller",
        "product_uuid": "5e0e49e2-689d-4a2d-866e-9ba337fb2e8f",
    },
    "product_license": {"active": "CML_Enterprise", "is_enterprise": True},
}

LAB_2_9_1 = {
    "id": "599d42fa-5609-44f4-8a7d-7115c8cc0618",
    "created": "2022-02-20T21:22:31+00:00",
    "modified": "2022-02-20T21:22:31+00:00",
    "lab_description": "",
    "lab_notes": "",
    "lab_title": "Branch Test",
    "owner": "4cfc3696-4df0-49a3-a0dd-7bbd9271fe67",
    "owner_username": "admin",
    "owner_fullname": "",
    "state": "DEFINED_ON_CORE",
    "node_count": 6,
    "link_count": 5,
    "groups": [],
    "effective_permissions": ["lab_exec", "lab_view", "lab_edit", "lab_admin"],
}

#: The older shape (CML 2.4 era, as 2.7 still answers): no owner_fullname and
#: no effective_permissions.
LAB_OLD = {
    "state": "STOPPED",
    "created": "2022-05-11T20:36:15+00:00",
    "modified": "2022-05-11T21:23:28+00:00",
    "lab_title": "vlandrop",
    "lab_description": "",
    "lab_notes": "",
    "owner": "00000000-0000-4000-a000-000000000000",
    "owner_username": "admin",
    "node_count": 2,
    "link_count": 1,
    "id": "lab1",
    "groups": [],
}
