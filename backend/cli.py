"""The ``cmlfleet`` command.

Imports of the product happen inside each command, so that ``web`` and ``demo``
can patch the standard library for gevent before anything else loads.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from typing import Any

import click

GEVENT_COMMANDS = {"demo", "simulate-cml"}


def _settings(**overrides: Any) -> Any:
    from backend.errors import ConfigError
    from backend.settings import load_settings

    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None


def _connect(settings: Any) -> None:
    from backend.connections import connect_mongo

    connect_mongo(settings)


@click.group()
def cli() -> None:
    """CML Fleet: a live control room for Cisco Modeling Labs workers on AWS."""
    from backend.app import configure_logging

    configure_logging()


@cli.command()
def init() -> None:
    """Create indexes, the history collection and the first admin."""
    from backend.bootstrap import initialise

    settings = _settings()
    _connect(settings)
    for line in initialise(settings):
        click.echo(line)


@cli.group()
def users() -> None:
    """Manage accounts."""


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _redis(settings: Any) -> Any:
    from backend.connections import redis_from_url

    return redis_from_url(settings.redis_url)


def _operator() -> str:
    """Who ran an account command, for the audit trail."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # a container user with no name
        name = f"uid {os.getuid()}"
    return f"{name} (cli)"


def _account_change(change: Callable[..., int], *args: Any) -> int:
    """Run an account change against MongoDB and Redis; its refusal is one line."""
    settings = _settings()
    _connect(settings)
    try:
        return change(_redis(settings), *args, actor=_operator())
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


def _sessions(count: int) -> str:
    return f"{count} session{'' if count == 1 else 's'} ended"


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "user"]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def users_add(name: str, role: str, password_stdin: bool) -> None:
    """Add the account NAME with ROLE."""
    from backend.auth import check_password_strength, create_user
    from backend.models import User, audit

    settings = _settings()
    _connect(settings)
    if User.objects(username=name).first() is not None:
        raise click.ClickException(f"user {name!r} exists already")
    password = _read_password(password_stdin)
    try:
        check_password_strength(password)
        create_user(name, password, role)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    audit("user.add", "ok", actor=_operator(), target=name, detail=f"role {role}")
    click.echo(f"user {name} added with role {role}")


@users.command("list")
def users_list() -> None:
    """List the accounts: name, role, created."""
    from backend.models import User

    _connect(_settings())
    for user in User.objects.order_by("username"):
        created = user.created_at.strftime("%Y-%m-%d %H:%M") if user.created_at else ""
        click.echo(f"{user.username}\t{user.role}\t{created}")


@users.command("remove")
@click.argument("name")
def users_remove(name: str) -> None:
    """Remove the account NAME and sign it out everywhere."""
    from backend.auth import remove_user

    ended = _account_change(remove_user, name)
    click.echo(f"user {name} removed; {_sessions(ended)}")


@users.command("set-role")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "user"]), required=True)
def users_set_role(name: str, role: str) -> None:
    """Give NAME another ROLE; its sessions end so it signs in with the new one."""
    from backend.auth import change_role

    ended = _account_change(change_role, name, role)
    click.echo(f"user {name} has role {role}; {_sessions(ended)}")


@users.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
def users_set_password(name: str, password_stdin: bool) -> None:
    """Set a new password for NAME and sign it out everywhere."""
    from backend.auth import change_password

    password = _read_password(password_stdin)
    ended = _account_change(change_password, name, password)
    click.echo(f"password of {name} changed; {_sessions(ended)}")


@cli.command("audit")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--actor", help="Only what this account did.")
@click.option("--action", help="Only this action (login, terminate, user.role, ...).")
@click.option("--target", help="Only what concerns this worker, region or account.")
def audit_trail(
    limit: int, actor: str | None, action: str | None, target: str | None
) -> None:
    """Show the newest entries of the audit trail, oldest first."""
    from backend.models import AuditEntry

    _connect(_settings())
    query = {
        name: value
        for name, value in (("actor", actor), ("action", action), ("target", target))
        if value
    }
    entries = list(AuditEntry.objects(**query).order_by("-at").limit(limit))
    for entry in reversed(entries):
        fields = (
            entry.at.isoformat(timespec="seconds"),
            entry.actor,
            entry.action,
            entry.target,
            entry.outcome,
            entry.detail,
            entry.client_address,
        )
        click.echo("\t".join(field or "-" for field in fields))


@cli.command()
@click.option("--workers", "processes", type=int, default=None, help="gunicorn workers")
@click.option(
    "--host", default="0.0.0.0", show_default=True, help="address to listen on"
)
def web(processes: int | None, host: str) -> None:
    """Serve the web app with gunicorn's gevent worker on $PORT."""
    settings = _settings()
    config = os.path.join(os.path.dirname(__file__), "gunicorn_conf.py")
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        config,
        "--bind",
        f"{host}:{settings.port}",
    ]
    if processes:
        argv += ["--workers", str(processes)]
    argv.append("backend.wsgi:app")
    os.execv(sys.executable, argv)


