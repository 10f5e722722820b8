"""gunicorn settings for the web process.

Each event stream holds one connection for as long as a browser keeps the page
open, so a gevent worker must accept far more connections than gunicorn's default
of 1000, or the API starves once that many streams are open.
"""

import os

worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_connections = int(os.environ.get("WEB_WORKER_CONNECTIONS", "10000"))
# Streams are long-lived by design; the timeout only guards a stuck worker.
timeout = 60
graceful_timeout = 20
keepalive = 5
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
