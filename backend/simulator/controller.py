"""One simulated CML controller: its seeded labs, computes and users, and its drift.

Everything a controller starts with is drawn from a random generator seeded with
the controller id, so the same id always starts with the same labs, nodes,
computes and numbers. Time moves the numbers: CPU and memory wander along smooth
curves and labs start and stop now and then. Drift is computed lazily from the
time elapsed since the last look, so no background thread is needed, and a drift
rate of 0 freezes a controller for deterministic tests.
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

DEFAULT_VERSION = "2.9.1+build.7"

#: Virtual seconds between two chances of a lab starting or stopping.
LAB_EVENT_PERIOD = 20.0
LAB_EVENT_CHANCE = 0.35
#: A controller left alone for long replays at most this many lab events.
MAX_LAB_EVENTS_PER_LOOK = 32

GIB = 1024**3
MIB = 1024**2

_EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
_VERSION_PATTERN = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{1,2})(.{0,32})$")


class Version(NamedTuple):
    """The numeric part of a CML release string such as ``2.9.1+build.7``."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION_PATTERN.match(text)
        if match is None:
            raise ValueError(f"not a CML version: {text!r}")

        return cls(int(match[1]), int(match[2]), int(match[3]))


class NodeKind(NamedTuple):
    definition: str
    image: str | None
    cpus: int
    ram_mib: int
    interface_label: str
    interfaces: int


NODE_KINDS = (
    NodeKind("iosv", "iosv-159-3-m8", 1, 768, "GigabitEthernet0/{n}", 4),
    NodeKind("iosvl2", "iosvl2-2020", 1, 768, "GigabitEthernet0/{n}", 8),
    NodeKind("csr1000v", "csr1000v-17-03-08a", 1, 3072, "GigabitEthernet{m}", 4),
    NodeKind("nxosv9000", "nxosv9300-10-4-3-f", 2, 8192, "Ethernet1/{m}", 8),
    NodeKind("alpine", "alpine-3-20-base", 1, 512, "eth{n}", 2),
    NodeKind("ubuntu", "ubuntu-24-04-20240825", 1, 2048, "ens{n}", 2),
    NodeKind("unmanaged_switch", None, 0, 0, "port{n}", 8),
)
_KIND_WEIGHTS = (5, 3, 2, 1, 3, 2, 1)

LAB_TITLES = (
    "Branch Test",
    "CCNA Practice",
    "OSPF Multi-Area",
    "BGP Peering",
    "Campus Core",
    "EIGRP Lab",
    "MPLS L3VPN",
    "DMVPN Hub and Spoke",
    "QoS Sandbox",
    "Security Baseline",
    "Automation Pod",
    "VXLAN EVPN Fabric",
    "IPv6 Transition",
    "Spanning Tree Study",
)
LAB_DESCRIPTIONS = (
    "",
    "Practice topology for the routing chapter.",
    "Customer escalation reproduction.",
    "Sandbox for config automation scripts.",
    "Lab for the Tuesday study group.",
)
EXTRA_USERS = (
    ("alice", "Alice Nguyen"),
    ("bruno", "Bruno Costa"),
    ("chen", "Chen Wei"),
    ("student1", "Student One"),
)


@dataclass
class Faults:
    """What goes wrong with a controller's answers; all off by default.

    Attributes:
        latency_ms: delay before each API answer, slept cooperatively.
        outage: hold each request without an answer (the client times out).
        disconnect: close each connection without an answer.
        error_status: answer every API call with this HTTP status.
    """

    latency_ms: int = 0
    outage: bool = False
    disconnect: bool = False
    error_status: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        """Build faults from a JSON object; raises ValueError naming a bad field."""
        unknown = set(data) - {*cls.__dataclass_fields__, "revoke_tokens"}
        if unknown:
            raise ValueError(f"unknown fault: {sorted(unknown)[0]}")

        latency = data.get("latency_ms", 0)
        if isinstance(latency, bool) or not isinstance(latency, int | float):
            raise ValueError("latency_ms must be a number of milliseconds")
        if latency < 0:
            raise ValueError("latency_ms must not be negative")

        status = data.get("error_status")
        if status is not None and (
            isinstance(status, bool)
            or not isinstance(status, int)
            or not 400 <= status <= 599
        ):
            raise ValueError("error_status must be an HTTP status from 400 to 599")

        for flag in ("outage", "disconnect", "revoke_tokens"):
            if not isinstance(data.get(flag, False), bool):
                raise ValueError(f"{flag} must be true or false")

        return cls(
            latency_ms=int(latency),
            outage=data.get("outage", False),
            disconnect=data.get("disconnect", False),
            error_status=status,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Counters:
    """Requests a controller received, for benchmarks that count CML calls."""

    requests: int = 0
    authentications: int = 0
    failed_authentications: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "authentications": self.authentications,
            "failed_authentications": self.failed_authentications,
            "by_endpoint": dict(self.by_endpoint),
        }


