"""Region reads and lifecycle calls against AWS emulated by moto."""

from __future__ import annotations

import random
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil
from types import SimpleNamespace
from typing import Any

import botocore.endpoint
import pytest
from aws_fixtures import (
    REGION,
    TAG_KEY,
    TAG_VALUE,
    WORKER_TAG,
    EmulatedAWS,
    aws_environment,
    aws_fixture,  # noqa: F401 - registers the ``aws`` fixture
    emulated_aws,
    emulated_clients,
    fail_operation,
    put_datapoints,
    register_ami,
    run_fleet,
    run_instances,
)
from botocore.awsrequest import AWSResponse

from backend.aws import (
    CPU_METRIC,
    MEMORY_METRIC,
    AWSClients,
    RegionSnapshot,
    describe_instances,
    discover_instances,
    find_ami,
    latest_datapoint,
    launch_instance,
    parse_worker_tag,
    read_region,
    set_detailed_monitoring,
    start_instance,
    status_for_ec2_state,
    stop_instance,
    terminate_instance,
)
from backend.errors import AWSError, ConfigError
from backend.models import WORKER_STATUSES

UNKNOWN_INSTANCE = "i-0123456789abcdef0"


def read(aws: EmulatedAWS) -> RegionSnapshot:
    return read_region(REGION, WORKER_TAG, clients=aws.clients)


@pytest.fixture
def ami(aws: EmulatedAWS) -> str:
    return register_ami(aws.ec2(), "CML-2.9.0")


# Status mapping


@pytest.mark.parametrize(
    "state",
    ["pending", "running", "stopping", "stopped", "shutting-down", "terminated"],
)
def test_status_for_ec2_state_keeps_every_ec2_state(state: str) -> None:
    assert status_for_ec2_state(state) == state
    assert state in WORKER_STATUSES


@pytest.mark.parametrize("state", ["", "rebooting", "Running", None])
def test_status_for_ec2_state_is_unknown_for_anything_else(state: str | None) -> None:
    assert status_for_ec2_state(state) == "unknown"


def test_parse_worker_tag_splits_on_the_first_equals_sign() -> None:
    assert parse_worker_tag("cmlfleet:managed=true") == ("cmlfleet:managed", "true")
    assert parse_worker_tag("team=a=b") == ("team", "a=b")


@pytest.mark.parametrize("text", ["", "managed", "=true", "managed="])
def test_parse_worker_tag_names_the_setting_when_malformed(text: str) -> None:
    with pytest.raises(ConfigError, match="WORKER_TAG"):
        parse_worker_tag(text)


# Clients


def test_clients_are_built_once_per_region_with_timeouts_and_retries() -> None:
    with aws_environment():
        clients = AWSClients(
            connect_timeout=2, read_timeout=7, max_attempts=5, max_pool_connections=16
        )
        east = clients.ec2("us-east-1")

        assert clients.ec2("us-east-1") is east
        assert clients.ec2("eu-west-1") is not east
        assert clients.ec2("eu-west-1").meta.region_name == "eu-west-1"
        config = east.meta.config
        assert (config.connect_timeout, config.read_timeout) == (2, 7)
        assert config.retries == {"mode": "standard", "total_max_attempts": 5}
        assert config.max_pool_connections == 16


def test_clients_use_the_endpoint_given() -> None:
    with aws_environment():
        clients = AWSClients(endpoint_url="http://127.0.0.1:5000")

        assert clients.cloudwatch(REGION).meta.endpoint_url == "http://127.0.0.1:5000"


# Region read