@cli.command()
@click.option("--burst", is_flag=True, help="Run the queued jobs, then exit.")
def worker(burst: bool) -> None:
    """Run refresh, lifecycle and lab jobs (an RQ worker)."""
    # Jobs run in this process rather than in a child forked for each job: the
    # refresh context (AWS clients, a keep-alive connection pool per controller,
    # CML tokens) then outlives the job, so a refresh does not open hundreds of
    # connections again. Each job is still bounded by its timeout.
    from rq import SimpleWorker

    from backend.connections import redis_from_url
    from backend.jobs import queue

    settings = _settings()
    _connect(settings)
    # The worker blocks on the queue for long stretches: no socket timeout here.
    redis = redis_from_url(settings.redis_url, socket_timeout=None)
    SimpleWorker([queue(redis)], connection=redis).work(
        burst=burst, with_scheduler=False
    )


@cli.command()
@click.option(
    "--poll",
    type=float,
    default=2.0,
    show_default=True,
    help="seconds between checks for jobs that are due",
)
def scheduler(poll: float) -> None:
    """Register the periodic fleet refresh and enqueue it on time."""
    from rq_scheduler import Scheduler

    from backend.connections import redis_from_url
    from backend.jobs import QUEUE_NAME, register_schedule

    settings = _settings()
    redis = redis_from_url(settings.redis_url, socket_timeout=None)
    scheduler = Scheduler(queue_name=QUEUE_NAME, connection=redis, interval=poll)
    outcome = register_schedule(scheduler, settings.refresh_interval_seconds)
    click.echo(f"fleet refresh every {settings.refresh_interval_seconds} s ({outcome})")
    scheduler.run()


@cli.command()
@click.option("--worker", "worker_id", default=None, help="refresh only this worker")
def refresh(worker_id: str | None) -> None:
    """Refresh the fleet (or one worker) now, in the foreground."""
    from backend import jobs
    from backend.refresh import refresh as run_refresh

    settings = _settings()
    _connect(settings)
    ctx = jobs.build_context(settings)
    try:
        if worker_id is None:
            with jobs.lease(ctx.redis, jobs.LEASE_KEY) as acquired:
                if not acquired:
                    raise click.ClickException(
                        "another fleet refresh is running; try again when it ends"
                    )
                outcome = run_refresh(ctx)
        else:
            outcome = run_refresh(ctx, worker_id=worker_id)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(outcome.summary())
    if outcome.failed:
        sys.exit(1)


@cli.command("simulate-cml")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=9443, show_default=True)
@click.option(
    "--controllers",
    type=int,
    default=0,
    show_default=True,
    help="controllers to create up front (others appear on first use)",
)
@click.option("--http", "plain_http", is_flag=True, help="serve plain HTTP, not HTTPS")
@click.option(
    "--token-lifetime",
    type=float,
    default=86400,
    show_default=True,
    help="seconds a token stays valid",
)
@click.option(
    "--drift",
    type=float,
    default=1.0,
    show_default=True,
    help="how fast numbers and labs change (0 holds them still)",
)
def simulate_cml(
    host: str,
    port: int,
    controllers: int,
    plain_http: bool,
    token_lifetime: float,
    drift: float,
) -> None:
    """Serve simulated CML 2.9 controllers under /<controller-id>/api/v0/."""
    from backend.simulator import serve_forever

    serve_forever(
        host,
        port,
        use_tls=not plain_http,
        controllers=controllers,
        token_lifetime=token_lifetime,
        drift=drift,
    )


@cli.command("simulate-aws")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5000, show_default=True)
def simulate_aws(host: str, port: int) -> None:
    """Serve moto's AWS stand-in with CML images and detailed monitoring."""
    from backend import demo_aws

    demo_aws.use_cml_images()
    demo_aws.add_monitoring_calls()
    from moto.server import main as serve_moto

    serve_moto(["--host", host, "--port", str(port)])


@cli.command()
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--workers", "worker_count", type=int, default=12, show_default=True)
@click.option(
    "--interval",
    type=float,
    default=15.0,
    show_default=True,
    help="seconds between fleet refreshes",
)
def demo(port: int, worker_count: int, interval: float) -> None:
    """Run everything in one process with embedded stand-ins."""
    from backend.demo import run_demo

    if worker_count < 0:
        raise click.ClickException("--workers must be 0 or more")
    if interval < 1:
        raise click.ClickException("--interval must be at least 1 second")
    run_demo(port=port, worker_count=worker_count, interval=interval)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in GEVENT_COMMANDS:
        from gevent import monkey

        monkey.patch_all()
    cli()


if __name__ == "__main__":
    main()
