"""The embedded demo: the whole product in one process with in-process stand-ins.

Redis is fakeredis, MongoDB is mongomock, AWS is moto, and the CML controllers
are the project's simulator served over real local HTTPS. Everything above those
connections — the RQ worker, the scheduler, the refresh, the event stream, the
web app — is the product's own code, run as in production.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
from datetime import UTC, datetime
from typing import Any

from backend.settings import Settings, load_settings

log = logging.getLogger(__name__)

DEMO_LOGINS = (("admin", "admin", "admin"), ("user", "user", "user"))
REGIONS = ("us-east-1", "eu-west-1")
TAG_KEY, TAG_VALUE = "cmlfleet:managed", "true"
NAMES = (
    "ccna-pod",
    "ccnp-pod",
    "devnet-lab",
    "sp-core",
    "sdwan-demo",
    "security-lab",
    "ent-campus",
    "dc-fabric",
    "automation",
    "troubleshoot",
    "bootcamp",
    "partner-lab",
)


def demo_settings(port: int, interval: float, simulator_url: str) -> Settings:
    env = {
        **os.environ,
        "REDIS_URL": "fakeredis://demo",
        "MONGODB_URL": "mongomock://localhost/cmlfleet",
        "AWS_REGIONS": ",".join(REGIONS),
        "CML_PASSWORD": "admin",
        "CML_ENDPOINT": simulator_url + "/{instance_id}",
        "CML_VERIFY_TLS": "false",
        "REFRESH_INTERVAL_SECONDS": str(max(1, round(interval))),
        "SSE_HEARTBEAT_SECONDS": "15",
        "PORT": str(port),
    }
    return load_settings(env, environment="demo")


def seed_users() -> None:
    from backend.auth import create_user
    from backend.models import User

    for username, password, role in DEMO_LOGINS:
        if User.objects(username=username).first() is None:
            create_user(username, password, role)


def seed_instances(count: int) -> list[tuple[str, str]]:
    """Launch ``count`` tagged CML instances over two regions; stop a few."""
    import boto3

    launched: list[tuple[str, str]] = []
    for index in range(count):
        region = REGIONS[index % len(REGIONS)]
        ec2 = boto3.client("ec2", region_name=region)
        image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["CML-2.9*"]}])
        name = f"{NAMES[index % len(NAMES)]}-{index // len(NAMES) + 1:02d}"
        reservation = ec2.run_instances(
            ImageId=image["Images"][0]["ImageId"],
            MinCount=1,
            MaxCount=1,
            InstanceType="c5.2xlarge" if index % 3 else "m5.4xlarge",
            Monitoring={"Enabled": index % 4 == 0},
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [
                        {"Key": "Name", "Value": name},
                        {"Key": TAG_KEY, "Value": TAG_VALUE},
                        {"Key": "team", "Value": "training"},
                    ],
                }
            ],
        )
        instance_id = reservation["Instances"][0]["InstanceId"]
        if index % 5 == 4:
            ec2.stop_instances(InstanceIds=[instance_id])
        launched.append((region, instance_id))
    return launched


def report_cloudwatch(rng: random.Random) -> None:
    """Stand in for CloudWatch collecting: a datapoint per running instance."""
    import boto3

    for region in REGIONS:
        ec2 = boto3.client("ec2", region_name=region)
        cloudwatch = boto3.client("cloudwatch", region_name=region)
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[
                {"Name": f"tag:{TAG_KEY}", "Values": [TAG_VALUE]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )
        now = datetime.now(UTC)
        data: list[dict[str, Any]] = []
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    dimensions = [
                        {"Name": "InstanceId", "Value": instance["InstanceId"]}
                    ]
                    data.append(
                        {
                            "MetricName": "CPUUtilization",
                            "Dimensions": dimensions,
                            "Timestamp": now,
                            "Value": round(rng.uniform(5, 85), 1),
                            "Unit": "Percent",
                        }
                    )
        for start in range(0, len(data), 500):
            cloudwatch.put_metric_data(
                Namespace="AWS/EC2", MetricData=data[start : start + 500]
            )


class DemoWorker:
    """An RQ worker that leaves signals to the demo (it runs in a greenlet)."""

    @staticmethod
    def build(redis: Any) -> Any:
        from rq import SimpleWorker
        from rq.timeouts import TimerDeathPenalty

        from backend.jobs import queue

        class Worker(SimpleWorker):
            death_penalty_class = TimerDeathPenalty

            def _install_signal_handlers(self) -> None:
                return None

        return Worker([queue(redis)], connection=redis)


def run_demo(*, port: int, worker_count: int, interval: float) -> None:
    import gevent
    from gevent.pywsgi import WSGIServer

    from backend import demo_aws

    demo_aws.use_cml_images()
    from moto import mock_aws

    demo_aws.add_monitoring_calls()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": REGIONS[0],
    }.items():
        os.environ[name] = value

    from rq_scheduler import Scheduler

    from backend import jobs
    from backend.app import create_app
    from backend.bootstrap import initialise
    from backend.simulator import start_simulator

    aws = mock_aws()
    aws.start()
    # moto lets every CML request through its HTTP interceptor and says so, once
    # a request; the demo's console is for the product's own lines.
    for chatty in ("responses", "rq_scheduler.scheduler", "botocore.credentials"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    simulator = start_simulator(use_tls=True)
    settings = demo_settings(port, interval, simulator.url)
    app = create_app(settings)
    redis = app.extensions["cmlfleet.redis"]
    with app.app_context():
        for line in initialise(settings):
            log.debug("demo: %s", line)
        seed_users()
    instances = seed_instances(worker_count)
    rng = random.Random(7)
    report_cloudwatch(rng)
    log.info("demo: %d instances launched in %s", len(instances), ", ".join(REGIONS))

    jobs.configure(jobs.build_context(settings, redis))
    worker = DemoWorker.build(redis)
    scheduler = Scheduler(queue_name=jobs.QUEUE_NAME, connection=redis, interval=1)
    jobs.register_schedule(scheduler, settings.refresh_interval_seconds)

    def run_worker() -> None:
        with app.app_context():
            worker.work(with_scheduler=False, logging_level="WARNING")

    def keep_cloudwatch_moving() -> None:
        while True:
            gevent.sleep(max(5.0, interval / 2))
            report_cloudwatch(rng)

    greenlets = [
        gevent.spawn(run_worker),
        gevent.spawn(scheduler.run),
        gevent.spawn(keep_cloudwatch_moving),
    ]
    server = WSGIServer(("127.0.0.1", port), app, log=None)
    server.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    print(f"CML Fleet demo running at {url}", flush=True)
    print("Sign in as admin/admin (admin) or user/user (read-only).", flush=True)
    print(
        f"{len(instances)} workers in {', '.join(REGIONS)}, refreshed every "
        f"{settings.refresh_interval_seconds} s. Press Ctrl-C to stop.",
        flush=True,
    )

    def stop(*_: object) -> None:
        log.info("demo: stopping")
        server.stop(timeout=2)
        gevent.killall(greenlets, timeout=2)
        simulator.stop()
        aws.stop()
        sys.exit(0)

    gevent.signal_handler(signal.SIGTERM, stop)
    gevent.signal_handler(signal.SIGINT, stop)
    server.serve_forever()
