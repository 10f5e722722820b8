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


@pytest.fixture
def one_database(environment, monkeypatch):
    """Every command of the test on one database: the in-process stand-in starts
    empty at each connection, where a real MongoDB would keep what it holds."""
    from backend import cli as module

    connect = module._connect
    connected = []

    def connect_once(settings):
        if not connected:
            connect(settings)
            connected.append(settings)

    monkeypatch.setattr(module, "_connect", connect_once)


def add_user(name: str, role: str, password: str = "a-long-password-1") -> None:
    result = CliRunner().invoke(
        cli, ["users", "add", name, "--role", role, "--password-stdin"], input=password
    )
    assert result.exit_code == 0, result.output


def open_session(redis_client, name: str) -> str:
    """A signed-in session of ``name``, as the web app stores it."""
    sid = f"cli-test-{name}"
    redis_client.hset(f"cmlfleet:session:{sid}", mapping={"username": name})
    return sid


def test_users_list_remove_and_set_role(one_database, mocked_aws, redis_client):
    add_user("erin", "admin")
    add_user("frank", "user")
    add_user("grace", "user")
    runner = CliRunner()
    sessions = [open_session(redis_client, "frank"), open_session(redis_client, "erin")]

    listed = runner.invoke(cli, ["users", "list"])
    assert listed.exit_code == 0, listed.output
    rows = [line.split("\t")[:2] for line in listed.output.splitlines()]
    assert rows == [["erin", "admin"], ["frank", "user"], ["grace", "user"]]

    removed = runner.invoke(cli, ["users", "remove", "frank"])
    assert removed.exit_code == 0, removed.output
    assert removed.output.strip() == "user frank removed; 1 session ended"
    assert User.objects(username="frank").first() is None
    assert not redis_client.exists(f"cmlfleet:session:{sessions[0]}")
    assert redis_client.exists(f"cmlfleet:session:{sessions[1]}")

    promoted = runner.invoke(cli, ["users", "set-role", "grace", "--role", "admin"])
    assert promoted.exit_code == 0, promoted.output
    assert promoted.output.strip() == "user grace has role admin; 0 sessions ended"
    assert User.objects.get(username="grace").role == "admin"


def test_users_set_password_signs_the_account_out(
    one_database, mocked_aws, redis_client
):
    from backend.auth import verify_password

    add_user("heidi", "user")
    sid = open_session(redis_client, "heidi")

    result = CliRunner().invoke(
        cli,
        ["users", "set-password", "heidi", "--password-stdin"],
        input="another-long-password\n",
    )

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "password of heidi changed; 1 session ended"
    assert verify_password(User.objects.get(username="heidi"), "another-long-password")
    assert not redis_client.exists(f"cmlfleet:session:{sid}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["users", "remove", "nobody"], "no user is named 'nobody'"),
        (["users", "set-role", "zoe", "--role", "user"], "no user is named 'zoe'"),
        (["users", "remove", "ivan"], "ivan is the only admin: add another first"),
        (
            ["users", "set-role", "ivan", "--role", "user"],
            "ivan is the only admin: add another first",
        ),
    ],
)
def test_users_commands_refuse_in_one_line(one_database, mocked_aws, argv, message):
    add_user("ivan", "admin")

    result = CliRunner().invoke(cli, argv)

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"Error: {message}"]
    assert User.objects.get(username="ivan").role == "admin"


def test_audit_shows_the_newest_entries_and_who_ran_the_command(
    one_database, mocked_aws
):
    import getpass

    add_user("judy", "admin")
    add_user("mallory", "user")
    runner = CliRunner()
    for role in ("admin", "user", "admin"):
        changed = runner.invoke(cli, ["users", "set-role", "mallory", "--role", role])
        assert changed.exit_code == 0, changed.output

    result = runner.invoke(cli, ["audit", "--action", "user.role", "--limit", "2"])

    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.output.splitlines()]
    assert [row[1:6] for row in rows] == [
        [f"{getpass.getuser()} (cli)", "user.role", "mallory", "ok", "now user"],
        [f"{getpass.getuser()} (cli)", "user.role", "mallory", "ok", "now admin"],
    ]
    assert rows[0][0] <= rows[1][0]
    assert rows[0][0].endswith("+00:00")
    added = runner.invoke(cli, ["audit", "--action", "user.add"]).output.splitlines()
    assert [line.split("\t")[3:6] for line in added] == [
        ["judy", "ok", "role admin"],
        ["mallory", "ok", "role user"],
    ]


def test_audit_refuses_a_bad_limit_in_one_line(one_database, mocked_aws):
    result = CliRunner().invoke(cli, ["audit", "--limit", "0"])

    assert result.exit_code == 2
    assert "Invalid value for '--limit'" in result.output


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