@dataclass
class User:
    id: str
    username: str
    fullname: str
    admin: bool
    created: datetime


@dataclass
class Interface:
    id: str
    node_id: str
    label: str
    slot: int
    mac_address: str
    in_use: bool = False


@dataclass
class Node:
    id: str
    label: str
    kind: NodeKind
    compute_id: str
    x: int
    y: int
    interfaces: list[Interface]
    state: str = "DEFINED_ON_CORE"

    @property
    def is_vm(self) -> bool:
        return self.kind.cpus > 0


@dataclass
class Link:
    id: str
    interface_a: Interface
    interface_b: Interface
    label: str


@dataclass
class Lab:
    id: str
    title: str
    description: str
    owner: User
    created: datetime
    modified: datetime
    nodes: list[Node]
    links: list[Link]
    state: str = "DEFINED_ON_CORE"

    def node(self, node_id: str) -> Node | None:
        return next((node for node in self.nodes if node.id == node_id), None)

    def set_state(self, state: str) -> None:
        """Move the lab and every node at once: the simulator converges instantly."""
        self.state = state
        node_state = "BOOTED" if state == "STARTED" else state
        for node in self.nodes:
            node.state = node_state


@dataclass
class Compute:
    id: str
    hostname: str
    is_controller: bool
    cpu_count: int
    cpu_model: str
    memory_total: int
    disk_total: int
    idle_cpu: float
    base_memory: int
    base_disk: int
    curve: tuple[float, float, float, float]


@dataclass
class ComputeLoad:
    """A compute's numbers at one moment, derived from its nodes and the clock."""

    compute: Compute
    cpu_percent: float
    load: tuple[float, float, float]
    memory_used: int
    disk_used: int
    total_nodes: int
    running_nodes: int
    allocated_cpus: int
    allocated_memory_kib: int
    predicted_cpus: int