def test_read_region_finds_only_instances_with_the_worker_tag(
    aws: EmulatedAWS, ami: str
) -> None:
    ec2 = aws.ec2()
    workers = run_instances(ec2, ami, 3, tags={TAG_KEY: TAG_VALUE, "Name": "cml-a"})
    run_instances(ec2, ami, 2, tags={})
    run_instances(ec2, ami, 1, tags={TAG_KEY: "false"})

    snapshot = read(aws)

    assert sorted(snapshot.by_id) == sorted(workers)
    record = snapshot.by_id[workers[0]]
    assert record.name == "cml-a"
    assert record.aws_tags == {TAG_KEY: TAG_VALUE, "Name": "cml-a"}
    assert (record.region, record.instance_type, record.ami_id) == (
        REGION,
        "c5.2xlarge",
        ami,
    )
    assert (record.status, record.ec2_state) == ("running", "running")
    assert record.ec2_instance_status == "ok"
    assert record.ec2_system_status == "ok"
    assert record.ec2_detailed_monitoring == "disabled"
    assert record.public_ip and record.private_ip and record.public_dns
    assert record.ec2_launch_time is not None
    assert record.ec2_launch_time.tzinfo == UTC
    assert record.ec2_checked_at.tzinfo == UTC
    assert record.ami_name is None


def test_read_region_of_an_empty_region_costs_one_call(aws: EmulatedAWS) -> None:
    snapshot = read(aws)

    assert snapshot.instances == ()
    assert aws.counter.calls == Counter({"DescribeInstances": 1})


def test_read_region_reads_cpu_and_memory_and_tolerates_missing_memory(
    aws: EmulatedAWS, ami: str
) -> None:
    with_agent, without_agent = run_instances(aws.ec2(), ami, 2)
    minute_ago = datetime.now(UTC) - timedelta(minutes=1)
    cloudwatch = aws.cloudwatch()
    put_datapoints(cloudwatch, with_agent, CPU_METRIC, [(minute_ago, 12.5)])
    put_datapoints(cloudwatch, with_agent, MEMORY_METRIC, [(minute_ago, 61.0)])
    put_datapoints(cloudwatch, without_agent, CPU_METRIC, [(minute_ago, 80.0)])

    snapshot = read(aws)

    agent = snapshot.by_id[with_agent]
    assert agent.cloudwatch_cpu_utilization == 12.5
    assert agent.cloudwatch_memory_utilization == 61.0
    bare = snapshot.by_id[without_agent]
    assert bare.cloudwatch_cpu_utilization == 80.0
    assert bare.cloudwatch_memory_utilization is None
    assert bare.cloudwatch_collected_at is not None
    assert snapshot.cloudwatch_error is None


def test_read_region_leaves_metrics_empty_without_datapoints(
    aws: EmulatedAWS, ami: str
) -> None:
    [instance] = run_instances(aws.ec2(), ami, 1)

    record = read(aws).by_id[instance]

    assert record.cloudwatch_cpu_utilization is None
    assert record.cloudwatch_memory_utilization is None
    assert record.cloudwatch_collected_at is None
    assert record.cloudwatch_period_seconds == 300


def test_read_region_reports_the_newest_datapoint(aws: EmulatedAWS, ami: str) -> None:
    [instance] = run_instances(aws.ec2(), ami, 1, detailed_monitoring=True)
    now = datetime.now(UTC)
    newest = now - timedelta(seconds=90)
    points = [
        (now - timedelta(minutes=4), 10.0),
        (newest, 30.0),
        (now - timedelta(minutes=3), 20.0),
    ]
    put_datapoints(aws.cloudwatch(), instance, CPU_METRIC, points)

    record = read(aws).by_id[instance]

    assert record.cloudwatch_cpu_utilization == 30.0
    assert record.cloudwatch_collected_at is not None
    assert newest - timedelta(seconds=60) <= record.cloudwatch_collected_at <= newest
    assert record.cloudwatch_collected_at.tzinfo == UTC


def test_latest_datapoint_does_not_rely_on_the_order_returned() -> None:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    series = [(start + timedelta(minutes=m), float(m)) for m in range(10)]
    random.Random(7).shuffle(series)
    timestamps, values = zip(*series, strict=True)

    assert latest_datapoint(timestamps, values) == (start + timedelta(minutes=9), 9.0)
    assert latest_datapoint([], []) is None


