"""Fleet refresh: CML Fleet's batched, concurrent refresh against the usual
one-worker-at-a-time pattern, measured in the same run.

Set-up: N instances in moto's server, each a CML controller of the simulator
(plain HTTP) answering every request after 100 ms; both run in their own
processes, as AWS and the controllers are remote in production, but they share
this machine's cores with the refresh. For each N the script times a first
refresh (cold: every controller signs in, every worker and lab is written) and a
second one (tokens cached, connections open), counting AWS calls with a botocore
hook and CML requests with the client's counter. "CPU s" is this process;
"stand-ins" is the CPU the simulator and moto spent meanwhile.

The baseline does what single-instance tools do: for each worker in turn,
describe the instance, its status and two CloudWatch statistics, then for each
CML call sign in again and make the call. It is strictly sequential, so its cost
is linear in N: it is measured on BASELINE_SAMPLE workers and scaled to N (the
table says so).

MongoDB is the in-process stand-in, whose unique-index checks scan the whole
collection on every insert (the first refresh pays for that), unless
BENCH_MONGODB_URL names a server: its database is emptied and set up as
`cmlfleet init` does, once for each N.

Run: `.venv/bin/python bench/refresh.py` (about two minutes; BENCH_SIZES=500 for
one size). Talks only to 127.0.0.1. Needs a Redis at 127.0.0.1:6379 (it uses
database 13 and empties it).
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend import demo_aws  # noqa: E402

demo_aws.use_cml_images()
os.environ.update(
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_DEFAULT_REGION="us-east-1",
)

import boto3  # noqa: E402
import requests  # noqa: E402
from mongoengine.connection import get_db  # noqa: E402

from backend import aws, cml, jobs  # noqa: E402
from backend.bootstrap import initialise  # noqa: E402
from backend.connections import connect_mongo, redis_from_url  # noqa: E402
from backend.refresh import refresh  # noqa: E402
from backend.settings import load_settings  # noqa: E402

SIZES = tuple(int(n) for n in os.environ.get("BENCH_SIZES", "100,500").split(","))
LATENCY_MS = 100
BASELINE_SAMPLE = 10
REDIS_URL = "redis://127.0.0.1:6379/13"
MONGODB_URL = os.environ.get("BENCH_MONGODB_URL", "mongomock://localhost/bench")
BASELINE_CALLS = ("system_information", "system_health", "system_stats", "licensing")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_simulator() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backend.cli",
            "simulate-cml",
            "--port",
            str(port),
            "--http",
            "--drift",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(url + "/", timeout=1)
            return process, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("the simulator did not start")


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """AWS stand-in in its own process, as AWS is remote in production."""
    port = free_port()
    env = {**os.environ, "MOTO_AMIS_PATH": str(demo_aws.IMAGES)}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            requests.get(url + "/moto-api/", timeout=1)
            return process, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("moto did not start")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """CPU time of another process (the stand-ins), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


STAND_INS: dict[str, int] = {}


class AWSCallCounter:
    def __init__(self, session: boto3.Session) -> None:
        self.calls: Counter[str] = Counter()
        session.events.register("before-call", self.record)

    def record(self, event_name: str, **_: object) -> None:
        self.calls[event_name.rsplit(".", 1)[-1]] += 1

    def take(self) -> int:
        total = sum(self.calls.values())
        self.calls.clear()
        return total


def launch(session: boto3.Session, aws_url: str, count: int, sim_url: str) -> list[str]:
    ec2 = session.client("ec2", endpoint_url=aws_url)
    image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["CML-2.9*"]}])
    ids: list[str] = []
    while len(ids) < count:
        batch = min(500, count - len(ids))
        reservation = ec2.run_instances(
            ImageId=image["Images"][0]["ImageId"],
            MinCount=batch,
            MaxCount=batch,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": "cmlfleet:managed", "Value": "true"}],
                }
            ],
        )
        ids += [i["InstanceId"] for i in reservation["Instances"]]
    with requests.Session() as http:
        for instance_id in ids:
            http.put(
                f"{sim_url}/{instance_id}/_sim/faults",
                json={"latency_ms": LATENCY_MS},
                timeout=5,
            ).raise_for_status()
    return ids


def stand_ins_cpu() -> float:
    return sum(process_cpu_seconds(pid) for pid in STAND_INS.values())


def measure(label: str, run, counter: AWSCallCounter) -> dict[str, object]:
    cml.calls.reset()
    counter.take()
    cpu, wall, others = cpu_seconds(), time.perf_counter(), stand_ins_cpu()
    run()
    return {
        "run": label,
        "wall_s": time.perf_counter() - wall,
        "cpu_s": cpu_seconds() - cpu,
        "stand_ins_cpu_s": stand_ins_cpu() - others,
        "aws_calls": counter.take(),
        "cml_requests": cml.calls.requests,
        "cml_auths": cml.calls.authentications,
    }


