"""gunicorn settings for the web process.

Each event stream holds one connection for as long as a browser keeps the page
open, so a gevent worker must accept far more connections than gunicorn's default
of 1000, or the API starves once that many streams are open. Streams cost the
worker a socket and a greenlet each, and no Redis connection (one hub per worker
serves them all), so ten thousand per worker is well within reach.
"""

import os
import resource
from typing import Any

worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "10000"))
# Streams are long-lived by design; the timeout only guards a stuck worker.
timeout = 60
graceful_timeout = 20
keepalive = 5
# After a restart every browser reconnects at once; a deep listen queue keeps
# that burst from being refused.
backlog = 4096
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server: Any) -> None:
    """Let each worker open a file per connection it accepts, and some to spare."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = server.cfg.worker_connections + 1024
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
