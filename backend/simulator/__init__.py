"""A stand-in for CML 2.9 controllers, many of them behind one HTTP(S) server.

Each controller lives under its own path prefix,
``https://127.0.0.1:<port>/<controller-id>/api/v0/...``, and is created, seeded
from its id, the first time anything asks for it. Tests and benchmarks inject
faults and read counters under ``/<controller-id>/_sim/``; see ``api``.

Start one in the background with ``start_simulator()`` or in the foreground with
``serve_forever()``.
"""

from backend.simulator.api import SimulatorApp
from backend.simulator.controller import DEFAULT_VERSION, Controller, Faults, Fleet
from backend.simulator.server import (
    SimulatorProcess,
    SimulatorServer,
    serve_forever,
    start_simulator,
)

__all__ = [
    "DEFAULT_VERSION",
    "Controller",
    "Faults",
    "Fleet",
    "SimulatorApp",
    "SimulatorProcess",
    "SimulatorServer",
    "serve_forever",
    "start_simulator",
]
