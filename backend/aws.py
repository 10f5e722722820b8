"""Region-wide EC2 and CloudWatch reads, and the lifecycle calls for workers.

A refresh reads a whole region in as few calls as the APIs allow: the managed
instances by the worker tag (``DescribeInstances``, 1,000 a page), their status
checks (``DescribeInstanceStatus``, 100 ids a call, the most AWS accepts), and CPU
and memory for all of them (``GetMetricData``, 500 queries a call). For N managed
instances that is ``⌈N/1000⌉ + ⌈N/100⌉ + ⌈2N/500⌉`` calls instead of the ``4N`` of
reading each instance on its own.

Every function takes the :class:`AWSClients` factory to use; every failed AWS
call surfaces as :class:`~backend.errors.AWSError` with the AWS code and message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from backend.errors import AWSError, ConfigError

logger = logging.getLogger(__name__)

EC2_STATES = frozenset(
    {"pending", "running", "stopping", "stopped", "shutting-down", "terminated"}
)

INSTANCES_PER_PAGE = 1000
# AWS rejects DescribeInstanceStatus with more than 100 explicit instance ids
# ("exceeds the maximum number of instance IDs that can be specified (100)").
STATUS_IDS_PER_CALL = 100
QUERIES_PER_CALL = 500
# A fleet runs a handful of AMIs, so their names take one call; chunking keeps
# the request small should a region hold many.
AMI_IDS_PER_CALL = 200

DETAILED_PERIOD_SECONDS = 60
BASIC_PERIOD_SECONDS = 300
# CloudWatch publishes EC2 datapoints a few minutes late; five periods keep the
# latest one inside the window without reading old history.
LOOKBACK_PERIODS = 5

CPU_METRIC = ("AWS/EC2", "CPUUtilization")
# The CloudWatch agent publishes this only when configured with
# append_dimensions {"InstanceId": ...} and no other dimension, which is what the
# query below matches; without the agent the metric is absent and memory is None.
MEMORY_METRIC = ("CWAgent", "mem_used_percent")

LIVE_EC2_STATES = ("pending", "running", "stopping", "stopped")


def status_for_ec2_state(state: str | None) -> str:
    """The worker status for an EC2 instance state; ``unknown`` for anything else.

    EC2 states and worker statuses share their names; ``failed`` never comes from
    EC2, the caller sets it when a launch fails.
    """
    if state in EC2_STATES:
        return state

    return "unknown"


def metric_period(monitoring_state: str) -> int:
    """The CloudWatch period that matches an instance's monitoring, in seconds.

    Only ``enabled`` delivers one-minute datapoints; while monitoring is being
    switched on or off the five-minute series is the one that is complete.
    """
    if monitoring_state == "enabled":
        return DETAILED_PERIOD_SECONDS

    return BASIC_PERIOD_SECONDS


def parse_worker_tag(text: str) -> tuple[str, str]:
    """Split a ``WORKER_TAG`` value (``cmlfleet:managed=true``) into key and value."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key or not value:
        raise ConfigError(f"WORKER_TAG must look like key=value, got {text!r}")

    return key, value


@dataclass(frozen=True)
class InstanceRecord:
    """One EC2 instance as the worker fields of the same names describe it.

    Status checks and CloudWatch fields are ``None`` when they were not read (a
    terminated instance, or a lookup that reads EC2 only); ``ami_name`` is filled
    only by the import lookups, never by a refresh.
    """

    aws_instance_id: str
    name: str | None
    region: str
    instance_type: str
    ami_id: str
    aws_tags: dict[str, str]
    status: str
    public_ip: str | None
    private_ip: str | None
    public_dns: str | None
    ec2_state: str
    ec2_detailed_monitoring: str
    ec2_launch_time: datetime | None
    ec2_checked_at: datetime
    ec2_instance_status: str | None = None
    ec2_system_status: str | None = None
    ami_name: str | None = None
    cloudwatch_cpu_utilization: float | None = None
    cloudwatch_memory_utilization: float | None = None
    cloudwatch_period_seconds: int | None = None
    cloudwatch_collected_at: datetime | None = None


