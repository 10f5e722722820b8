"""A MongoDB wire-protocol server backed by one in-memory mongomock client.

The tests use it to let several processes of the product (the web app, an RQ
worker, the scheduler) share one database through an ordinary
``mongodb://127.0.0.1:PORT/name`` URL and the real pymongo driver, without a
MongoDB server. Run it as ``python tests/mongo_wire.py --port PORT``, or call
``serve(port)`` to run it on a thread of the current process.

It speaks OP_MSG and, for the first handshake, OP_QUERY; it never compresses.
It presents itself as a standalone MongoDB 7.0 and answers the CRUD, cursor,
index and collection commands pymongo and mongoengine send, with whatever
mongomock makes of them. It does not do authentication, TLS, transactions,
time-series or capped collections, views, collations, change streams or
replication, and it forgets everything when it stops. Every mongomock call runs
under one process-wide lock, so commands never run concurrently.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import logging
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import bson
import mongomock
from bson.codec_options import CodecOptions
from bson.errors import BSONError
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument
from mongomock.filtering import filter_applies
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

log = logging.getLogger(__name__)

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

CHECKSUM_PRESENT = 1 << 0
MORE_TO_COME = 1 << 1
QUERY_FAILURE = 1 << 1

SERVER_VERSION = "7.0.0"
MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48_000_000
MAX_WRITE_BATCH_SIZE = 100_000
DEFAULT_BATCH_SIZE = 101
BATCH_BYTES = MAX_BSON_OBJECT_SIZE - 16 * 1024
CURSOR_IDLE_SECONDS = 600

CODEC = CodecOptions(document_class=dict, tz_aware=False)

# mongomock is not thread-safe: every call into it happens under this lock.
LOCK = threading.Lock()

CODE_NAMES = {
    1: "InternalError",
    2: "BadValue",
    8: "UnknownError",
    9: "FailedToParse",
    14: "TypeMismatch",
    20: "IllegalOperation",
    26: "NamespaceNotFound",
    27: "IndexNotFound",
    43: "CursorNotFound",
    48: "NamespaceExists",
    59: "CommandNotFound",
    66: "ImmutableField",
    72: "InvalidOptions",
    73: "InvalidNamespace",
    85: "IndexOptionsConflict",
    86: "IndexKeySpecsConflict",
    238: "NotImplemented",
    11000: "DuplicateKey",
}

# Options of ``create`` that change what a collection does: accepting them
# silently would let a test pass where a real server behaves differently.
UNSUPPORTED_CREATE_OPTIONS = (
    "capped",
    "viewOn",
    "pipeline",
    "validator",
    "clusteredIndex",
    "changeStreamPreAndPostImages",
    "encryptedFields",
)

Document = dict[str, Any]


class CommandError(Exception):
    """A command failure to report to the client as ``ok: 0``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def document(self) -> Document:
        """The reply document for this failure."""
        return error_document(self.code, self.message)


def error_document(code: int, message: str) -> Document:
    """A command reply that reports a failure with ``code`` and ``message``."""
    return {
        "ok": 0.0,
        "errmsg": message,
        "code": code,
        "codeName": CODE_NAMES.get(code, "UnknownError"),
    }


@dataclass
class Cursor:
    """The documents of a query that the client has not fetched yet."""

    ns: str
    documents: collections.deque[RawBSONDocument]
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class Context:
    """What a command may need to know about the connection it came on."""

    connection_id: int


def take_batch(
    documents: collections.deque[RawBSONDocument], count: int | None
) -> list[RawBSONDocument]:
    """Remove and return up to ``count`` documents (all when None) from the
    front of ``documents``, stopping before the batch outgrows one BSON reply."""
    batch: list[RawBSONDocument] = []
    size = 0
    while documents and (count is None or len(batch) < count):
        next_size = len(documents[0].raw)
        if batch and size + next_size > BATCH_BYTES:
            break
        batch.append(documents.popleft())
        size += next_size
    return batch


def sort_pairs(sort: Mapping[str, Any] | None) -> list[tuple[str, Any]] | None:
    """A sort specification as the list of pairs mongomock expects, in order."""
    if not sort:
        return None
    return list(sort.items())