def test_read_region_uses_the_period_of_each_instance_monitoring(
    aws: EmulatedAWS, ami: str
) -> None:
    [basic] = run_instances(aws.ec2(), ami, 1)
    [detailed] = run_instances(aws.ec2(), ami, 1, detailed_monitoring=True)
    now = datetime.now(UTC)
    cloudwatch = aws.cloudwatch()
    put_datapoints(cloudwatch, basic, CPU_METRIC, [(now - timedelta(minutes=7), 42.0)])
    put_datapoints(
        cloudwatch, detailed, CPU_METRIC, [(now - timedelta(minutes=1), 55.0)]
    )

    snapshot = read(aws)

    assert snapshot.by_id[basic].cloudwatch_period_seconds == 300
    assert snapshot.by_id[basic].cloudwatch_cpu_utilization == 42.0
    assert snapshot.by_id[detailed].ec2_detailed_monitoring == "enabled"
    assert snapshot.by_id[detailed].cloudwatch_period_seconds == 60
    assert snapshot.by_id[detailed].cloudwatch_cpu_utilization == 55.0


def test_read_region_keeps_ec2_when_cloudwatch_fails(
    aws: EmulatedAWS, ami: str
) -> None:
    fail_operation(aws.cloudwatch(), "GetMetricData", "AccessDenied", "not allowed")
    [instance] = run_instances(aws.ec2(), ami, 1)

    snapshot = read(aws)

    assert snapshot.cloudwatch_error is not None
    assert snapshot.cloudwatch_error.code == "AccessDenied"
    assert snapshot.by_id[instance].status == "running"
    assert snapshot.by_id[instance].cloudwatch_period_seconds is None


def test_read_region_raises_aws_error_when_ec2_fails(aws: EmulatedAWS) -> None:
    fail_operation(aws.ec2(), "DescribeInstances", "UnauthorizedOperation", "denied")

    with pytest.raises(AWSError) as raised:
        read(aws)

    assert raised.value.code == "UnauthorizedOperation"
    assert raised.value.operation == "DescribeInstances"
    assert raised.value.message == "denied"


# Call count for a whole region


@dataclass
class CountedRead:
    snapshot: RegionSnapshot
    calls: Counter[str]
    worker_ids: list[str]


@pytest.fixture(scope="module")
def counted_read() -> Callable[[int], CountedRead]:
    """Read a region of N workers (and a few strangers) once, counting its calls.

    Reads are kept per N for the module: moto needs about half a minute to build
    the 1,200-instance region, which two tests share.
    """
    reads: dict[int, CountedRead] = {}

    def counted(workers: int) -> CountedRead:
        if workers in reads:
            return reads[workers]

        with emulated_aws():
            aws = emulated_clients()
            ec2 = aws.ec2()
            ami = register_ami(ec2, "CML-2.9.0")
            worker_ids = run_fleet(ec2, ami, workers)
            run_instances(ec2, ami, 3, tags={})
            run_instances(ec2, ami, 2, tags={TAG_KEY: "false"})
            aws.counter.reset()
            snapshot = read(aws)
            reads[workers] = CountedRead(
                snapshot, Counter(aws.counter.calls), worker_ids
            )
        return reads[workers]

    return counted


@pytest.mark.parametrize("workers", [10, 250, 1200])
def test_read_region_call_count_for_n_instances(
    counted_read: Callable[[int], CountedRead], workers: int
) -> None:
    """⌈N/1000⌉ pages + ⌈N/100⌉ status calls + ⌈2N/500⌉ metric calls.

    Status checks go 100 ids a call because AWS refuses more; up to 100 workers
    that is the same as 2·⌈N/1000⌉ + ⌈2N/500⌉.
    """
    calls = counted_read(workers).calls

    expected = Counter(
        {
            "DescribeInstances": ceil(workers / 1000),
            "DescribeInstanceStatus": ceil(workers / 100),
            "GetMetricData": ceil(2 * workers / 500),
        }
    )
    assert calls == expected
    assert calls.total() == (
        ceil(workers / 1000) + ceil(workers / 100) + ceil(2 * workers / 500)
    )
    assert calls.total() < 4 * workers