@dataclass(frozen=True)
class RegionSnapshot:
    """Every managed instance of one region, read at ``read_at``.

    Terminated instances are included while EC2 still lists them, so a caller can
    tell a terminated worker from one whose instance has vanished altogether.
    When CloudWatch could not be read, ``cloudwatch_error`` says why and the
    records' CloudWatch fields are all ``None``: keep the values stored before.
    """

    region: str
    read_at: datetime
    instances: tuple[InstanceRecord, ...]
    cloudwatch_error: AWSError | None = None
    by_id: dict[str, InstanceRecord] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {record.aws_instance_id: record for record in self.instances}
        object.__setattr__(self, "by_id", by_id)


@dataclass(frozen=True)
class Image:
    """An AMI found by name."""

    ami_id: str
    name: str
    created_at: datetime | None


class AWSClients:
    """Builds boto3 clients once per service and region, configured for production.

    One factory serves one endpoint (``AWS_ENDPOINT_URL`` or the AWS default); a
    refresh asks it for clients on every run and gets the cached ones. boto3
    clients are thread-safe, so threads may share them; ``max_pool_connections``
    should be at least the number of threads that share one region's client.
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_attempts: int = 4,
        retry_mode: str = "standard",
        max_pool_connections: int = 10,
    ) -> None:
        self.endpoint_url = endpoint_url or None
        self._session = session or boto3.Session()
        self._config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # total_max_attempts counts the first attempt; botocore's max_attempts
            # in this dict would count retries only.
            retries={"mode": retry_mode, "total_max_attempts": max_attempts},
            max_pool_connections=max_pool_connections,
        )
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def ec2(self, region: str) -> Any:
        """The EC2 client for ``region``."""
        return self._client("ec2", region)

    def cloudwatch(self, region: str) -> Any:
        """The CloudWatch client for ``region``."""
        return self._client("cloudwatch", region)

    def _client(self, service: str, region: str) -> Any:
        # Creating a client from a shared session is not thread-safe; using one is.
        with self._lock:
            client = self._clients.get((service, region))
            if client is None:
                client = self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    config=self._config,
                )
                self._clients[(service, region)] = client

        return client


@contextmanager
def _translate_errors(operation: str, region: str) -> Iterator[None]:
    """Turn botocore failures into AWSError with the AWS code and message."""
    try:
        yield
    except ClientError as error:
        details = error.response.get("Error", {})
        code = details.get("Code") or "Unknown"
        message = details.get("Message") or str(error)
        raise AWSError(code, message, operation) from error
    except (BotoConnectionError, HTTPClientError) as error:
        message = f"region {region}: AWS did not answer ({error})"
        raise AWSError("Unreachable", message, operation) from error
    except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError):
        message = "no usable AWS credentials (environment, profile or instance role)"
        raise AWSError("NoCredentials", message, operation) from None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None

    return value.astimezone(UTC)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _record_from_instance(
    region: str, instance: Mapping[str, Any], checked_at: datetime
) -> InstanceRecord:
    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
    state = instance.get("State", {}).get("Name", "")
    return InstanceRecord(
        aws_instance_id=instance["InstanceId"],
        name=tags.get("Name"),
        region=region,
        instance_type=instance.get("InstanceType", ""),
        ami_id=instance.get("ImageId", ""),
        aws_tags=tags,
        status=status_for_ec2_state(state),
        public_ip=instance.get("PublicIpAddress") or None,
        private_ip=instance.get("PrivateIpAddress") or None,
        public_dns=instance.get("PublicDnsName") or None,
        ec2_state=state,
        ec2_detailed_monitoring=instance.get("Monitoring", {}).get("State", "disabled"),
        ec2_launch_time=_as_utc(instance.get("LaunchTime")),
        ec2_checked_at=checked_at,
    )


def _describe(
    ec2: Any, region: str, **params: Any
) -> Iterator[tuple[Mapping[str, Any], datetime]]:
    """Yield every instance DescribeInstances returns, with the time of its page."""
    pages = ec2.get_paginator("describe_instances").paginate(**params)
    with _translate_errors("DescribeInstances", region):
        for page in pages:
            checked_at = _utcnow()
            for reservation in page.get("Reservations", []):
                for instance in reservation.get("Instances", []):
                    yield instance, checked_at


def _tag_filter(tag: str) -> dict[str, Any]:
    key, value = parse_worker_tag(tag)
    return {"Name": f"tag:{key}", "Values": [value]}


def _read_status_checks(
    ec2: Any, region: str, instance_ids: Sequence[str]
) -> dict[str, tuple[str | None, str | None]]:
    """Instance and system status check results by instance id."""
    checks: dict[str, tuple[str | None, str | None]] = {}
    paginator = ec2.get_paginator("describe_instance_status")
    for chunk in _chunks(instance_ids, STATUS_IDS_PER_CALL):
        # No page size: AWS refuses MaxResults together with InstanceIds.
        pages = paginator.paginate(InstanceIds=list(chunk), IncludeAllInstances=True)
        with _translate_errors("DescribeInstanceStatus", region):
            for page in pages:
                for status in page.get("InstanceStatuses", []):
                    checks[status["InstanceId"]] = (
                        status.get("InstanceStatus", {}).get("Status"),
                        status.get("SystemStatus", {}).get("Status"),
                    )

    return checks


def latest_datapoint(
    timestamps: Sequence[datetime], values: Sequence[float]
) -> tuple[datetime, float] | None:
    """The newest (timestamp, value) of a CloudWatch series, whatever its order."""
    if not timestamps:
        return None

    timestamp, value = max(zip(timestamps, values, strict=True), key=lambda p: p[0])
    return timestamp.astimezone(UTC), float(value)


@dataclass(frozen=True)
class _Utilization:
    cpu: float | None
    memory: float | None
    period_seconds: int
    collected_at: datetime | None


def _metric_query(
    query_id: str, metric: tuple[str, str], instance_id: str, period: int
) -> dict[str, Any]:
    namespace, name = metric
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": name,
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            },
            "Period": period,
            "Stat": "Average",
        },
        "ReturnData": True,
    }


def _read_utilization(
    cloudwatch: Any, region: str, periods: Mapping[str, int], now: datetime
) -> dict[str, _Utilization]:
    """CPU and memory of every instance in ``periods``, 250 instances a call."""
    utilization: dict[str, _Utilization] = {}
    for batch in _chunks(list(periods), QUERIES_PER_CALL // 2):
        queries = []
        for index, instance_id in enumerate(batch):
            period = periods[instance_id]
            queries.append(
                _metric_query(f"cpu{index}", CPU_METRIC, instance_id, period)
            )
            queries.append(
                _metric_query(f"mem{index}", MEMORY_METRIC, instance_id, period)
            )

        # One window serves the whole call, so it spans the longest period in it.
        window = timedelta(seconds=LOOKBACK_PERIODS * max(periods[i] for i in batch))
        series = _metric_series(cloudwatch, region, queries, now - window, now)

        for index, instance_id in enumerate(batch):
            cpu = latest_datapoint(*series.get(f"cpu{index}", ([], [])))
            memory = latest_datapoint(*series.get(f"mem{index}", ([], [])))
            stamps = [point[0] for point in (cpu, memory) if point is not None]
            utilization[instance_id] = _Utilization(
                cpu=cpu[1] if cpu else None,
                memory=memory[1] if memory else None,
                period_seconds=periods[instance_id],
                collected_at=max(stamps) if stamps else None,
            )

    return utilization


def _metric_series(
    cloudwatch: Any,
    region: str,
    queries: Sequence[Mapping[str, Any]],
    start: datetime,
    end: datetime,
) -> dict[str, tuple[list[datetime], list[float]]]:
    """Timestamps and values by query id, gathered over every page of one call."""
    series: dict[str, tuple[list[datetime], list[float]]] = {}
    pages = cloudwatch.get_paginator("get_metric_data").paginate(
        MetricDataQueries=list(queries),
        StartTime=start,
        EndTime=end,
        ScanBy="TimestampDescending",
    )
    with _translate_errors("GetMetricData", region):
        for page in pages:
            for result in page.get("MetricDataResults", []):
                timestamps, values = series.setdefault(result["Id"], ([], []))
                timestamps.extend(result.get("Timestamps", []))
                values.extend(result.get("Values", []))

    return series


def read_region(region: str, tag: str, *, clients: AWSClients) -> RegionSnapshot:
    """Read every instance carrying the worker ``tag`` in ``region``.

    Raises AWSError when EC2 cannot be read. A CloudWatch failure does not fail
    the read: it is logged and reported in ``RegionSnapshot.cloudwatch_error``.
    Terminated instances are listed but neither status checks nor metrics are
    asked for them.
    """
    ec2 = clients.ec2(region)
    started = time.monotonic()
    filters = [_tag_filter(tag)]
    records = [
        _record_from_instance(region, instance, checked_at)
        for instance, checked_at in _describe(
            ec2,
            region,
            Filters=filters,
            PaginationConfig={"PageSize": INSTANCES_PER_PAGE},
        )
    ]
    live = [record for record in records if record.ec2_state != "terminated"]

    checks = _read_status_checks(ec2, region, [r.aws_instance_id for r in live])
    records = [_with_status_checks(record, checks) for record in records]

    read_at = _utcnow()
    periods = {
        r.aws_instance_id: metric_period(r.ec2_detailed_monitoring) for r in live
    }
    cloudwatch_error = None
    try:
        utilization = _read_utilization(
            clients.cloudwatch(region), region, periods, read_at
        )
    except AWSError as error:
        logger.warning("region %s: CloudWatch not read (%s)", region, error)
        cloudwatch_error = error
        utilization = {}

    records = [_with_utilization(record, utilization) for record in records]
    logger.debug(
        "region %s: %d instances read (%d live) in %.2fs",
        region,
        len(records),
        len(live),
        time.monotonic() - started,
    )
    return RegionSnapshot(
        region=region,
        read_at=read_at,
        instances=tuple(records),
        cloudwatch_error=cloudwatch_error,
    )


def _with_status_checks(
    record: InstanceRecord, checks: Mapping[str, tuple[str | None, str | None]]
) -> InstanceRecord:
    instance_status, system_status = checks.get(record.aws_instance_id, (None, None))
    return replace(
        record, ec2_instance_status=instance_status, ec2_system_status=system_status
    )


def _with_utilization(
    record: InstanceRecord, utilization: Mapping[str, _Utilization]
) -> InstanceRecord:
    reading = utilization.get(record.aws_instance_id)
    if reading is None:
        return record

    return replace(
        record,
        cloudwatch_cpu_utilization=reading.cpu,
        cloudwatch_memory_utilization=reading.memory,
        cloudwatch_period_seconds=reading.period_seconds,
        cloudwatch_collected_at=reading.collected_at,
    )


def _ami_names(
    ec2: Any, region: str, ami_ids: Iterable[str], name_pattern: str | None = None
) -> dict[str, str]:
    """Names of the given AMIs, optionally only those matching ``name_pattern``."""
    names: dict[str, str] = {}
    distinct = sorted(set(ami_ids))
    for chunk in _chunks(distinct, AMI_IDS_PER_CALL):
        # A filter, unlike ImageIds, does not fail on an AMI deregistered since launch.
        filters = [{"Name": "image-id", "Values": list(chunk)}]
        if name_pattern:
            filters.append({"Name": "name", "Values": [name_pattern]})
        with _translate_errors("DescribeImages", region):
            response = ec2.describe_images(Filters=filters)
        for image in response.get("Images", []):
            names[image["ImageId"]] = image.get("Name", "")

    return names


def find_ami(
    region: str,
    name_pattern: str,
    *,
    owners: Sequence[str] = ("self",),
    clients: AWSClients,
) -> Image:
    """The newest available AMI whose name matches ``name_pattern`` (``CML-2.9*``).

    Only images of ``owners`` are considered, by default the account's own: a
    public image that happens to match the name must never become a worker.
    """
    ec2 = clients.ec2(region)
    filters = [
        {"Name": "name", "Values": [name_pattern]},
        {"Name": "state", "Values": ["available"]},
    ]
    with _translate_errors("DescribeImages", region):
        response = ec2.describe_images(Owners=list(owners), Filters=filters)

    images = response.get("Images", [])
    if not images:
        message = f"no available AMI in {region} has a name matching {name_pattern!r}"
        raise AWSError("AMINotFound", message, "DescribeImages")

    # CreationDate is ISO 8601 in UTC, so the newest sorts last as text.
    newest = max(images, key=lambda image: image.get("CreationDate", ""))
    created = newest.get("CreationDate")
    return Image(
        ami_id=newest["ImageId"],
        name=newest.get("Name", ""),
        created_at=datetime.fromisoformat(created) if created else None,
    )


def launch_instance(
    region: str,
    *,
    name: str,
    instance_type: str,
    ami_id: str,
    tag: str,
    launch_template: str | None = None,
    client_token: str | None = None,
    clients: AWSClients,
) -> InstanceRecord:
    """Launch one instance tagged ``Name`` and the worker tag from its first moment.

    Tagging at launch, not after, means a refresh never sees the instance
    unmanaged. With ``launch_template`` (a name, the same in every region), the
    template's default version supplies what the account's network asks for:
    subnet, security groups, key pair, instance profile, storage, user data; the
    AMI, the type and the tags given here take precedence. Pass ``client_token``
    (for example the worker id) so that a retried job gets the same instance back
    instead of launching a second one.
    """
    ec2 = clients.ec2(region)
    key, value = parse_worker_tag(tag)
    tags = [{"Key": "Name", "Value": name}, {"Key": key, "Value": value}]
    params: dict[str, Any] = {
        "ImageId": ami_id,
        "InstanceType": instance_type,
        "MinCount": 1,
        "MaxCount": 1,
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tags},
            {"ResourceType": "volume", "Tags": tags},
        ],
    }
    if launch_template:
        params["LaunchTemplate"] = {"LaunchTemplateName": launch_template}
    if client_token:
        params["ClientToken"] = client_token

    try:
        with _translate_errors("RunInstances", region):
            response = ec2.run_instances(**params)
    except AWSError as error:
        # EC2's own message does not say which template it could not find.
        if launch_template and error.code.startswith("InvalidLaunchTemplate"):
            message = (
                f"launch template {launch_template!r} (WORKER_LAUNCH_TEMPLATE) is "
                f"not usable in {region}: {error.message}"
            )
            raise AWSError(error.code, message, error.operation) from error
        raise

    record = _record_from_instance(region, response["Instances"][0], _utcnow())
    logger.info(
        "instance %s: launched in %s as %r (%s, %s)",
        record.aws_instance_id,
        region,
        name,
        instance_type,
        ami_id,
    )
    return record


def _new_state(changes: Sequence[Mapping[str, Any]], instance_id: str) -> str:
    for change in changes:
        if change.get("InstanceId") == instance_id:
            return str(change.get("CurrentState", {}).get("Name", ""))

    return ""


def _request_state(
    region: str,
    instance_id: str,
    operation: str,
    answer_key: str,
    *,
    clients: AWSClients,
) -> str:
    """Ask EC2 to start, stop or terminate one instance; return the state it
    entered, as EC2's answer under ``answer_key`` reports it."""
    ec2 = clients.ec2(region)
    call = getattr(ec2, xform_name(operation))
    with _translate_errors(operation, region):
        response = call(InstanceIds=[instance_id])

    state = _new_state(response.get(answer_key, []), instance_id)
    logger.info("instance %s: %s in %s, now %s", instance_id, operation, region, state)
    return state