def key_pairs(key: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """An index key with numeric directions normalised, for comparisons."""
    pairs = []
    for name, direction in key:
        if isinstance(direction, int | float) and not isinstance(direction, bool):
            direction = 1 if direction > 0 else -1
        pairs.append((name, direction))
    return pairs


def is_operator_update(update: Any) -> bool:
    """True when ``update`` is an update document of ``$`` operators."""
    return (
        isinstance(update, Mapping)
        and bool(update)
        and all(key.startswith("$") for key in update)
    )


def write_error(index: int, exc: Exception, ns: str) -> Document:
    """The ``writeErrors`` entry for statement ``index`` that raised ``exc``."""
    if isinstance(exc, DuplicateKeyError):
        return {
            "index": index,
            "code": 11000,
            "errmsg": f"E11000 duplicate key error collection: {ns} ({exc})",
        }
    code = exc.code if isinstance(exc, OperationFailure) and exc.code else 2
    if "(immutable) field" in str(exc):
        code = 66
    return {"index": index, "code": code, "errmsg": str(exc)}


WRITE_ERRORS = (PyMongoError, BSONError, ValueError)


class Backend:
    """The commands of the server, run against one mongomock client."""

    def __init__(self) -> None:
        self.client: Any = mongomock.MongoClient()
        self.cursors: dict[int, Cursor] = {}
        self.cursor_ids = itertools.count(1)
        self.connection_ids = itertools.count(1)
        self.unlocked: dict[str, Callable[[Document, Context], Document]] = {
            "hello": self.hello,
            "isMaster": self.hello,
            "ismaster": self.hello,
            "ping": self.ok,
            "buildInfo": self.build_info,
            "buildinfo": self.build_info,
            "endSessions": self.ok,
            "commitTransaction": self.no_transactions,
            "abortTransaction": self.no_transactions,
        }
        self.locked: dict[str, Callable[[Document, Context], Document]] = {
            "find": self.find,
            "getMore": self.get_more,
            "killCursors": self.kill_cursors,
            "insert": self.insert,
            "update": self.update,
            "delete": self.delete,
            "findAndModify": self.find_and_modify,
            "findandmodify": self.find_and_modify,
            "aggregate": self.aggregate,
            "count": self.count,
            "distinct": self.distinct,
            "create": self.create,
            "collMod": self.coll_mod,
            "drop": self.drop,
            "listCollections": self.list_collections,
            "createIndexes": self.create_indexes,
            "listIndexes": self.list_indexes,
            "dropIndexes": self.drop_indexes,
            "deleteIndexes": self.drop_indexes,
            "dropDatabase": self.drop_database,
        }

    # --- dispatch ----------------------------------------------------------------

    def run(self, body: Document, context: Context) -> Document:
        """Run one command and return its reply; never raises."""
        name = next(iter(body), "")
        log.debug("%s: %s on %s", context.connection_id, name, body.get("$db"))
        try:
            if body.get("startTransaction") or "autocommit" in body:
                return self.no_transactions(body, context)
            if body.get("collation"):
                raise CommandError(238, "collations are not supported by this server")
            if name in self.unlocked:
                return self.unlocked[name](body, context)
            if name in self.locked:
                with LOCK:
                    return self.locked[name](body, context)
            return error_document(59, f"no such command: '{name}'")
        except CommandError as exc:
            return exc.document()
        except OperationFailure as exc:
            return error_document(exc.code or 8, str(exc))
        except NotImplementedError as exc:
            log.warning("mongomock cannot run %s: %s", name, exc)
            return error_document(238, f"not supported by mongomock: {exc}")
        except WRITE_ERRORS as exc:
            return error_document(2, str(exc))
        except Exception as exc:
            log.exception("command %s failed", name)
            return error_document(1, f"{type(exc).__name__}: {exc}")

    def collection(self, body: Document, name: str) -> Any:
        """The mongomock collection a command names under the key ``name``."""
        value = body.get(name)
        if not isinstance(value, str) or not value:
            raise CommandError(73, f"collection name must be a string, not {value!r}")
        return self.database(body)[value]

    def database(self, body: Document) -> Any:
        """The mongomock database a command runs in."""
        name = body.get("$db")
        if not isinstance(name, str) or not name:
            raise CommandError(73, "a command needs a $db")
        return self.client[name]

    def exists(self, database: Any, name: str) -> bool:
        """True when collection ``name`` of ``database`` exists."""
        return name in database.list_collection_names()

    # --- handshake and server information ----------------------------------------

    def hello(self, body: Document, context: Context) -> Document:
        return {
            "ismaster": True,
            "isWritablePrimary": True,
            "helloOk": True,
            "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
            "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
            "maxWriteBatchSize": MAX_WRITE_BATCH_SIZE,
            "localTime": datetime.now(UTC),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": context.connection_id,
            "minWireVersion": 0,
            "maxWireVersion": 17,
            "readOnly": False,
            "ok": 1.0,
        }

    def ok(self, body: Document, context: Context) -> Document:
        return {"ok": 1.0}

    def no_transactions(self, body: Document, context: Context) -> Document:
        return error_document(
            20, "Transaction numbers are only allowed on a replica set member or mongos"
        )

    def build_info(self, body: Document, context: Context) -> Document:
        return {
            "version": SERVER_VERSION,
            "gitVersion": "mongo-wire",
            "versionArray": [7, 0, 0, 0],
            "bits": 64,
            "debug": False,
            "maxBsonObjectSize": MAX_BSON_OBJECT_SIZE,
            "modules": [],
            "storageEngines": ["mongomock"],
            "ok": 1.0,
        }

    # --- databases ----------------------------------------------------------------

    def drop_database(self, body: Document, context: Context) -> Document:
        database = self.database(body)
        prefix = database.name + "."
        self.forget_cursors(lambda ns: ns.startswith(prefix))
        self.client.drop_database(database.name)
        return {"ok": 1.0}

    # --- cursors ------------------------------------------------------------------

    def cursor_reply(
        self,
        ns: str,
        documents: Iterable[Mapping[str, Any]],
        batch_size: Any,
        single_batch: bool = False,
    ) -> Document:
        """A cursor over ``documents``: the first batch now, the rest kept."""
        self.reap_cursors()
        pending = collections.deque(
            RawBSONDocument(bson.encode(document)) for document in documents
        )
        count = DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
        if count < 0:
            raise CommandError(2, "batchSize must be non-negative")
        first = take_batch(pending, count)
        cursor_id = 0
        if pending and not single_batch:
            cursor_id = next(self.cursor_ids)
            self.cursors[cursor_id] = Cursor(ns, pending)
        return {
            "cursor": {"firstBatch": first, "id": Int64(cursor_id), "ns": ns},
            "ok": 1.0,
        }

    def forget_cursors(self, matches: Callable[[str], bool]) -> None:
        """Forget the cursors whose namespace ``matches``."""
        for cursor_id, cursor in list(self.cursors.items()):
            if matches(cursor.ns):
                del self.cursors[cursor_id]

    def reap_cursors(self) -> None:
        """Forget the cursors nobody has used for CURSOR_IDLE_SECONDS."""
        now = time.monotonic()
        for cursor_id, cursor in list(self.cursors.items()):
            if now - cursor.last_used > CURSOR_IDLE_SECONDS:
                del self.cursors[cursor_id]

    def get_more(self, body: Document, context: Context) -> Document:
        cursor_id = body.get("getMore")
        collection = self.collection(body, "collection")
        ns = collection.full_name
        if not isinstance(cursor_id, int):
            raise CommandError(14, "getMore needs a cursor id")
        cursor = self.cursors.get(int(cursor_id))
        if cursor is None or cursor.ns != ns:
            raise CommandError(43, f"cursor id {cursor_id} not found")
        batch_size = body.get("batchSize")
        count = int(batch_size) if batch_size else None
        batch = take_batch(cursor.documents, count)
        cursor.last_used = time.monotonic()
        if not cursor.documents:
            del self.cursors[int(cursor_id)]
            cursor_id = 0
        return {
            "cursor": {"nextBatch": batch, "id": Int64(cursor_id), "ns": ns},
            "ok": 1.0,
        }

    def kill_cursors(self, body: Document, context: Context) -> Document:
        killed, not_found = [], []
        for cursor_id in body.get("cursors") or []:
            if self.cursors.pop(int(cursor_id), None) is None:
                not_found.append(Int64(cursor_id))
            else:
                killed.append(Int64(cursor_id))
        return {
            "cursorsKilled": killed,
            "cursorsNotFound": not_found,
            "cursorsAlive": [],
            "cursorsUnknown": [],
            "ok": 1.0,
        }

    # --- queries ------------------------------------------------------------------

    def find(self, body: Document, context: Context) -> Document:
        collection = self.collection(body, "find")
        limit = int(body.get("limit") or 0)
        single_batch = bool(body.get("singleBatch"))
        if limit < 0:
            limit, single_batch = -limit, True
        documents = list(
            collection.find(
                body.get("filter") or {},
                projection=body.get("projection") or None,
                sort=sort_pairs(body.get("sort")),
                skip=int(body.get("skip") or 0),
                limit=limit,
            )
        )
        batch_size = body.get("batchSize")
        if single_batch and limit and batch_size is None:
            batch_size = limit
        return self.cursor_reply(
            collection.full_name, documents, batch_size, single_batch
        )

    def aggregate(self, body: Document, context: Context) -> Document:
        if body.get("explain"):
            raise CommandError(238, "explain is not supported by this server")
        if body.get("let"):
            raise CommandError(238, "let is not supported by this server")
        if not isinstance(body.get("aggregate"), str):
            raise CommandError(238, "database-level aggregate is not supported")
        collection = self.collection(body, "aggregate")
        pipeline = body.get("pipeline")
        if not isinstance(pipeline, list):
            raise CommandError(14, "the pipeline must be an array")
        cursor = body.get("cursor")
        if not isinstance(cursor, Mapping):
            raise CommandError(9, "the 'cursor' option is required")
        documents = list(collection.aggregate(pipeline))
        return self.cursor_reply(
            collection.full_name, documents, cursor.get("batchSize")
        )

    def count(self, body: Document, context: Context) -> Document:
        collection = self.collection(body, "count")
        documents = collection.find(
            body.get("query") or {},
            skip=int(body.get("skip") or 0),
            limit=abs(int(body.get("limit") or 0)),
        )
        return {"n": len(list(documents)), "ok": 1.0}

    def distinct(self, body: Document, context: Context) -> Document:
        collection = self.collection(body, "distinct")
        key = body.get("key")
        if not isinstance(key, str):
            raise CommandError(14, "distinct needs a key")
        values = collection.distinct(key, body.get("query") or None)
        return {"values": list(values), "ok": 1.0}

    # --- writes -------------------------------------------------------------------

    def insert(self, body: Document, context: Context) -> Document:
        collection = self.collection(body, "insert")
        ordered = body.get("ordered", True)
        inserted = 0
        errors: list[Document] = []
        for index, document in enumerate(body.get("documents") or []):
            try:
                collection.insert_one(document)
                inserted += 1
            except WRITE_ERRORS as exc:
                errors.append(write_error(index, exc, collection.full_name))
                if ordered:
                    break
        reply: Document = {"n": inserted}
        if errors:
            reply["writeErrors"] = errors
        reply["ok"] = 1.0
        return reply

    def update(self, body: Document, context: Context) -> Document:
        collection = self.collection(body, "update")
        ordered = body.get("ordered", True)
        matched = modified = 0
        upserted: list[Document] = []
        errors: list[Document] = []
        for index, statement in enumerate(body.get("updates") or []):
            try:
                result = self.update_one_statement(collection, statement)
            except WRITE_ERRORS as exc:
                errors.append(write_error(index, exc, collection.full_name))
                if ordered:
                    break
                continue
            matched += result["n"]
            modified += result["nModified"]
            if result["upserted"] is not None:
                upserted.append({"index": index, "_id": result["upserted"]})
        reply: Document = {"n": matched, "nModified": modified}
        if upserted:
            reply["upserted"] = upserted
        if errors:
            reply["writeErrors"] = errors
        reply["ok"] = 1.0
        return reply

    def update_one_statement(self, collection: Any, statement: Document) -> Document:
        """Apply one statement of an ``update`` command; return mongomock's
        raw result (``n`` counts the matched and upserted documents)."""
        query = statement.get("q") or {}
        update = statement.get("u")
        upsert = bool(statement.get("upsert"))
        multi = bool(statement.get("multi"))
        options: Document = {}
        if statement.get("arrayFilters"):
            options["array_filters"] = statement["arrayFilters"]
        if isinstance(update, list):
            method = collection.update_many if multi else collection.update_one
            try:
                result = method(query, update, upsert=upsert, **options)
            except NotImplementedError as exc:
                message = f"update pipeline not supported: {exc}"
                raise OperationFailure(message, 9) from exc
        elif is_operator_update(update):
            method = collection.update_many if multi else collection.update_one
            result = method(query, update, upsert=upsert, **options)
        elif isinstance(update, Mapping):
            if multi:
                raise OperationFailure(
                    "multi update is not supported for replacement-style update", 9
                )
            result = collection.replace_one(query, update, upsert=upsert)
        else:
            raise OperationFailure("the update must be a document or a pipeline", 9)
        return result.raw_result

    def delete(self, body: Document, context: Context) -> Document:
        collection = self.collection(body, "delete")
        ordered = body.get("ordered", True)
        deleted = 0
        errors: list[Document] = []
        for index, statement in enumerate(body.get("deletes") or []):
            try:
                query = statement.get("q") or {}
                if int(statement.get("limit") or 0) == 1:
                    result = collection.delete_one(query)
                else:
                    result = collection.delete_many(query)
                deleted += result.deleted_count
            except WRITE_ERRORS as exc:
                errors.append(write_error(index, exc, collection.full_name))
                if ordered:
                    break
        reply: Document = {"n": deleted}
        if errors:
            reply["writeErrors"] = errors
        reply["ok"] = 1.0
        return reply

    def find_and_modify(self, body: Document, context: Context) -> Document:
        name = "findAndModify" if "findAndModify" in body else "findandmodify"
        collection = self.collection(body, name)
        query = body.get("query") or {}
        update = body.get("update")
        remove = bool(body.get("remove"))
        new = bool(body.get("new"))
        upsert = bool(body.get("upsert"))
        fields = body.get("fields") or None
        if body.get("arrayFilters"):
            raise CommandError(238, "arrayFilters are not supported by mongomock")
        if remove and update is not None:
            raise CommandError(9, "Cannot specify both an update and remove=true")
        if not remove and update is None:
            raise CommandError(9, "Either an update or remove=true must be specified")
        if remove and new:
            raise CommandError(9, "Cannot specify both new=true and remove=true")
        if remove and upsert:
            raise CommandError(9, "Cannot specify both upsert=true and remove=true")

        found = collection.find_one(query, sort=sort_pairs(body.get("sort")))
        if found is None and not (upsert and not remove):
            last_error: Document = {"n": 0}
            if not remove:
                last_error["updatedExisting"] = False
            return {"lastErrorObject": last_error, "value": None, "ok": 1.0}
        if found is not None:
            by_id = {"_id": found["_id"]}
            before = collection.find_one(by_id, projection=fields)
            if remove:
                collection.delete_one(by_id)
                return {"lastErrorObject": {"n": 1}, "value": before, "ok": 1.0}
            self.modify(collection, by_id, update, upsert=False)
            value = collection.find_one(by_id, projection=fields) if new else before
            return {
                "lastErrorObject": {"n": 1, "updatedExisting": True},
                "value": value,
                "ok": 1.0,
            }
        upserted_id = self.modify(collection, query, update, upsert=True)
        value = None
        if new:
            value = collection.find_one({"_id": upserted_id}, projection=fields)
        return {
            "lastErrorObject": {
                "n": 1,
                "updatedExisting": False,
                "upserted": upserted_id,
            },
            "value": value,
            "ok": 1.0,
        }

    def modify(
        self, collection: Any, query: Document, update: Any, upsert: bool
    ) -> Any:
        """Update or replace the first document matching ``query``; return the
        id of an upserted document."""
        if isinstance(update, list) or is_operator_update(update):
            result = collection.update_one(query, update, upsert=upsert)
        elif isinstance(update, Mapping):
            result = collection.replace_one(query, update, upsert=upsert)
        else:
            raise CommandError(9, "the update must be a document or a pipeline")
        return result.upserted_id

    # --- collections --------------------------------------------------------------

    def create(self, body: Document, context: Context) -> Document:
        database = self.database(body)
        name = body.get("create")
        if not isinstance(name, str) or not name:
            raise CommandError(73, "create needs a collection name")
        if "timeseries" in body:
            raise CommandError(
                72, "time-series collections are not supported by this test server"
            )
        for option in UNSUPPORTED_CREATE_OPTIONS:
            if body.get(option):
                raise CommandError(
                    72, f"the create option {option!r} is not supported by this server"
                )
        if self.exists(database, name):
            raise CommandError(
                48, f"Collection already exists. NS: {database.name}.{name}"
            )
        database.create_collection(name)
        return {"ok": 1.0}

    def coll_mod(self, body: Document, context: Context) -> Document:
        database = self.database(body)
        name = body.get("collMod")
        if not isinstance(name, str) or not self.exists(database, name):
            raise CommandError(26, f"ns does not exist: {database.name}.{name}")
        return {"ok": 1.0}

    def drop(self, body: Document, context: Context) -> Document:
        collection = self.collection(body, "drop")
        if not self.exists(collection.database, collection.name):
            return {"ok": 1.0}
        count = len(collection.index_information())
        collection.drop()
        self.forget_cursors(lambda ns: ns == collection.full_name)
        return {"nIndexesWas": count, "ns": collection.full_name, "ok": 1.0}

    def list_collections(self, body: Document, context: Context) -> Document:
        database = self.database(body)
        infos = [
            {
                "name": name,
                "type": "collection",
                "options": {},
                "info": {"readOnly": False},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            }
            for name in sorted(database.list_collection_names())
        ]
        query = body.get("filter")
        if query:
            infos = [info for info in infos if filter_applies(query, info)]
        if body.get("nameOnly"):
            infos = [{"name": info["name"], "type": info["type"]} for info in infos]
        ns = f"{database.name}.$cmd.listCollections"
        cursor = body.get("cursor") or {}
        return self.cursor_reply(ns, infos, cursor.get("batchSize"))

    # --- indexes ------------------------------------------------------------------

    def create_indexes(self, body: Document, context: Context) -> Document:
        collection = self.collection(body, "createIndexes")
        specs = body.get("indexes")
        if not isinstance(specs, list) or not specs:
            raise CommandError(2, "createIndexes needs a non-empty list of indexes")
        existed = self.exists(collection.database, collection.name)
        before = len(collection.index_information()) if existed else 1
        for spec in specs:
            self.create_index(collection, spec)
        if not self.exists(collection.database, collection.name):
            collection.database.create_collection(collection.name)
        return {
            "createdCollectionAutomatically": not existed,
            "numIndexesBefore": before,
            "numIndexesAfter": len(collection.index_information()),
            "ok": 1.0,
        }

    def create_index(self, collection: Any, spec: Document) -> None:
        """Create one index described as in a ``createIndexes`` command."""
        key = spec.get("key")
        name = spec.get("name")
        if not isinstance(key, Mapping) or not key:
            raise CommandError(9, "an index needs a non-empty key document")
        if not isinstance(name, str) or not name:
            raise CommandError(9, "an index needs a name")
        if spec.get("collation"):
            raise CommandError(238, "index collations are not supported")
        pairs = list(key.items())
        for existing_name, info in collection.index_information().items():
            if existing_name == name:
                continue
            if key_pairs(info["key"]) == key_pairs(pairs):
                raise CommandError(
                    85, f"Index already exists with a different name: {existing_name}"
                )
        if name == "_id_":
            if key_pairs(pairs) != [("_id", 1)]:
                raise CommandError(86, "the _id_ index is on {_id: 1}")
            return
        options: Document = {"name": name}
        for option in ("unique", "sparse"):
            if spec.get(option):
                options[option] = True
        for option in ("expireAfterSeconds", "partialFilterExpression"):
            if spec.get(option) is not None:
                options[option] = spec[option]
        try:
            collection.create_index(pairs, **options)
        except DuplicateKeyError:
            raise
        except OperationFailure as exc:
            if "already exists" in str(exc):
                raise CommandError(
                    86,
                    "An existing index has the same name as the requested index "
                    f"but different options: {name}",
                ) from exc
            raise

    def list_indexes(self, body: Document, context: Context) -> Document:
        collection = self.collection(body, "listIndexes")
        if not self.exists(collection.database, collection.name):
            raise CommandError(26, f"ns does not exist: {collection.full_name}")
        indexes = []
        for name, info in collection.index_information().items():
            index: Document = {"v": 2, "key": dict(info["key"]), "name": name}
            for option in (
                "unique",
                "sparse",
                "expireAfterSeconds",
                "partialFilterExpression",
            ):
                if option in info:
                    index[option] = info[option]
            indexes.append(index)
        cursor = body.get("cursor") or {}
        return self.cursor_reply(collection.full_name, indexes, cursor.get("batchSize"))

    def drop_indexes(self, body: Document, context: Context) -> Document:
        name = "dropIndexes" if "dropIndexes" in body else "deleteIndexes"
        collection = self.collection(body, name)
        if not self.exists(collection.database, collection.name):
            raise CommandError(26, f"ns not found {collection.full_name}")
        information = collection.index_information()
        count = len(information)
        index = body.get("index")
        if index == "*":
            collection.drop_indexes()
            return {"nIndexesWas": count, "ok": 1.0}
        if isinstance(index, Mapping):
            wanted = key_pairs(index.items())
            names = [n for n, i in information.items() if key_pairs(i["key"]) == wanted]
            if not names:
                raise CommandError(27, f"can't find index with key: {dict(index)}")
        elif isinstance(index, str):
            names = [index]
        elif isinstance(index, list):
            names = list(index)
        else:
            raise CommandError(14, "the index to drop must be a name, a key or '*'")
        for index_name in names:
            if index_name == "_id_":
                raise CommandError(72, "cannot drop _id index")
            if index_name not in information:
                raise CommandError(27, f"index not found with name [{index_name}]")
        for index_name in names:
            collection.drop_index(index_name)
        return {"nIndexesWas": count, "ok": 1.0}


# --- the wire protocol --------------------------------------------------------------


class ProtocolError(Exception):
    """A message this server cannot make sense of; the connection is closed."""


def parse_op_msg(payload: bytes) -> tuple[int, Document]:
    """The flag bits and the command document of an OP_MSG payload, with each
    document sequence merged into the command under its identifier."""
    if len(payload) < 5:
        raise ProtocolError("OP_MSG too short")
    (flags,) = struct.unpack_from("<I", payload, 0)
    if flags & 0xFFFF & ~(CHECKSUM_PRESENT | MORE_TO_COME):
        raise ProtocolError(f"OP_MSG with unknown required flags {flags:#x}")
    end = len(payload) - (4 if flags & CHECKSUM_PRESENT else 0)
    position = 4
    body: Document | None = None
    sequences: dict[str, list[Document]] = {}
    while position < end:
        kind = payload[position]
        position += 1
        (size,) = struct.unpack_from("<i", payload, position)
        if size < 5 or position + size > end:
            raise ProtocolError("OP_MSG section overruns the message")
        if kind == 0:
            if body is not None:
                raise ProtocolError("OP_MSG with two body sections")
            body = bson.decode(payload[position : position + size], CODEC)
        elif kind == 1:
            name_end = payload.index(b"\x00", position + 4, position + size)
            identifier = payload[position + 4 : name_end].decode()
            documents = bson.decode_all(payload[name_end + 1 : position + size], CODEC)
            sequences.setdefault(identifier, []).extend(documents)
        else:
            raise ProtocolError(f"OP_MSG section of unknown kind {kind}")
        position += size
    if body is None:
        raise ProtocolError("OP_MSG without a body section")
    for identifier, documents in sequences.items():
        existing = body.get(identifier)
        body[identifier] = (existing if isinstance(existing, list) else []) + documents
    return flags, body


def parse_op_query(payload: bytes) -> tuple[str, Document]:
    """The full collection name and the query document of an OP_QUERY payload."""
    name_end = payload.index(b"\x00", 4)
    full_name = payload[4:name_end].decode()
    position = name_end + 1 + 8
    (size,) = struct.unpack_from("<i", payload, position)
    query = bson.decode(payload[position : position + size], CODEC)
    for wrapper in ("$query", "query"):
        if isinstance(query.get(wrapper), dict) and next(iter(query)) == wrapper:
            query = query[wrapper]
            break
    return full_name, query


def encode_reply(reply: Document) -> bytes:
    """``reply`` as BSON, or an error reply when it cannot be encoded."""
    try:
        return bson.encode(reply)
    except Exception as exc:
        log.exception("cannot encode a reply")
        return bson.encode(error_document(1, f"cannot encode the reply: {exc}"))


def receive_exactly(sock: socket.socket, count: int) -> bytes | None:
    """Read ``count`` bytes, or return None when the peer closes first."""
    buffer = bytearray(count)
    view = memoryview(buffer)
    received = 0
    while received < count:
        chunk = sock.recv_into(view[received:], count - received)
        if chunk == 0:
            return None
        received += chunk
    return bytes(buffer)


class Handler(socketserver.BaseRequestHandler):
    """One client connection: read messages, run them, write the replies."""

    server: MongoWireServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        backend = self.server.backend
        with LOCK:
            context = Context(next(backend.connection_ids))
        self.server.track(sock, True)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while self.serve_one(sock, context):
                pass
        except OSError:
            pass
        except Exception:
            log.exception("connection %s failed", context.connection_id)
        finally:
            self.server.track(sock, False)

    def serve_one(self, sock: socket.socket, context: Context) -> bool:
        """Serve one message; return False when the connection should close."""
        header = receive_exactly(sock, 16)
        if header is None:
            return False
        length, request_id, _, op_code = struct.unpack("<iiii", header)
        if length < 16 or length > MAX_MESSAGE_SIZE:
            log.warning("closing a connection that sent a %d-byte message", length)
            return False
        payload = receive_exactly(sock, length - 16)
        if payload is None:
            return False
        try:
            if op_code == OP_MSG:
                self.answer_op_msg(sock, request_id, payload, context)
            elif op_code == OP_QUERY:
                self.answer_op_query(sock, request_id, payload, context)
            elif op_code == OP_COMPRESSED:
                raise ProtocolError("OP_COMPRESSED, though no compressor was offered")
            else:
                raise ProtocolError(f"unsupported opCode {op_code}")
        except (ProtocolError, BSONError, ValueError, struct.error) as exc:
            log.warning("closing connection %s: %s", context.connection_id, exc)
            return False
        return True

    def answer_op_msg(
        self, sock: socket.socket, request_id: int, payload: bytes, context: Context
    ) -> None:
        flags, body = parse_op_msg(payload)
        reply = self.server.backend.run(body, context)
        if flags & MORE_TO_COME:
            return
        message = struct.pack("<I", 0) + b"\x00" + encode_reply(reply)
        self.send(sock, request_id, OP_MSG, message)

    def answer_op_query(
        self, sock: socket.socket, request_id: int, payload: bytes, context: Context
    ) -> None:
        full_name, query = parse_op_query(payload)
        database, _, collection = full_name.partition(".")
        flags = 0
        if collection == "$cmd":
            query["$db"] = database
            reply = self.server.backend.run(query, context)
        else:
            flags = QUERY_FAILURE
            reply = {"$err": "OP_QUERY is only supported for commands", "code": 352}
        message = struct.pack("<iqii", flags, 0, 0, 1) + encode_reply(reply)
        self.send(sock, request_id, OP_REPLY, message)

    def send(
        self, sock: socket.socket, request_id: int, op_code: int, message: bytes
    ) -> None:
        reply_id = next(self.server.request_ids)
        header = struct.pack("<iiii", 16 + len(message), reply_id, request_id, op_code)
        sock.sendall(header + message)


class MongoWireServer(socketserver.ThreadingTCPServer):
    """The listening socket and its connection threads, with one Backend."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.backend = Backend()
        self.request_ids = itertools.count(1)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.thread: threading.Thread | None = None
        super().__init__((host, port), Handler)

    @property
    def port(self) -> int:
        """The port the server listens on (useful after binding port 0)."""
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """A MongoDB URL for the server, without a database."""
        return f"mongodb://127.0.0.1:{self.port}/"

    def track(self, sock: socket.socket, open_: bool) -> None:
        """Remember or forget an open client connection."""
        with self.connections_lock:
            if open_:
                self.connections.add(sock)
            else:
                self.connections.discard(sock)

    def start(self) -> None:
        """Serve on a daemon thread of this process."""
        self.thread = threading.Thread(
            target=self.serve_forever, name=f"mongo-wire-{self.port}", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        """Stop serving, then close the listening socket and every connection."""
        if self.thread is not None:
            self.shutdown()
            self.thread.join()
            self.thread = None
        self.server_close()
        with self.connections_lock:
            connections = list(self.connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(port: int = 0, host: str = "127.0.0.1") -> MongoWireServer:
    """Start a server on ``host``:``port`` (0 picks a free port) on a daemon
    thread and return it; call its ``close()`` to stop it."""
    server = MongoWireServer(port, host)
    server.start()
    return server


def main(argv: list[str] | None = None) -> int:
    """Run the server in the foreground until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=27017)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    server = MongoWireServer(args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"mongo-wire listening on 127.0.0.1:{server.port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
