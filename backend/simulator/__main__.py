"""``python -m backend.simulator``: serve simulated controllers; the first line of
output is the server URL, so a parent process can start it on port 0."""

from __future__ import annotations

import argparse

from backend.simulator.controller import DEFAULT_VERSION
from backend.simulator.server import serve_forever


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backend.simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument("--controllers", type=int, default=0)
    parser.add_argument("--http", action="store_true", help="plain HTTP, no TLS")
    parser.add_argument("--token-lifetime", type=float, default=86400)
    parser.add_argument("--username", default="admin")
    parser.add_argument("--password", default="admin")
    parser.add_argument("--drift", type=float, default=1.0)
    parser.add_argument("--version", default=DEFAULT_VERSION)
    options = parser.parse_args(argv)

    serve_forever(
        options.host,
        options.port,
        use_tls=not options.http,
        controllers=options.controllers,
        token_lifetime=options.token_lifetime,
        username=options.username,
        password=options.password,
        drift=options.drift,
        version=options.version,
        on_ready=lambda url: print(url, flush=True),
    )


if __name__ == "__main__":
    main()
