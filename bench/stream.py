"""Our event stream next to flask-sse, in one harness, with thousands of streams open.

Run ``.venv/bin/python bench/stream.py`` (``--clients 1000,4000 --broadcasts 10``
are the defaults). It talks only to 127.0.0.1, needs ``redis-server`` on the PATH,
and stops by itself in about three minutes.

How one measurement runs, for each server and each number of streams C:

* A private ``redis-server`` on a free port, so that ``CLIENT LIST`` shows only
  this run's connections (the harness names its own ``bench``).
* The server is one gunicorn process with ONE gevent worker, started with the
  production settings (``backend/gunicorn_conf.py``) from this file:
  ``stream:ours_app()`` builds the real app and creates the bench account the
  way ``cmlfleet init`` does (``ADMIN_USERNAME``/``ADMIN_PASSWORD`` and
  ``backend.bootstrap.initialise``, in the worker's own mongomock database);
  ``stream:peer_app()`` is a minimal Flask app with flask-sse's blueprint
  registered as its documentation shows (one Redis subscription per client).
* The harness signs in once and every stream of ours reuses that cookie.
* A load process (this file, ``load`` mode) opens C streams with gevent and raw
  sockets, waits until a warm-up broadcast has reached every one, then sends
  the broadcasts one second apart, each carrying its publish time, while a
  probe process times ``GET /healthz`` on a fresh connection every 50 ms.
* The harness reads the worker's RSS and CPU time from /proc around that.

Ours is published with ``backend.events.publish`` (stream append + announcement);
flask-sse's message is built with its ``Message`` class and published on its
channel, as ``sse.publish`` does, through one connection kept open rather than
the new connection ``sse.publish`` opens per call, which would add to its
latency a cost that is not its streaming.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
USERNAME = "bench"
PASSWORD = "bench-password-0123"
MARK = re.compile(rb"B(\d+)@(\d+\.\d+)")
OPENING = 50
#: A worker as the stream carries it, about the size of a real one.
WORKER = {
    "id": "6561f0c2a1b2c3d4e5f60718",
    "name": "cml-worker-07",
    "region": "us-east-1",
    "status": "running",
    "instance_type": "c5.2xlarge",
    "public_ip": "203.0.113.17",
    "https_endpoint": "https://203.0.113.17",
    "ec2_state": "running",
    "ec2_instance_status": "ok",
    "ec2_system_status": "ok",
    "ec2_detailed_monitoring": "enabled",
    "cloudwatch_cpu_utilization": 41.7,
    "cloudwatch_memory_utilization": 63.2,
    "cml_service_status": "available",
    "cml_version": "2.9.0+build.3",
    "cml_ready": True,
    "cml_labs_count": 6,
    "cml_labs_running": 3,
    "cml_nodes_total": 48,
    "cml_nodes_running": 22,
    "cml_allocated_cpus": 30,
    "cml_allocated_memory": 61440,
    "cml_cpu_count": 8,
    "cml_cpu_utilization": 38.5,
    "cml_memory_total": 67108864,
    "cml_memory_used": 40265318,
    "cml_disk_total": 214748364800,
    "cml_disk_used": 96636764160,
    "cml_is_licensed": True,
    "cml_license_registration": "COMPLETED",
    "cml_license_authorization": "AUTHORIZED",
    "aws_instance_id": "i-0a1b2c3d4e5f67890",
    "private_ip": "10.0.12.34",
    "ami_id": "ami-0123456789abcdef0",
    "ami_name": "CML-2.9.0-20250601",
    "aws_tags": {"Name": "cml-worker-07", "cmlfleet:managed": "true"},
    "last_error": None,
}


# --- the servers (imported by gunicorn's worker) ------------------------------


def ours_app() -> Any:
    """The real app, with the bench account created as ``cmlfleet init`` would."""
    from backend.app import configure_logging, create_app
    from backend.bootstrap import initialise
    from backend.settings import load_settings

    configure_logging()
    settings = load_settings()
    app = create_app(settings)
    with app.app_context():
        list(initialise(settings))
    return app


def peer_app() -> Any:
    """flask-sse as its documentation sets it up, plus the same /healthz."""
    from flask import Flask
    from flask_sse import sse

    app = Flask(__name__)
    app.config["REDIS_URL"] = os.environ["REDIS_URL"]
    app.register_blueprint(sse, url_prefix="/stream")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


KINDS = {
    "ours": ("stream:ours_app()", "/api/workers/events"),
    "flask-sse": ("stream:peer_app()", "/stream"),
}


# --- the load process ---------------------------------------------------------


def load(args: argparse.Namespace) -> None:
    """Open the streams, broadcast, and print what arrived when, as JSON."""
    import gevent
    import redis
    from gevent import socket as gsocket
    from gevent.lock import Semaphore

    raise_file_limit()
    clients = args.clients
    latest = [-1] * clients
    opened = [0]
    latencies: list[list[float]] = [[] for _ in range(args.broadcasts + 1)]
    publisher = redis.Redis.from_url(args.redis, client_name="bench")
    publish = publisher_for(args.kind, publisher)
    request = (
        f"GET {KINDS[args.kind][1]} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        f"Accept: text/event-stream\r\nCookie: {args.cookie}\r\n\r\n"
    ).encode()

    # Streams open at most OPENING at a time, as browsers come back after a
    # restart: each sign-in check holds a connection of the app's Redis pool
    # while it runs, and that pool refuses requests beyond its size.
    opening = Semaphore(OPENING)
    first_bytes_within = 30 if args.kind == "ours" else 0.05

    def stream(index: int) -> None:
        data: bytes | None = None
        with opening:
            sock = gsocket.create_connection(("127.0.0.1", args.port))
            sock.sendall(request)
            # Ours answers at once; flask-sse sends nothing before its first
            # event, so its stream counts as open after a moment of silence.
            with gevent.Timeout(first_bytes_within, False):
                data = sock.recv(65536)
        opened[0] += 1
        tail = b""
        while True:
            if data is None:
                data = sock.recv(65536)
            if not data:
                return
            now = time.time()
            for match in MARK.finditer(tail + data):
                seq = int(match.group(1))
                if seq > latest[index]:
                    latest[index] = seq
                    latencies[seq].append(now - float(match.group(2)))
            tail = data[-64:]
            data = None

    greenlets = [gevent.spawn(stream, index) for index in range(clients)]

    def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
        until = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > until:
                return False
            gevent.sleep(0.05)
        return True

    # Warm up only once every stream is open (and, for flask-sse, subscribed),
    # so that warm-up events do not compete with the connections for the CPU.
    if not wait_until(lambda: opened[0] == clients, 120):
        fail(f"only {opened[0]} of {clients} streams were answered")
    if args.kind != "ours":
        wait_until(lambda: publisher.pubsub_numsub("sse")[0][1] >= clients, 60)
    for _ in range(10):
        publish(0)
        if wait_until(lambda: min(latest) >= 0, 10):
            break
    else:
        fail(f"only {sum(s >= 0 for s in latest)} of {clients} streams received")
    print("READY", flush=True)
    sys.stdin.readline()

    for seq in range(1, args.broadcasts + 1):
        publish(seq)
        until = time.monotonic() + 10
        while sum(s >= seq for s in latest) < clients and time.monotonic() < until:
            gevent.sleep(0.01)
        gevent.sleep(1.0)
    print("DONE", flush=True)
    sys.stdin.readline()
    measured = [value for values in latencies[1:] for value in values]
    print(
        json.dumps(
            {
                "latencies": measured,
                "expected": clients * args.broadcasts,
            }
        ),
        flush=True,
    )
    gevent.killall(greenlets, block=False)
    publisher.close()


def publisher_for(kind: str, client: Any) -> Callable[[int], None]:
    """A function that broadcasts one event, stamped with the time it is sent."""

    def data(seq: int) -> dict[str, Any]:
        return {
            "worker": WORKER,
            "changes": {"cml_cpu_utilization": [37.9, 38.5]},
            "mark": f"B{seq}@{time.time():.6f}",
        }

    if kind == "ours":
        from backend.events import publish

        def ours(seq: int) -> None:
            publish(client, "worker.cml_metrics.updated", worker_id="w", data=data(seq))

        return ours

    from flask import Flask
    from flask import json as flask_json
    from flask_sse import Message

    # flask-sse serialises with the app's JSON provider, as in a view.
    Flask(__name__).app_context().push()

    def peer(seq: int) -> None:
        message = Message(data(seq), type="worker.cml_metrics.updated")
        client.publish("sse", flask_json.dumps(message.to_dict()))

    return peer


def probe(port: int, seconds: float) -> None:
    """Time GET /healthz on a new connection every 50 ms, as a browser would.

    It runs in a process of its own, so that the load process, busy reading
    thousands of streams, does not add its own delays to these timings.
    """
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    request += "Connection: close\r\n\r\n"
    timings = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(request.encode())
            while sock.recv(65536):
                pass
        timings.append(time.perf_counter() - started)
        time.sleep(0.05)
    print(json.dumps(timings), flush=True)


# --- the harness --------------------------------------------------------------


def main() -> None:
    if sys.argv[1:2] == ["probe"]:
        probe(int(sys.argv[2]), float(sys.argv[3]))
        return
    if sys.argv[1:2] == ["load"]:
        loader = argparse.ArgumentParser(prog="bench/stream.py load")
        loader.add_argument("--kind", choices=KINDS, required=True)
        loader.add_argument("--port", type=int, required=True)
        loader.add_argument("--clients", type=int, required=True)
        loader.add_argument("--broadcasts", type=int, required=True)
        loader.add_argument("--redis", required=True)
        loader.add_argument("--cookie", default="")
        load(loader.parse_args(sys.argv[2:]))
        return

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1000,4000")
    parser.add_argument("--broadcasts", type=int, default=10)
    parser.add_argument(
        "--servers", default=",".join(KINDS), help="which of: ours, flask-sse"
    )
    args = parser.parse_args()
    kinds = [kind for kind in KINDS if kind in args.servers.split(",")]
    raise_file_limit()
    counts = [int(c) for c in args.clients.split(",")]
    started = time.monotonic()
    rows = []
    # The servers' logs stay in the work directory when a run fails.
    workdir = tempfile.mkdtemp(prefix="bench-stream-")
    redis_process, redis_url = start_redis(Path(workdir))
    try:
        for clients in counts:
            for kind in kinds:
                print(f"measuring {kind} with {clients} streams ...", flush=True)
                rows.append(measure(kind, clients, args.broadcasts, redis_url, workdir))
    finally:
        redis_process.terminate()
        redis_process.wait(timeout=10)
    shutil.rmtree(workdir)
    report(rows, counts)
    print(f"\n(total {time.monotonic() - started:.0f} s)")


def measure(
    kind: str, clients: int, broadcasts: int, redis_url: str, workdir: str
) -> dict[str, Any]:
    import redis

    admin = redis.Redis.from_url(redis_url, client_name="bench")
    admin.flushall()
    log = Path(workdir) / f"{kind}-{clients}.log"
    server, port = start_server(kind, redis_url, log)
    try:
        worker = worker_pid(server.pid)
        cookie = sign_in(port) if kind == "ours" else ""
        rss_before = rss(worker)
        loader = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "load",
                f"--kind={kind}",
                f"--port={port}",
                f"--clients={clients}",
                f"--broadcasts={broadcasts}",
                f"--redis={redis_url}",
                f"--cookie={cookie}",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert loader.stdin is not None and loader.stdout is not None
        expect(loader, "READY", log)
        rss_open = rss(worker)
        connections = [c for c in admin.client_list() if c.get("name") != "bench"]
        cpu_before = cpu_seconds(worker)
        loader.stdin.write("go\n")
        loader.stdin.flush()
        prober = subprocess.Popen(
            [sys.executable, __file__, "probe", str(port), str(broadcasts)],
            stdout=subprocess.PIPE,
            text=True,
        )
        expect(loader, "DONE", log)
        cpu = cpu_seconds(worker) - cpu_before
        api = sorted(json.loads(prober.communicate(timeout=60)[0]))
        loader.stdin.write("report\n")
        loader.stdin.flush()
        result = json.loads(loader.stdout.readline())
        loader.wait(timeout=30)
    finally:
        server.terminate()
        server.wait(timeout=30)
        admin.close()

    latencies = sorted(result["latencies"])
    return {
        "kind": kind,
        "clients": clients,
        "memory_per_stream": (rss_open - rss_before) / clients,
        "redis": len(connections),
        "redis_hub": sum(
            c.get("name", "").startswith("cmlfleet-hub") for c in connections
        ),
        "delivered": len(latencies),
        "expected": result["expected"],
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "cpu_per_event": cpu / max(len(latencies), 1),
        "api_p50": percentile(api, 50),
        "api_p99": percentile(api, 99),
    }


def report(rows: list[dict[str, Any]], counts: list[int]) -> None:
    header = (
        f"{'server':<10} {'C':>5} {'KiB/stream':>10} {'redis conns':>11} "
        f"{'delivered':>15} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/event':>12} "
        f"{'API p50 ms':>10} {'API p99 ms':>10}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        redis_column = str(row["redis"])
        if row["kind"] == "ours":
            redis_column = f"{row['redis_hub']} (+{row['redis'] - row['redis_hub']})"
        print(
            f"{row['kind']:<10} {row['clients']:>5} "
            f"{row['memory_per_stream'] / 1024:>10.1f} {redis_column:>11} "
            f"{row['delivered']:>7}/{row['expected']:<7} "
            f"{row['p50'] * 1000:>8.1f} {row['p99'] * 1000:>8.1f} "
            f"{row['cpu_per_event'] * 1e6:>12.1f} "
            f"{row['api_p50'] * 1000:>10.1f} {row['api_p99'] * 1000:>10.1f}"
        )
    print(
        "\nredis conns for ours: the hub's named connections (+ the app's pool for "
        "sign-in checks and the API)"
    )

    if {row["kind"] for row in rows} != set(KINDS):
        return

    print("\nratios ours / flask-sse")
    for clients in counts:
        ours = next(r for r in rows if r["kind"] == "ours" and r["clients"] == clients)
        peer = next(r for r in rows if r["kind"] != "ours" and r["clients"] == clients)
        print(
            f"  C={clients}: memory {ratio(ours, peer, 'memory_per_stream')}, "
            f"redis {ratio(ours, peer, 'redis')}, p50 {ratio(ours, peer, 'p50')}, "
            f"p99 {ratio(ours, peer, 'p99')}, "
            f"CPU/event {ratio(ours, peer, 'cpu_per_event')}, "
            f"API p99 {ratio(ours, peer, 'api_p99')}"
        )

    top = max(counts)
    ours = next(r for r in rows if r["kind"] == "ours" and r["clients"] == top)
    peer = next(r for r in rows if r["kind"] != "ours" and r["clients"] == top)
    goals = [
        (
            f"memory per stream <= 0.5x flask-sse (C={top})",
            ours["memory_per_stream"] <= 0.5 * peer["memory_per_stream"],
        ),
        (
            "Redis connections for streaming <= 2 per process",
            all(r["redis_hub"] <= 2 for r in rows if r["kind"] == "ours"),
        ),
        (f"p99 <= 0.3x flask-sse at C={top}", ours["p99"] <= 0.3 * peer["p99"]),
        (f"API p99 < 50 ms with {top} streams open", ours["api_p99"] < 0.050),
        (
            "every event delivered to every stream",
            all(r["delivered"] == r["expected"] for r in rows if r["kind"] == "ours"),
        ),
    ]
    print("\ngoals")
    for text, met in goals:
        print(f"  [{'met' if met else 'MISSED'}] {text}")


def ratio(ours: dict[str, Any], peer: dict[str, Any], key: str) -> str:
    if not peer[key]:
        return "n/a"
    return f"{ours[key] / peer[key]:.2f}x"


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxclients",
            "10000",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    return process, f"redis://127.0.0.1:{port}/0"


def start_server(
    kind: str, redis_url: str, log_path: Path
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "bench-secret-key-0123456789abcdef",
        "MONGODB_URL": "mongomock://localhost/cmlfleet_bench",
        "ADMIN_USERNAME": USERNAME,
        "ADMIN_PASSWORD": PASSWORD,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "backend" / "gunicorn_conf.py"),
                "--workers",
                "1",
                "--no-control-socket",
                "--bind",
                f"127.0.0.1:{port}",
                KINDS[kind][0],
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                fail(f"the {kind} server did not start; see {log_path}")
            time.sleep(0.2)


def sign_in(port: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/login",
        data=json.dumps({"username": USERNAME, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Set-Cookie"].split(";", 1)[0]


def worker_pid(master: int) -> int:
    """gunicorn's single worker, the process that serves the streams."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    fail("gunicorn started no worker")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def expect(process: subprocess.Popen[str], word: str, log: Path) -> None:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != word:
        process.kill()
        fail(f"the load process said {line!r} instead of {word}; see {log}")


def raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                fail(f"nothing answers on port {port}")
            time.sleep(0.05)


def fail(message: str) -> NoReturn:
    print(f"bench/stream.py: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
