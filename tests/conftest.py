"""Shared fixtures: a real Redis (started when none answers) and MongoDB storage.

Storage is mongomock unless ``TEST_MONGODB_URL`` names a MongoDB server: then every
test runs against it, each in a database of its own that is dropped afterwards.
``TEST_MONGODB_URL=wire`` starts ``mongo_wire.py``'s server in this process and
uses that: the product then talks to its storage through pymongo as it does in
production, without a MongoDB server (no time series there: ``-m "not
real_server"`` leaves out what only a real one does).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from backend import demo_aws

pytest_plugins = ["fleet_fixtures"]

# moto reads its machine images when it is first imported: a small catalogue of
# CML images instead of thousands of public ones keeps every AWS test quick.
demo_aws.use_cml_images()
demo_aws.add_monitoring_calls()


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_redis_server(port: int, workdir: str) -> subprocess.Popen[bytes]:
    """Start a throwaway redis-server on ``port`` and wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed; `make test` installs it")
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
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _answers("127.0.0.1", port):
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"redis-server on port {port} did not start")
        time.sleep(0.05)
    return process


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a Redis that answers: 6379 if one runs, else our own."""
    if _answers("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379"
        return
    process = start_redis_server(6390, str(tmp_path_factory.mktemp("redis")))
    yield "redis://127.0.0.1:6390"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A flushed Redis database for one test (``TEST_REDIS_DB``, default 15)."""
    url = f"{redis_server}/{os.environ.get('TEST_REDIS_DB', '15')}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


# --- the web app --------------------------------------------------------------

import itertools  # noqa: E402

from backend.settings import Settings, load_settings  # noqa: E402

_databases = itertools.count()
REAL_MONGODB_URL = os.environ.get("TEST_MONGODB_URL")
if REAL_MONGODB_URL == "wire":
    import mongo_wire

    REAL_MONGODB_URL = mongo_wire.serve().url
    os.environ["TEST_MONGODB_URL"] = REAL_MONGODB_URL


def _mongodb_url() -> str:
    name = f"cmlfleet_test_{os.getpid()}_{next(_databases)}"
    if REAL_MONGODB_URL:
        return urlunsplit(urlsplit(REAL_MONGODB_URL)._replace(path="/" + name))
    return f"mongomock://localhost/{name}"


@pytest.fixture(autouse=True, scope="session")
def quick_password_hashing():
    """Argon2id with a small cost: the same algorithm, a fraction of the time."""
    from argon2 import PasswordHasher

    from backend import auth

    original = auth.hasher
    auth.hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    auth.hasher = original


@pytest.fixture
def settings(redis_url: str) -> Settings:
    env = {
        "SECRET_KEY": "test-secret-key-0123456789",
        "REDIS_URL": redis_url,
        "MONGODB_URL": _mongodb_url(),
        "CML_PASSWORD": "admin",
        "CML_ENDPOINT": "https://127.0.0.1:9443/{instance_id}",
        "SSE_HEARTBEAT_SECONDS": "1",
    }
    return load_settings(env, environment="test")


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials, so nothing can ever reach a real AWS account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def mocked_aws(aws_credentials):
    """moto's in-process AWS for the length of a test."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def app(settings: Settings, mocked_aws):
    from backend.app import create_app
    from backend.bootstrap import initialise

    app = create_app(settings, TESTING=True)
    with app.app_context():
        list(initialise(settings))
    yield app
    import mongoengine

    from backend.app import close_app

    close_app(app)
    if REAL_MONGODB_URL:
        mongoengine.get_connection().drop_database(mongoengine.get_db().name)
    mongoengine.disconnect()


class ApiClient:
    """A Flask test client that signs in and sends the CSRF header like the SPA."""

    def __init__(self, app, username: str | None = None, password: str = "") -> None:
        self.client = app.test_client()
        self.csrf = ""
        if username:
            response = self.client.post(
                "/api/auth/login", json={"username": username, "password": password}
            )
            assert response.status_code == 200, response.get_json()
            self.csrf = response.get_json()["csrf_token"]

    def request(self, method: str, path: str, **kwargs):
        headers = kwargs.pop("headers", {})
        if self.csrf and "X-CSRF-Token" not in headers:
            headers["X-CSRF-Token"] = self.csrf
        response = self.client.open(
            path, method=method, headers=headers, buffered=False, **kwargs
        )
        # Read the body now and release what a response may hold open (a static
        # file); an event stream never ends, so it is closed unread.
        if response.mimetype != "text/event-stream":
            response.get_data()
        response.close()
        return response

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs):
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs):
        return self.request("DELETE", path, **kwargs)


ADMIN = ("alice", "alice-password-1")
USER = ("bob", "bob-password-12")


@pytest.fixture
def accounts(app):
    from backend.auth import create_user

    with app.app_context():
        create_user(*ADMIN, "admin")
        create_user(*USER, "user")
    return {"admin": ADMIN, "user": USER}


@pytest.fixture
def anonymous(app, accounts) -> ApiClient:
    return ApiClient(app)


@pytest.fixture
def admin(app, accounts) -> ApiClient:
    return ApiClient(app, *ADMIN)


@pytest.fixture
def user(app, accounts) -> ApiClient:
    return ApiClient(app, *USER)
