"""moto as a stand-in for AWS: a small catalogue of CML images, and the two
detailed-monitoring calls moto does not implement.

Used by the embedded demo and the tests; production talks to AWS itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

IMAGES = Path(__file__).with_name("demo_amis.json")


def use_cml_images() -> None:
    """Point moto at our image catalogue; call before moto is first imported."""
    os.environ.setdefault("MOTO_AMIS_PATH", str(IMAGES))
    # AWS refuses an image id it does not know; moto only does when asked to.
    os.environ.setdefault("MOTO_ENABLE_AMI_VALIDATION", "true")


def _set_monitoring(response: Any, enabled: bool) -> Any:
    from moto.core.responses import ActionResult

    instance_ids = response._get_param("InstanceIds", [])
    response.error_on_dryrun()
    results = []
    for instance_id in instance_ids:
        instance = response.ec2_backend.get_instance(instance_id)
        instance.monitoring_state = "enabled" if enabled else "disabled"
        # AWS answers with the transition; a later describe shows where it ended.
        results.append(
            {
                "InstanceId": instance_id,
                "Monitoring": {"State": "pending" if enabled else "disabling"},
            }
        )
    return ActionResult({"InstanceMonitorings": results})


def add_monitoring_calls() -> None:
    """Teach moto MonitorInstances and UnmonitorInstances."""
    from moto.ec2.responses.monitoring import Monitoring

    Monitoring.monitor_instances = lambda self: _set_monitoring(self, True)  # type: ignore[method-assign]
    Monitoring.unmonitor_instances = lambda self: _set_monitoring(self, False)  # type: ignore[method-assign]
