"""API calls and time of one region read: ours next to the per-instance pattern.

The per-instance pattern, common in fleet tools, reads each instance on its own:
DescribeInstances by id, DescribeInstanceStatus by id, and GetMetricStatistics
for CPU and for memory, 4 calls an instance. ``backend.aws.read_region`` reads
the same facts for the whole region in batches.

Both run against moto in process, in the same run, on the same seeded region.
Times are therefore moto's cost of answering, without network; on AWS every
call is also a round trip and counts against the account's request rate.

    .venv/bin/python bench/aws_calls.py
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        # Thousands of public AMIs would make every moto RunInstances slow.
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }
)
for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(name, None)

import boto3  # noqa: E402 - the environment above must be set first
from moto import mock_aws  # noqa: E402

from backend.aws import (  # noqa: E402
    CPU_METRIC,
    MEMORY_METRIC,
    AWSClients,
    latest_datapoint,
    read_region,
)

REGION = "us-east-1"
TAG_KEY, TAG_VALUE = "cmlfleet:managed", "true"
SIZES = (10, 100, 1000)
LAUNCH_BATCH = 100


@dataclass
class Measured:
    calls: int
    seconds: float
    cpu: dict[str, float | None]


def counted_session(counter: Counter[str]) -> boto3.Session:
    session = boto3.Session(region_name=REGION)

    def count(model: Any, **_: Any) -> None:
        counter[model.name] += 1

    session.events.register("before-call", count)
    return session


def seed_region(clients: AWSClients, size: int) -> list[str]:
    """``size`` tagged workers, CPU for all, memory for every other one."""
    ec2, cloudwatch = clients.ec2(REGION), clients.cloudwatch(REGION)
    ami_id = ec2.register_image(Name="CML-2.9.0", RootDeviceName="/dev/sda1")["ImageId"]
    tags = [{"Key": TAG_KEY, "Value": TAG_VALUE}]
    ids: list[str] = []
    for start in range(0, size, LAUNCH_BATCH):
        count = min(LAUNCH_BATCH, size - start)
        response = ec2.run_instances(
            ImageId=ami_id,
            MinCount=count,
            MaxCount=count,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
        ids.extend(instance["InstanceId"] for instance in response["Instances"])

    stamp = datetime.now(UTC) - timedelta(minutes=2)
    for index, instance_id in enumerate(ids):
        metrics = [CPU_METRIC, MEMORY_METRIC] if index % 2 == 0 else [CPU_METRIC]
        for namespace, name in metrics:
            cloudwatch.put_metric_data(
                Namespace=namespace,
                MetricData=[
                    {
                        "MetricName": name,
                        "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                        "Timestamp": stamp,
                        "Value": float(index % 97),
                        "Unit": "Percent",
                    }
                ],
            )
    return ids


def read_ours(clients: AWSClients, ids: list[str]) -> dict[str, float | None]:
    snapshot = read_region(REGION, f"{TAG_KEY}={TAG_VALUE}", clients=clients)
    return {r.aws_instance_id: r.cloudwatch_cpu_utilization for r in snapshot.instances}


def _statistic(cloudwatch: Any, metric: tuple[str, str], instance_id: str) -> Any:
    namespace, name = metric
    now = datetime.now(UTC)
    response = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": "InstanceId", "Value": instance_id}],
        StartTime=now - timedelta(minutes=25),
        EndTime=now,
        Period=300,
        Statistics=["Average"],
    )
    points = response["Datapoints"]
    return latest_datapoint(
        [p["Timestamp"] for p in points], [p["Average"] for p in points]
    )


def read_per_instance(clients: AWSClients, ids: list[str]) -> dict[str, float | None]:
    ec2, cloudwatch = clients.ec2(REGION), clients.cloudwatch(REGION)
    cpu: dict[str, float | None] = {}
    for instance_id in ids:
        ec2.describe_instances(InstanceIds=[instance_id])
        ec2.describe_instance_status(
            InstanceIds=[instance_id], IncludeAllInstances=True
        )
        latest_cpu = _statistic(cloudwatch, CPU_METRIC, instance_id)
        _statistic(cloudwatch, MEMORY_METRIC, instance_id)
        cpu[instance_id] = latest_cpu[1] if latest_cpu else None
    return cpu


def measure(
    read: Callable[[AWSClients, list[str]], dict[str, float | None]],
    clients: AWSClients,
    counter: Counter[str],
    ids: list[str],
) -> Measured:
    counter.clear()
    started = time.perf_counter()
    cpu = read(clients, ids)
    seconds = time.perf_counter() - started
    return Measured(calls=sum(counter.values()), seconds=seconds, cpu=cpu)


def bench(size: int) -> tuple[Measured, Measured]:
    with mock_aws():
        counter: Counter[str] = Counter()
        clients = AWSClients(session=counted_session(counter))
        ids = seed_region(clients, size)
        ours = measure(read_ours, clients, counter, ids)
        theirs = measure(read_per_instance, clients, counter, ids)

    if ours.cpu != theirs.cpu:
        raise SystemExit(f"{size} instances: the two reads disagree on CPU")
    return ours, theirs


def main() -> None:
    header = (
        f"{'instances':>9}  {'ours calls':>10}  {'ours s':>8}  "
        f"{'per-instance calls':>18}  {'per-instance s':>14}  "
        f"{'calls ratio':>11}  {'time ratio':>10}"
    )
    print("One region read, moto in process (times without network)")
    print(header)
    print("-" * len(header))
    for size in SIZES:
        ours, theirs = bench(size)
        print(
            f"{size:>9}  {ours.calls:>10}  {ours.seconds:>8.2f}  "
            f"{theirs.calls:>18}  {theirs.seconds:>14.2f}  "
            f"{theirs.calls / ours.calls:>10.0f}x  "
            f"{theirs.seconds / ours.seconds:>9.1f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
