"""The embedded demo: the whole product in one process with in-process stand-ins.

Only the connections differ from production: Redis is fakeredis, MongoDB is
mongomock, and every code path above them is the product's own.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from backend.settings import Settings, load_settings

log = logging.getLogger(__name__)

DEMO_LOGINS = (("admin", "admin", "admin"), ("user", "user", "user"))


def demo_settings(port: int, interval: float) -> Settings:
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": "fakeredis://demo",
            "MONGODB_URL": "mongomock://localhost/cmlfleet",
            "REFRESH_INTERVAL_SECONDS": str(max(1, int(interval))),
            "PORT": str(port),
        }
    )
    return load_settings(env, environment="demo")


def seed_users() -> None:
    from backend.auth import create_user
    from backend.models import User

    for username, password, role in DEMO_LOGINS:
        if User.objects(username=username).first() is None:
            create_user(username, password, role)


def run_demo(*, port: int, worker_count: int, interval: float) -> None:
    from gevent.pywsgi import WSGIServer

    from backend.app import create_app
    from backend.bootstrap import initialise

    settings = demo_settings(port, interval)
    app = create_app(settings)
    with app.app_context():
        for line in initialise(settings):
            log.info("demo: %s", line)
        seed_users()

    server = WSGIServer(("127.0.0.1", port), app, log=None)
    server.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    print(f"CML Fleet demo running at {url}", flush=True)
    print("Sign in as admin/admin (admin) or user/user (read-only).", flush=True)

    def stop(*_: object) -> None:
        log.info("demo: stopping")
        server.stop(timeout=2)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        stop()
