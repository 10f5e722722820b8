"""Fixtures for tests that talk to the CML simulator.

A test module loads them with ``pytest_plugins = ["simulator_fixtures"]``; the
plugin is registered once, so the session simulator is shared.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest

from backend.simulator import SimulatorServer, start_simulator


@pytest.fixture(scope="session")
def cml_simulator() -> Iterator[SimulatorServer]:
    """One HTTPS simulator for the session; its numbers do not drift."""
    server = start_simulator(drift=0, outage_hold=5)
    yield server
    server.stop()


@pytest.fixture
def controller_id(
    request: pytest.FixtureRequest, cml_simulator: SimulatorServer
) -> Iterator[str]:
    """A controller of this test alone, named after it so runs repeat exactly."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", request.node.name)
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    controller_id = f"{name[:50]}-{digest}"
    yield controller_id
    cml_simulator.clear_faults(controller_id)
