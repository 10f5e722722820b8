"""The cmlfleet command as an operator meets it."""

import pytest
from click.testing import CliRunner

from backend.cli import cli
from backend.models import User


@pytest.fixture
def environment(monkeypatch, settings, simulator):
    values = {
        "SECRET_KEY": settings.secret_key,
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": "mongomock://localhost/cli",
        "CML_PASSWORD": "admin",
        "CML_ENDPOINT": simulator.url + "/{instance_id}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_init_creates_the_first_admin_once(environment, monkeypatch, mocked_aws):
    monkeypatch.setenv("ADMIN_USERNAME", "root")
    monkeypatch.setenv("ADMIN_PASSWORD", "a-long-admin-password")
    runner = CliRunner()

    first = runner.invoke(cli, ["init"])

    assert first.exit_code == 0, first.output
    assert "admin root created" in first.output
    assert User.objects.get(username="root").role == "admin"


def test_users_add_reads_the_password_from_stdin(environment, mocked_aws):
    result = CliRunner().invoke(
        cli,
        ["users", "add", "carol", "--role", "user", "--password-stdin"],
        input="carol-password-123\n",
    )

    assert result.exit_code == 0, result.output
    assert User.objects.get(username="carol").role == "user"


def test_users_add_refuses_a_short_password_in_one_line(environment, mocked_aws):
    result = CliRunner().invoke(
        cli,
        ["users", "add", "dave", "--role", "admin", "--password-stdin"],
        input="short\n",
    )

    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [
        "Error: the password must have at least 10 characters"
    ]


def test_refresh_prints_a_one_line_summary(environment, fleet):
    fleet.launch("lab", count=2)

    result = CliRunner().invoke(cli, ["refresh"])

    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("2 workers seen, 2 changed, 0 failed")
    assert summary.endswith(" s")


def test_refresh_of_an_unknown_worker_is_one_line(environment, fleet):
    result = CliRunner().invoke(
        cli, ["refresh", "--worker", "64b7f0000000000000000000"]
    )

    assert result.exit_code != 0
    assert "no worker 64b7f0000000000000000000" in result.output
