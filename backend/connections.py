"""Connections to Redis and MongoDB, made once per process from the settings.

``fakeredis://`` and ``mongomock://`` select in-process stand-ins, used by the
embedded demo and the tests; nothing else in the product knows the difference.
"""

from __future__ import annotations

import threading
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import mongoengine
import redis
from pymongo import UpdateOne
from pymongo.collection import Collection

from backend.settings import Settings

# A short socket timeout keeps /readyz and request handlers from hanging on a
# stalled Redis; blocking readers (the event hub) open their own connection.
REDIS_TIMEOUT_SECONDS = 1.5
MONGO_TIMEOUT_MS = 1500
REDIS_POOL_SIZE = 100

# redis-py's annotations describe decoded and raw replies as one union; our
# clients always return raw bytes, so callers treat replies as bytes.
RedisClient: TypeAlias = Any

_fake_servers: dict[str, Any] = {}
_fake_lock = threading.Lock()


def redis_from_url(
    url: str, *, socket_timeout: float | None = REDIS_TIMEOUT_SECONDS
) -> RedisClient:
    """A Redis client for ``url``; ``fakeredis://name`` shares one in-process server."""
    if url.startswith("fakeredis://"):
        import fakeredis

        name = urlsplit(url).netloc or "default"
        with _fake_lock:
            server = _fake_servers.setdefault(name, fakeredis.FakeServer())
        return fakeredis.FakeRedis(server=server)
    # A blocking pool makes a burst of requests (thousands of browsers
    # reconnecting after a deploy) wait briefly for a connection instead of
    # failing once the pool is exhausted.
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_POOL_SIZE,
        timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)


def connect_mongo(settings: Settings, alias: str = "default") -> None:
    """Register the mongoengine connection named ``alias`` for ``settings``."""
    url = settings.mongodb_url
    mongoengine.disconnect(alias=alias)
    if url.startswith("mongomock://"):
        import mongomock

        parts = urlsplit(url)
        database = parts.path.lstrip("/") or parts.netloc or "cmlfleet"
        mongoengine.connect(
            db=database,
            alias=alias,
            host="mongodb://localhost",
            mongo_client_class=mongomock.MongoClient,
            uuidRepresentation="standard",
            tz_aware=True,
        )
        return
    mongoengine.connect(
        host=url,
        alias=alias,
        serverSelectionTimeoutMS=MONGO_TIMEOUT_MS,
        connectTimeoutMS=MONGO_TIMEOUT_MS,
        socketTimeoutMS=10_000,
        uuidRepresentation="standard",
        tz_aware=True,
    )


def is_mongomock(alias: str = "default") -> bool:
    """True when the connection named ``alias`` is the in-process stand-in."""
    client = mongoengine.get_connection(alias)
    return type(client).__module__.startswith("mongomock")


def update_each(
    collection: Collection, updates: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    """Apply one ``(filter, update)`` per document, in one round trip where the
    server allows: the in-process stand-in cannot run pymongo's bulk operations,
    so there they run one by one."""
    if not updates:
        return
    if type(collection).__module__.startswith("mongomock"):
        for query, update in updates:
            collection.update_one(query, update)
        return
    collection.bulk_write([UpdateOne(query, update) for query, update in updates])


def settings() -> Settings:
    """The settings of the running app."""
    from flask import current_app

    return current_app.extensions["cmlfleet.settings"]


def redis_client() -> RedisClient:
    """The shared Redis client of the running app."""
    from flask import current_app

    return current_app.extensions["cmlfleet.redis"]