def test_read_region_follows_pages_past_1000_instances(
    counted_read: Callable[[int], CountedRead],
) -> None:
    fleet = counted_read(1200)

    assert sorted(fleet.snapshot.by_id) == sorted(fleet.worker_ids)
    assert fleet.calls["DescribeInstances"] == 2
    records = fleet.snapshot.instances
    assert all(record.ec2_instance_status == "ok" for record in records)
    assert all(record.cloudwatch_period_seconds == 300 for record in records)


# Throttling and unreachable endpoints

THROTTLED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>throttled</RequestID></Response>"
)


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def throttle_describe_instances(aws: EmulatedAWS, times: int) -> list[int]:
    """Answer the first ``times`` attempts with RequestLimitExceeded (HTTP 503)."""
    attempts: list[int] = []

    def answer(request: Any, **_: Any) -> AWSResponse | None:
        attempts.append(1)
        if len(attempts) > times:
            return None

        return AWSResponse(request.url, 503, {}, _Body(THROTTLED))

    aws.ec2().meta.events.register("before-send.ec2.DescribeInstances", answer)
    return attempts


@pytest.fixture
def backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry delays botocore asked for, recorded instead of slept through."""
    delays: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=delays.append))
    return delays


def test_throttled_call_is_retried(
    aws: EmulatedAWS, ami: str, backoff: list[float]
) -> None:
    [instance] = run_instances(aws.ec2(), ami, 1)
    attempts = throttle_describe_instances(aws, times=2)

    snapshot = read(aws)

    assert list(snapshot.by_id) == [instance]
    assert len(attempts) == 3
    assert len(backoff) == 2
    assert aws.counter.calls["DescribeInstances"] == 1


def test_persistent_throttling_is_reported_after_bounded_attempts(
    aws: EmulatedAWS, backoff: list[float]
) -> None:
    attempts = throttle_describe_instances(aws, times=100)

    with pytest.raises(AWSError) as raised:
        read(aws)

    assert raised.value.code == "RequestLimitExceeded"
    assert raised.value.operation == "DescribeInstances"
    assert len(attempts) == 3
    assert len(backoff) == 2


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_endpoint_is_reported_as_aws_error() -> None:
    with aws_environment():
        clients = AWSClients(
            endpoint_url=f"http://127.0.0.1:{_closed_port()}",
            connect_timeout=0.5,
            read_timeout=0.5,
            max_attempts=1,
        )

        with pytest.raises(AWSError) as raised:
            start_instance(REGION, UNKNOWN_INSTANCE, clients=clients)

    assert raised.value.code == "Unreachable"
    assert raised.value.operation == "StartInstances"


# Lifecycle


def test_find_ami_returns_the_newest_image_matching_the_pattern(
    aws: EmulatedAWS,
) -> None:
    ec2 = aws.ec2()
    now = datetime.now(UTC)
    register_ami(ec2, "CML-2.9.0", created=now - timedelta(days=30))
    newest = register_ami(ec2, "CML-2.9.1", created=now - timedelta(days=2))
    register_ami(ec2, "CML-2.9.2-rc", created=now - timedelta(days=9))
    register_ami(ec2, "CML-2.10.0", created=now)
    register_ami(ec2, "ubuntu-24.04", created=now)

    image = find_ami(REGION, "CML-2.9*", clients=aws.clients)

    assert (image.ami_id, image.name) == (newest, "CML-2.9.1")
    assert image.created_at is not None
    assert image.created_at.date() == (now - timedelta(days=2)).date()


def test_launch_instance_takes_the_rest_from_the_launch_template(
    aws: EmulatedAWS,
) -> None:
    ec2 = aws.ec2()
    ami_id = register_ami(ec2, "CML-2.9.1")
    ec2.create_key_pair(KeyName="lab-ops")
    ec2.create_launch_template(
        LaunchTemplateName="cml-worker",
        LaunchTemplateData={
            "KeyName": "lab-ops",
            "InstanceType": "t3.micro",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "labs"}]}
            ],
        },
    )

    record = launch_instance(
        REGION,
        name="cml-worker-2",
        instance_type="c5.2xlarge",
        ami_id=ami_id,
        tag=WORKER_TAG,
        launch_template="cml-worker",
        clients=aws.clients,
    )

    (instance,) = ec2.describe_instances(InstanceIds=[record.aws_instance_id])[
        "Reservations"
    ][0]["Instances"]
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert instance["KeyName"] == "lab-ops"
    assert instance["InstanceType"] == "c5.2xlarge"
    assert instance["ImageId"] == ami_id
    assert tags["Name"] == "cml-worker-2"
    assert tags[TAG_KEY] == TAG_VALUE
    assert tags["team"] == "labs"


def test_launch_instance_names_a_launch_template_it_cannot_find(
    aws: EmulatedAWS,
) -> None:
    ami_id = register_ami(aws.ec2(), "CML-2.9.1")

    with pytest.raises(AWSError) as raised:
        launch_instance(
            REGION,
            name="cml-worker-3",
            instance_type="c5.2xlarge",
            ami_id=ami_id,
            tag=WORKER_TAG,
            launch_template="no-such-template",
            clients=aws.clients,
        )

    assert raised.value.code.startswith("InvalidLaunchTemplateName")
    assert "'no-such-template' (WORKER_LAUNCH_TEMPLATE)" in raised.value.message
    assert REGION in raised.value.message


def test_find_ami_without_a_match_raises_aws_error(aws: EmulatedAWS) -> None:
    register_ami(aws.ec2(), "ubuntu-26.04")

    with pytest.raises(AWSError) as raised:
        find_ami(REGION, "CML-9.9*", clients=aws.clients)

    assert raised.value.code == "AMINotFound"


def test_launch_instance_tags_at_launch_with_the_ami_found(aws: EmulatedAWS) -> None:
    ec2 = aws.ec2()
    old = datetime.now(UTC) - timedelta(days=10)
    register_ami(ec2, "CML-2.9.0", created=old)
    latest = register_ami(ec2, "CML-2.9.1")
    image = find_ami(REGION, "CML-2.9*", clients=aws.clients)
    aws.counter.reset()

    record = launch_instance(
        REGION,
        name="cml-worker-1",
        instance_type="c5.2xlarge",
        ami_id=image.ami_id,
        tag=WORKER_TAG,
        client_token="worker-1",
        clients=aws.clients,
    )

    assert aws.counter.calls == Counter({"RunInstances": 1})
    assert record.ami_id == latest
    assert record.name == "cml-worker-1"
    assert record.aws_tags == {"Name": "cml-worker-1", TAG_KEY: TAG_VALUE}
    assert record.instance_type == "c5.2xlarge"
    assert record.status in ("pending", "running")
    described = ec2.describe_instances(InstanceIds=[record.aws_instance_id])
    assert described["Reservations"][0]["Instances"][0]["ClientToken"] == "worker-1"
    volumes = ec2.describe_volumes(
        Filters=[{"Name": f"tag:{TAG_KEY}", "Values": [TAG_VALUE]}]
    )["Volumes"]
    assert len(volumes) == 1
    assert list(read(aws).by_id) == [record.aws_instance_id]


def test_stop_start_and_terminate_move_the_instance_through_its_states(
    aws: EmulatedAWS, ami: str
) -> None:
    [instance] = run_instances(aws.ec2(), ami, 1)

    assert stop_instance(REGION, instance, clients=aws.clients) == "stopping"
    assert read(aws).by_id[instance].status == "stopped"
    assert start_instance(REGION, instance, clients=aws.clients) == "pending"
    assert read(aws).by_id[instance].status == "running"
    assert terminate_instance(REGION, instance, clients=aws.clients) == "shutting-down"

    aws.counter.reset()
    gone = read(aws).by_id[instance]

    assert gone.status == "terminated"
    assert gone.ec2_instance_status is None
    assert gone.cloudwatch_period_seconds is None
    assert aws.counter.calls == Counter({"DescribeInstances": 1})


def test_start_of_an_unknown_instance_raises_aws_error_with_the_aws_code(
    aws: EmulatedAWS,
) -> None:
    with pytest.raises(AWSError) as raised:
        start_instance(REGION, UNKNOWN_INSTANCE, clients=aws.clients)

    assert raised.value.code == "InvalidInstanceID.NotFound"
    assert raised.value.operation == "StartInstances"
    assert "Traceback" not in str(raised.value)


def test_detailed_monitoring_on_and_off_is_reflected_in_the_next_read(
    aws: EmulatedAWS, ami: str
) -> None:
    [instance] = run_instances(aws.ec2(), ami, 1)

    assert set_detailed_monitoring(REGION, instance, True, clients=aws.clients) == (
        "pending"
    )
    enabled = read(aws).by_id[instance]
    assert enabled.ec2_detailed_monitoring == "enabled"
    assert enabled.cloudwatch_period_seconds == 60

    assert set_detailed_monitoring(REGION, instance, False, clients=aws.clients) == (
        "disabling"
    )
    disabled = read(aws).by_id[instance]
    assert disabled.ec2_detailed_monitoring == "disabled"
    assert disabled.cloudwatch_period_seconds == 300


def test_detailed_monitoring_of_an_unknown_instance_raises_aws_error(
    aws: EmulatedAWS,
) -> None:
    with pytest.raises(AWSError) as raised:
        set_detailed_monitoring(REGION, UNKNOWN_INSTANCE, True, clients=aws.clients)

    assert raised.value.code == "InvalidInstanceID.NotFound"
    assert raised.value.operation == "MonitorInstances"


def test_describe_instances_names_each_ami_with_one_image_lookup(
    aws: EmulatedAWS,
) -> None:
    ec2 = aws.ec2()
    first = register_ami(ec2, "CML-2.9.0")
    second = register_ami(ec2, "CML-2.9.1")
    ids = run_instances(ec2, first, 2, tags={}) + run_instances(ec2, second, 1, tags={})
    aws.counter.reset()

    records = describe_instances(REGION, ids, clients=aws.clients)

    assert {r.aws_instance_id: r.ami_name for r in records} == {
        ids[0]: "CML-2.9.0",
        ids[1]: "CML-2.9.0",
        ids[2]: "CML-2.9.1",
    }
    assert aws.counter.calls == Counter({"DescribeInstances": 1, "DescribeImages": 1})


def test_describe_instances_of_an_unknown_id_raises_aws_error(
    aws: EmulatedAWS,
) -> None:
    with pytest.raises(AWSError) as raised:
        describe_instances(REGION, [UNKNOWN_INSTANCE], clients=aws.clients)

    assert raised.value.code == "InvalidInstanceID.NotFound"


def test_describe_instances_without_ids_asks_nothing(aws: EmulatedAWS) -> None:
    assert describe_instances(REGION, [], clients=aws.clients) == []
    assert aws.counter.total == 0


def test_discover_instances_keeps_tagged_instances_of_matching_amis(
    aws: EmulatedAWS,
) -> None:
    ec2 = aws.ec2()
    cml = register_ami(ec2, "CML-2.9.0")
    other = register_ami(ec2, "ubuntu-24.04")
    [running] = run_instances(ec2, cml, 1)
    [stopped] = run_instances(ec2, cml, 1)
    [terminated] = run_instances(ec2, cml, 1)
    run_instances(ec2, other, 1)
    run_instances(ec2, cml, 1, tags={})
    ec2.stop_instances(InstanceIds=[stopped])
    ec2.terminate_instances(InstanceIds=[terminated])
    aws.counter.reset()

    found = discover_instances(REGION, WORKER_TAG, "CML-2.9*", clients=aws.clients)

    assert {r.aws_instance_id: r.ami_name for r in found} == {
        running: "CML-2.9.0",
        stopped: "CML-2.9.0",
    }
    assert aws.counter.calls == Counter({"DescribeInstances": 1, "DescribeImages": 1})