def start_instance(region: str, instance_id: str, *, clients: AWSClients) -> str:
    """Start a stopped instance; returns the EC2 state it entered (``pending``)."""
    return _request_state(
        region, instance_id, "StartInstances", "StartingInstances", clients=clients
    )


def stop_instance(region: str, instance_id: str, *, clients: AWSClients) -> str:
    """Stop a running instance; returns the EC2 state it entered (``stopping``)."""
    return _request_state(
        region, instance_id, "StopInstances", "StoppingInstances", clients=clients
    )


def terminate_instance(region: str, instance_id: str, *, clients: AWSClients) -> str:
    """Terminate an instance; returns the EC2 state it entered (``shutting-down``)."""
    return _request_state(
        region,
        instance_id,
        "TerminateInstances",
        "TerminatingInstances",
        clients=clients,
    )


def set_detailed_monitoring(
    region: str, instance_id: str, enabled: bool, *, clients: AWSClients
) -> str:
    """Switch EC2 detailed monitoring on or off; returns the new monitoring state.

    AWS answers ``pending`` or ``disabling`` at first; a later read shows
    ``enabled`` or ``disabled``.
    """
    ec2 = clients.ec2(region)
    operation = "MonitorInstances" if enabled else "UnmonitorInstances"
    call = ec2.monitor_instances if enabled else ec2.unmonitor_instances
    with _translate_errors(operation, region):
        response = call(InstanceIds=[instance_id])

    state = ""
    for monitoring in response.get("InstanceMonitorings", []):
        if monitoring.get("InstanceId") == instance_id:
            state = str(monitoring.get("Monitoring", {}).get("State", ""))
    logger.info("instance %s: detailed monitoring now %s", instance_id, state)
    return state


