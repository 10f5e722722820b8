"""AWS emulated by moto, in process: a fixture, call counting, seeding helpers.

Import ``aws_fixture`` into a test module (or a conftest) to get the ``aws``
fixture; the helpers are plain functions. Nothing here reaches AWS: the
credentials are dummies and moto answers every call (the root conftest teaches
it MonitorInstances and UnmonitorInstances).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import boto3
import botocore.loaders
import botocore.session
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends

from backend.aws import INSTANCES_PER_PAGE, AWSClients

REGION = "us-east-1"
WORKER_TAG = "cmlfleet:managed=true"
TAG_KEY, TAG_VALUE = WORKER_TAG.split("=")

AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    # Without a catalogue (MOTO_AMIS_PATH) moto loads thousands of public AMIs
    # per region and every RunInstances looks its image up among them.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}
UNSET_ENVIRONMENT = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ROLE_ARN")


@contextmanager
def aws_environment() -> Iterator[None]:
    """Dummy credentials and no profile or endpoint from the developer's machine."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENVIRONMENT.items():
            patch.setenv(name, value)
        for name in UNSET_ENVIRONMENT:
            patch.delenv(name, raising=False)
        yield


@contextmanager
def emulated_aws() -> Iterator[None]:
    """moto for every AWS call made inside, with dummy credentials."""
    with aws_environment(), mock_aws():
        yield


class CallCounter:
    """Counts API calls per operation (not attempts: retries are one call)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def attach(self, session: boto3.Session) -> None:
        session.events.register("before-call", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()


def fail_operation(client: Any, operation: str, code: str, message: str) -> None:
    """Make every ``operation`` call of ``client`` fail with the AWS error ``code``."""

    def answer(**_: Any) -> Any:
        error = {"Code": code, "Message": message}
        return SimpleNamespace(status_code=400, headers={}), {"Error": error}

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-call.{service}.{operation}", answer)


@dataclass
class EmulatedAWS:
    """A session wired for tests, the factory built on it, and its call counter."""

    session: boto3.Session
    clients: AWSClients
    counter: CallCounter

    def ec2(self, region: str = REGION) -> Any:
        return self.clients.ec2(region)

    def cloudwatch(self, region: str = REGION) -> Any:
        return self.clients.cloudwatch(region)


# Parsing the EC2 service description takes about a second; sessions that share
# one loader parse it once per test run instead of once per test.
_LOADER = botocore.loaders.create_loader()


def emulated_clients(max_attempts: int = 3) -> EmulatedAWS:
    """A client factory, on a fresh session, whose calls are counted."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _LOADER)
    session = boto3.Session(botocore_session=core, region_name=REGION)
    counter = CallCounter()
    counter.attach(session)
    clients = AWSClients(session=session, max_attempts=max_attempts)
    return EmulatedAWS(session=session, clients=clients, counter=counter)


@pytest.fixture(name="aws")
def aws_fixture() -> Iterator[EmulatedAWS]:
    """moto for the test, and a counted client factory to pass as ``clients=``."""
    with emulated_aws():
        yield emulated_clients()


def register_ami(
    ec2: Any, name: str, *, created: datetime | None = None, region: str = REGION
) -> str:
    """Register an AMI named ``name``; ``created`` back-dates its CreationDate.

    The API has no way to set a creation date and moto stamps the registration
    time, so back-dating goes through moto's model of the image.
    """
    ami_id: str = ec2.register_image(Name=name, RootDeviceName="/dev/sda1")["ImageId"]
    if created is not None:
        backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
        backend.amis[ami_id].creation_date = created
    return ami_id


def run_instances(
    ec2: Any,
    ami_id: str,
    count: int,
    *,
    tags: dict[str, str] | None = None,
    detailed_monitoring: bool = False,
    one_per_reservation: bool = False,
) -> list[str]:
    """Launch ``count`` instances in one reservation, or one each; return their ids."""
    tags = {TAG_KEY: TAG_VALUE} if tags is None else tags
    params: dict[str, Any] = {
        "ImageId": ami_id,
        "InstanceType": "c5.2xlarge",
        "Monitoring": {"Enabled": detailed_monitoring},
    }
    if tags:
        tag_list = [{"Key": key, "Value": value} for key, value in tags.items()]
        params["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tag_list}]

    batches = [1] * count if one_per_reservation else [count]
    ids: list[str] = []
    for size in batches:
        response = ec2.run_instances(MinCount=size, MaxCount=size, **params)
        ids.extend(instance["InstanceId"] for instance in response["Instances"])
    return ids


def put_datapoints(
    cloudwatch: Any,
    instance_id: str,
    metric: tuple[str, str],
    points: Sequence[tuple[datetime, float]],
) -> None:
    """Publish (timestamp, value) datapoints of one metric for one instance."""
    namespace, name = metric
    dimensions = [{"Name": "InstanceId", "Value": instance_id}]
    cloudwatch.put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": dimensions,
                "Timestamp": timestamp,
                "Value": value,
                "Unit": "Percent",
            }
            for timestamp, value in points
        ],
    )


def run_fleet(ec2: Any, ami_id: str, count: int) -> list[str]:
    """Launch ``count`` worker instances that moto pages the way AWS does.

    AWS pages DescribeInstances by instance, moto by reservation. Giving each
    instance of the full pages its own reservation, and the last page one
    reservation of its own, yields the same pages as AWS at a fraction of the
    time one reservation per instance would take.
    """
    before_last_page = (count - 1) // INSTANCES_PER_PAGE * INSTANCES_PER_PAGE
    ids = run_instances(ec2, ami_id, before_last_page, one_per_reservation=True)
    return ids + run_instances(ec2, ami_id, count - before_last_page)