def baseline(
    session: boto3.Session,
    aws_url: str,
    ids: list[str],
    sim_url: str,
    counter: AWSCallCounter,
) -> dict[str, object]:
    """One worker at a time, signing in to CML before every call."""
    ec2 = session.client("ec2", endpoint_url=aws_url)
    cloudwatch = session.client("cloudwatch", endpoint_url=aws_url)
    sample = ids[:BASELINE_SAMPLE]
    requests_made = auths = 0
    counter.take()
    cpu, wall, others = cpu_seconds(), time.perf_counter(), stand_ins_cpu()
    now = datetime.now(UTC)
    http = requests.Session()
    for instance_id in sample:
        ec2.describe_instances(InstanceIds=[instance_id])
        ec2.describe_instance_status(
            InstanceIds=[instance_id], IncludeAllInstances=True
        )
        for namespace, metric in (
            ("AWS/EC2", "CPUUtilization"),
            ("CWAgent", "mem_used_percent"),
        ):
            cloudwatch.get_metric_statistics(
                Namespace=namespace,
                MetricName=metric,
                Dimensions=[{"Name": "InstanceId", "Value": instance_id}],
                StartTime=now - timedelta(minutes=10),
                EndTime=now,
                Period=300,
                Statistics=["Average"],
            )
        base = f"{sim_url}/{instance_id}/api/v0"

        def get(path: str, base: str = base) -> object:
            nonlocal requests_made, auths
            token = http.post(
                base + "/authenticate", json={"username": "admin", "password": "admin"}
            ).json()
            auths += 1
            requests_made += 1
            return http.get(
                base + path, headers={"Authorization": f"Bearer {token}"}
            ).json()

        for path in (
            "/system_information",
            "/system_health",
            "/system_stats",
            "/licensing",
        ):
            get(path)
        for lab_id in get("/labs?show_all=true"):  # type: ignore[union-attr]
            get(f"/labs/{lab_id}")
    scale = len(ids) / len(sample)
    return {
        "run": f"baseline (x{scale:.0f} of {len(sample)})",
        "wall_s": (time.perf_counter() - wall) * scale,
        "cpu_s": (cpu_seconds() - cpu) * scale,
        "stand_ins_cpu_s": (stand_ins_cpu() - others) * scale,
        "aws_calls": round(counter.take() * scale),
        "cml_requests": round(requests_made * scale),
        "cml_auths": round(auths * scale),
    }


def main() -> None:
    simulator, sim_url = start_simulator()
    moto, aws_url = start_moto()
    STAND_INS.update(simulator=simulator.pid, moto=moto.pid)
    settings = load_settings(
        {
            "SECRET_KEY": "bench-secret-key-123",
            "REDIS_URL": REDIS_URL,
            "MONGODB_URL": MONGODB_URL,
            "CML_PASSWORD": "admin",
            "CML_ENDPOINT": sim_url + "/{instance_id}",
        },
        environment="test",
    )
    rows = []
    try:
        for size in SIZES:
            requests.post(aws_url + "/moto-api/reset", timeout=10)
            connect_mongo(settings)
            database = get_db()
            database.client.drop_database(database.name)
            for _ in initialise(settings):
                pass
            redis = redis_from_url(settings.redis_url)
            redis.flushdb()
            session = boto3.Session(region_name="us-east-1")
            counter = AWSCallCounter(session)
            ctx = jobs.build_context(settings, redis)
            ctx.aws = aws.AWSClients(
                session=session, endpoint_url=aws_url, max_pool_connections=50
            )
            ids = launch(session, aws_url, size, sim_url)
            first = measure("first refresh", partial(refresh, ctx), counter)
            second = measure("second refresh", partial(refresh, ctx), counter)
            base = baseline(session, aws_url, ids, sim_url, counter)
            for row in (first, second, base):
                rows.append({"N": size, **row})
            rows.append(
                {
                    "N": size,
                    "run": "ratio baseline/ours (2nd)",
                    **{
                        k: base[k] / max(second[k], 1e-9)  # type: ignore[operator]
                        for k in (
                            "wall_s",
                            "cpu_s",
                            "stand_ins_cpu_s",
                            "aws_calls",
                            "cml_requests",
                        )
                    },
                    "cml_auths": None,
                }
            )
            for client in ctx.cml_clients.values():
                client.close()
    finally:
        for process in (simulator, moto):
            process.terminate()
            process.wait(timeout=10)

    stand_in = MONGODB_URL.startswith("mongomock:")
    storage = "in-process stand-in" if stand_in else MONGODB_URL
    print(
        f"\nRefresh of N workers, {LATENCY_MS} ms CML latency per request, "
        f"{os.cpu_count()} cores, MongoDB: {storage}"
    )
    header = (
        f"{'N':>4}  {'run':<26} {'wall s':>8} {'CPU s':>8} {'stand-ins':>10} "
        f"{'AWS calls':>10} {'CML reqs':>9} {'CML auths':>10}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        auths = "" if row["cml_auths"] is None else f"{row['cml_auths']:>10}"
        print(
            f"{row['N']:>4}  {row['run']:<26} {row['wall_s']:>8.2f} "
            f"{row['cpu_s']:>8.2f} {row['stand_ins_cpu_s']:>10.2f} "
            f"{row['aws_calls']:>10.0f} {row['cml_requests']:>9.0f} {auths}"
        )


if __name__ == "__main__":
    main()