class Controller:
    """A simulated controller; thread-safe, since tests poke it from outside."""

    def __init__(
        self,
        controller_id: str,
        *,
        admin_username: str = "admin",
        version: str = DEFAULT_VERSION,
        drift: float = 1.0,
        token_lifetime: float = 86400,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = controller_id
        self.version = version
        self.drift = drift
        self.token_lifetime = token_lifetime
        self.ready = True
        self.healthy = True
        self.licensed = True
        self.faults = Faults()
        self.counters = Counters()
        self.lock = threading.RLock()
        self.sessions: dict[str, tuple[str, float]] = {}
        self._clock = clock
        self._seen_at = clock()

        rng = random.Random(f"cml-simulator/{controller_id}")
        self.product_uuid = self._uuid(rng)
        self.users = self._seed_users(rng, admin_username)
        self.computes = self._seed_computes(rng)
        self.labs = self._seed_labs(rng)
        self._virtual_time = rng.uniform(0, 3600)
        self._lab_events_done = int(self._virtual_time // LAB_EVENT_PERIOD)

    @property
    def parsed_version(self) -> Version:
        return Version.parse(self.version)

    @property
    def admin(self) -> User:
        return self.users[0]

    def lab(self, lab_id: str) -> Lab | None:
        return next((lab for lab in self.labs if lab.id == lab_id), None)

    def user(self, user_id: str) -> User | None:
        return next((user for user in self.users if user.id == user_id), None)

    def configure(self, **settings: Any) -> None:
        """Change what the controller reports; ValueError names a bad setting.

        Settings: ``version``, ``ready``, ``healthy``, ``licensed``, ``drift``
        and ``token_lifetime`` (seconds, for tokens issued from now on).
        """
        unknown = set(settings) - set(self.settings())
        if unknown:
            raise ValueError(f"unknown setting: {sorted(unknown)[0]}")

        if "version" in settings:
            Version.parse(str(settings["version"]))
        for flag in ("ready", "healthy", "licensed"):
            if flag in settings and not isinstance(settings[flag], bool):
                raise ValueError(f"{flag} must be true or false")
        for name in ("drift", "token_lifetime"):
            value = settings.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if value < 0:
                raise ValueError(f"{name} must not be negative")

        with self.lock:
            self.advance()
            for name, value in settings.items():
                setattr(self, name, value)

    def settings(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "ready": self.ready,
            "healthy": self.healthy,
            "licensed": self.licensed,
            "drift": self.drift,
            "token_lifetime": self.token_lifetime,
        }

    def advance(self) -> None:
        """Bring drift up to now: move virtual time and replay due lab events."""
        with self.lock:
            now = self._clock()
            self._virtual_time += max(0.0, now - self._seen_at) * self.drift
            self._seen_at = now

            due = int(self._virtual_time // LAB_EVENT_PERIOD)
            first = max(self._lab_events_done + 1, due - MAX_LAB_EVENTS_PER_LOOK + 1)
            for tick in range(first, due + 1):
                self._maybe_toggle_a_lab(tick)
            self._lab_events_done = max(self._lab_events_done, due)

    def compute_loads(self) -> list[ComputeLoad]:
        with self.lock:
            return [self._load(compute) for compute in self.computes]

    def _maybe_toggle_a_lab(self, tick: int) -> None:
        rng = random.Random(f"cml-simulator/{self.id}/tick/{tick}")
        if not self.labs or rng.random() >= LAB_EVENT_CHANCE:
            return

        lab = rng.choice(self.labs)
        lab.set_state("STOPPED" if lab.state == "STARTED" else "STARTED")

    def _load(self, compute: Compute) -> ComputeLoad:
        nodes = [
            node
            for lab in self.labs
            for node in lab.nodes
            if node.compute_id == compute.id and node.is_vm
        ]
        running = [node for node in nodes if node.state == "BOOTED"]
        allocated_cpus = sum(node.kind.cpus for node in running)
        allocated_mib = sum(node.kind.ram_mib for node in running)

        amplitude_a, period_a, amplitude_b, period_b = compute.curve
        t = self._virtual_time
        wobble = amplitude_a * math.sin(2 * math.pi * t / period_a) + (
            amplitude_b * math.sin(2 * math.pi * t / period_b + 1.3)
        )
        busy = 30.0 * allocated_cpus / compute.cpu_count
        cpu_percent = min(99.5, max(0.5, compute.idle_cpu + busy + wobble))
        load_now = compute.cpu_count * cpu_percent / 100
        load = (
            round(load_now, 4),
            round(load_now * 0.94, 4),
            round(load_now * 0.9, 4),
        )

        memory_used = int(
            compute.base_memory + allocated_mib * MIB * 0.85 + wobble * 64 * MIB
        )
        memory_used = min(int(compute.memory_total * 0.97), max(GIB, memory_used))
        disk_used = min(
            int(compute.disk_total * 0.95),
            compute.base_disk + len(nodes) * 3 * GIB // 2,
        )

        return ComputeLoad(
            compute=compute,
            cpu_percent=cpu_percent,
            load=load,
            memory_used=memory_used,
            disk_used=disk_used,
            total_nodes=len(nodes),
            running_nodes=len(running),
            allocated_cpus=allocated_cpus,
            allocated_memory_kib=allocated_mib * 1024,
            predicted_cpus=sum(node.kind.cpus for node in nodes),
        )

    @staticmethod
    def _uuid(rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def _seed_users(self, rng: random.Random, admin_username: str) -> list[User]:
        created = _EPOCH - timedelta(days=rng.randint(200, 900))
        users = [User(self._uuid(rng), admin_username, "", True, created)]
        extras = [user for user in EXTRA_USERS if user[0] != admin_username]
        for username, fullname in rng.sample(extras, rng.randint(1, 2)):
            joined = created + timedelta(days=rng.randint(1, 150))
            users.append(User(self._uuid(rng), username, fullname, False, joined))
        return users

    def _seed_computes(self, rng: random.Random) -> list[Compute]:
        count = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
        computes = []
        for index in range(count):
            cpu_count = rng.choice((8, 16, 32, 48))
            memory_total = cpu_count * rng.choice((2, 4, 8)) * GIB
            disk_total = rng.choice((120, 250, 500, 1000)) * 1000**3
            computes.append(
                Compute(
                    id=self._uuid(rng),
                    hostname="cml-controller" if index == 0 else f"cml-compute-{index}",
                    is_controller=index == 0,
                    cpu_count=cpu_count,
                    cpu_model=rng.choice(
                        (
                            "Intel(R) Xeon(R) Platinum 8275CL CPU @ 3.00GHz",
                            "Intel(R) Xeon(R) Platinum 8124M CPU @ 3.00GHz",
                            "AMD EPYC 7R32",
                        )
                    ),
                    memory_total=memory_total,
                    disk_total=disk_total,
                    idle_cpu=rng.uniform(4.0, 9.0),
                    base_memory=int(rng.uniform(1.5, 3.0) * GIB),
                    base_disk=int(disk_total * rng.uniform(0.12, 0.3)),
                    curve=(
                        rng.uniform(1.0, 3.0),
                        rng.uniform(90, 180),
                        rng.uniform(0.5, 1.5),
                        rng.uniform(23, 47),
                    ),
                )
            )
        return computes

    def _seed_labs(self, rng: random.Random) -> list[Lab]:
        titles = rng.sample(LAB_TITLES, rng.randint(2, 6))
        labs = []
        for index, title in enumerate(titles):
            owner = self.users[0] if rng.random() < 0.6 else rng.choice(self.users)
            created = _EPOCH - timedelta(
                days=rng.randint(1, 180), seconds=rng.randint(0, 86399)
            )
            modified = created + timedelta(seconds=rng.randint(0, 30 * 86400))
            lab = Lab(
                id=self._uuid(rng),
                title=title,
                description=rng.choice(LAB_DESCRIPTIONS),
                owner=owner,
                created=created,
                modified=modified,
                nodes=[],
                links=[],
            )
            self._seed_topology(rng, lab, index)
            lab.set_state(
                rng.choices(
                    ("STARTED", "STOPPED", "DEFINED_ON_CORE"), weights=(4, 3, 3)
                )[0]
            )
            labs.append(lab)
        return labs

    def _seed_topology(self, rng: random.Random, lab: Lab, lab_index: int) -> None:
        counts: Counter[str] = Counter()
        for position in range(rng.randint(2, 8)):
            kind = rng.choices(NODE_KINDS, weights=_KIND_WEIGHTS)[0]
            node_id = self._uuid(rng)
            label = f"{kind.definition.split('_')[0]}-{counts[kind.definition]}"
            counts[kind.definition] += 1
            interfaces = [
                Interface(
                    id=self._uuid(rng),
                    node_id=node_id,
                    label=kind.interface_label.format(n=slot, m=slot + 1),
                    slot=slot,
                    mac_address=f"52:54:00:{lab_index:02x}:{position:02x}:{slot:02x}",
                )
                for slot in range(kind.interfaces)
            ]
            compute = self.computes[(position + lab_index) % len(self.computes)]
            lab.nodes.append(
                Node(
                    id=node_id,
                    label=label,
                    kind=kind,
                    compute_id=compute.id,
                    x=(position % 4) * 200 - 300,
                    y=(position // 4) * 160 - 80,
                    interfaces=interfaces,
                )
            )

        for position, node in enumerate(lab.nodes[1:], start=1):
            peer = lab.nodes[rng.randrange(position)]
            self._connect(rng, lab, peer, node)

    def _connect(self, rng: random.Random, lab: Lab, a: Node, b: Node) -> None:
        free_a = next((i for i in a.interfaces if not i.in_use), None)
        free_b = next((i for i in b.interfaces if not i.in_use), None)
        if free_a is None or free_b is None:
            return

        free_a.in_use = free_b.in_use = True
        label = f"{a.label}-{free_a.label}<->{b.label}-{free_b.label}"
        lab.links.append(Link(self._uuid(rng), free_a, free_b, label))


class Fleet:
    """Every controller one simulator hosts, created on first use.

    Args:
        username, password: the credentials every controller accepts.
        token_lifetime: seconds from a token's issue to its ``exp``.
        drift: default drift rate for new controllers (1.0 is the normal pace).
        version: the CML release new controllers report.
        clock: monotonic clock that drives drift; tests may pass their own.
    """

    ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

    def __init__(
        self,
        *,
        username: str = "admin",
        password: str = "admin",
        token_lifetime: float = 86400,
        drift: float = 1.0,
        version: str = DEFAULT_VERSION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        Version.parse(version)
        self.username = username
        self.password = password
        self.token_lifetime = token_lifetime
        self.drift = drift
        self.version = version
        self._clock = clock
        self._controllers: dict[str, Controller] = {}
        self._lock = threading.Lock()

    def controller(self, controller_id: str) -> Controller:
        """The controller with this id, seeded and added if it is new."""
        if not self.ID_PATTERN.match(controller_id):
            raise ValueError(f"not a controller id: {controller_id!r}")

        with self._lock:
            controller = self._controllers.get(controller_id)
            if controller is None:
                controller = Controller(
                    controller_id,
                    admin_username=self.username,
                    version=self.version,
                    drift=self.drift,
                    token_lifetime=self.token_lifetime,
                    clock=self._clock,
                )
                self._controllers[controller_id] = controller
            return controller

    def controllers(self) -> list[Controller]:
        with self._lock:
            return list(self._controllers.values())

    def precreate(self, count: int) -> list[str]:
        """Create ``cml-001`` … ``cml-<count>`` and return their ids."""
        ids = [f"cml-{number:03d}" for number in range(1, count + 1)]
        for controller_id in ids:
            self.controller(controller_id)
        return ids
