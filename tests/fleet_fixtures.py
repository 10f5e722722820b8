"""A fleet to refresh: moto instances tagged as workers, CML simulated over HTTP."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from backend import jobs
from backend.refresh import Context
from backend.simulator import start_simulator

TAG_KEY, TAG_VALUE = "cmlfleet:managed", "true"


@dataclass
class Fleet:
    ctx: Context
    simulator: Any
    ec2: Any
    cloudwatch: Any
    image_id: str

    def launch(
        self,
        name: str,
        *,
        count: int = 1,
        region: str = "us-east-1",
        tagged: bool = True,
    ) -> list[str]:
        tags = [{"Key": "Name", "Value": name}]
        if tagged:
            tags.append({"Key": TAG_KEY, "Value": TAG_VALUE})
        reservation = self.ec2.run_instances(
            ImageId=self.image_id,
            MinCount=count,
            MaxCount=count,
            InstanceType="c5.2xlarge",
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        return [i["InstanceId"] for i in reservation["Instances"]]

    def seed_metrics(self, instance_id: str, cpu: float, memory: float | None) -> None:
        now = datetime.now(UTC) - timedelta(minutes=1)
        self.cloudwatch.put_metric_data(
            Namespace="AWS/EC2",
            MetricData=[
                {
                    "MetricName": "CPUUtilization",
                    "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                    "Timestamp": now,
                    "Value": cpu,
                    "Unit": "Percent",
                }
            ],
        )
        if memory is not None:
            self.cloudwatch.put_metric_data(
                Namespace="CWAgent",
                MetricData=[
                    {
                        "MetricName": "mem_used_percent",
                        "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                        "Timestamp": now,
                        "Value": memory,
                        "Unit": "Percent",
                    }
                ],
            )


@pytest.fixture
def simulator():
    server = start_simulator(use_tls=False, drift=0.0, outage_hold=2.0)
    yield server
    server.stop()


@pytest.fixture
def fleet(app, simulator, redis_client):
    """The app's settings pointed at the simulator, a context, moto clients."""
    settings = replace(
        app.extensions["cmlfleet.settings"],
        cml_endpoint=simulator.url + "/{instance_id}",
        cml_connect_timeout=1.0,
        cml_read_timeout=1.5,
    )
    app.extensions["cmlfleet.settings"] = settings
    ctx = jobs.build_context(settings, redis_client)
    jobs.configure(ctx)
    ec2 = boto3.client("ec2", region_name="us-east-1")
    image_id = ec2.describe_images(Filters=[{"Name": "name", "Values": ["CML-2.9*"]}])[
        "Images"
    ][0]["ImageId"]
    yield Fleet(ctx, simulator, ec2, boto3.client("cloudwatch", "us-east-1"), image_id)
    jobs.configure(None)
    for client in ctx.cml_clients.values():
        client.close()


def published(redis_client, since: str = "-") -> list[dict[str, Any]]:
    from backend.events import STREAM, decode_entry

    return [decode_entry(i, f) for i, f in redis_client.xrange(STREAM, min=since)]