def tag_instances(
    region: str, instance_ids: Sequence[str], tag: str, *, clients: AWSClients
) -> None:
    """Put the worker ``tag`` on instances, so that every refresh reads them."""
    if not instance_ids:
        return

    ec2 = clients.ec2(region)
    key, value = parse_worker_tag(tag)
    with _translate_errors("CreateTags", region):
        ec2.create_tags(
            Resources=list(instance_ids), Tags=[{"Key": key, "Value": value}]
        )
    logger.info("region %s: tagged %s on %s", region, tag, ", ".join(instance_ids))


def describe_instances(
    region: str, instance_ids: Sequence[str], *, clients: AWSClients
) -> list[InstanceRecord]:
    """The given instances with their AMI names, for import by id.

    Raises AWSError (``InvalidInstanceID.NotFound``) if any id is unknown.
    """
    if not instance_ids:
        return []

    ec2 = clients.ec2(region)
    records = [
        _record_from_instance(region, instance, checked_at)
        for instance, checked_at in _describe(
            ec2, region, InstanceIds=list(instance_ids)
        )
    ]
    names = _ami_names(ec2, region, [record.ami_id for record in records])
    return [replace(r, ami_name=names.get(r.ami_id)) for r in records]


def discover_instances(
    region: str,
    tag: str,
    ami_name_pattern: str,
    *,
    clients: AWSClients,
) -> list[InstanceRecord]:
    """Instances carrying the worker ``tag`` that run an AMI named like the pattern.

    Two calls in practice: the tagged, not terminated instances, then one
    DescribeImages for their distinct AMIs that keeps the names that match. An
    instance whose AMI has since been deregistered has no name and is left out.
    """
    ec2 = clients.ec2(region)
    filters = [
        _tag_filter(tag),
        {"Name": "instance-state-name", "Values": list(LIVE_EC2_STATES)},
    ]
    records = [
        _record_from_instance(region, instance, checked_at)
        for instance, checked_at in _describe(
            ec2,
            region,
            Filters=filters,
            PaginationConfig={"PageSize": INSTANCES_PER_PAGE},
        )
    ]
    if not records:
        return []

    names = _ami_names(ec2, region, [r.ami_id for r in records], ami_name_pattern)
    found = [replace(r, ami_name=names[r.ami_id]) for r in records if r.ami_id in names]
    logger.info(
        "region %s: %d of %d tagged instances run an AMI named %r",
        region,
        len(found),
        len(records),
        ami_name_pattern,
    )
    return found
