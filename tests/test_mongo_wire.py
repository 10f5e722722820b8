"""The wire-protocol test server: pymongo and mongoengine against mongomock."""

from __future__ import annotations

import re
import select
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import bson
import mongoengine
import pymongo
import pytest
from bson import ObjectId
from mongo_wire import MongoWireServer, serve
from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    CollectionInvalid,
    DuplicateKeyError,
    OperationFailure,
)
from pymongo.monitoring import CommandListener, CommandStartedEvent
from pymongo.write_concern import WriteConcern

SERVER_SCRIPT = Path(__file__).with_name("mongo_wire.py")


class CommandNames(CommandListener):
    """Records the name of every command a client sends."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: object) -> None:
        pass

    def failed(self, event: object) -> None:
        pass


def connect(port: int, **options: object) -> pymongo.MongoClient:
    return pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=2000, **options
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> Iterator[MongoWireServer]:
    wire = serve(free_port())
    yield wire
    wire.close()


@pytest.fixture
def client(server: MongoWireServer) -> Iterator[pymongo.MongoClient]:
    mongo = connect(server.port)
    yield mongo
    mongo.close()


@pytest.fixture
def db(client: pymongo.MongoClient, request: pytest.FixtureRequest):
    name = re.sub(r"\W", "_", request.node.name)[:60]
    yield client[name]
    client.drop_database(name)


# --- documents, queries and cursors -------------------------------------------------


def test_round_trip_keeps_object_ids_and_datetimes(db):
    at = datetime(2026, 3, 4, 5, 6, 7, 123000)
    inserted = db.things.insert_one({"name": "a", "at": at, "tags": ["x", "y"]})

    found = db.things.find_one({"_id": inserted.inserted_id})

    assert isinstance(inserted.inserted_id, ObjectId)
    assert found == {
        "_id": inserted.inserted_id,
        "name": "a",
        "at": at,
        "tags": ["x", "y"],
    }
    assert db.things.find_one({"at": {"$gt": at - timedelta(seconds=1)}})["name"] == "a"


def test_find_filters_sorts_skips_limits_and_projects(db):
    db.things.insert_many(
        [{"n": n, "group": n % 3, "name": f"thing-{n}"} for n in range(20)]
    )

    found = list(
        db.things.find({"group": 1}, {"_id": 0, "n": 1})
        .sort([("n", DESCENDING)])
        .skip(1)
        .limit(3)
    )
    by_two_keys = list(
        db.things.find({"n": {"$lt": 6}}, {"name": 1, "_id": 0}).sort(
            [("group", ASCENDING), ("n", DESCENDING)]
        )
    )

    assert found == [{"n": 16}, {"n": 13}, {"n": 10}]
    assert [d["name"] for d in by_two_keys] == [
        "thing-3",
        "thing-0",
        "thing-4",
        "thing-1",
        "thing-5",
        "thing-2",
    ]


def test_large_results_come_back_through_get_more(server):
    listener = CommandNames()
    mongo = connect(server.port, event_listeners=[listener])
    try:
        things = mongo.get_more_test.things
        things.insert_many([{"n": n} for n in range(250)])

        in_batches = [d["n"] for d in things.find().sort("n").batch_size(50)]
        default_batches = [d["n"] for d in things.find().sort("n")]
        first = things.find_one(sort=[("n", DESCENDING)])
        mongo.drop_database("get_more_test")
    finally:
        mongo.close()

    assert in_batches == list(range(250))
    assert default_batches == list(range(250))
    assert first["n"] == 249
    # 250 documents in batches of 50 take four getMores; the default first batch of
    # 101 documents then one unlimited getMore take one more.
    assert listener.names.count("getMore") == 5


def test_closing_a_cursor_early_kills_it_on_the_server(server, db):
    db.things.insert_many([{"n": n} for n in range(30)])
    cursor = db.things.find().batch_size(10)
    next(cursor)
    cursor_id = cursor.cursor_id
    assert cursor_id in server.backend.cursors

    cursor.close()

    assert cursor_id not in server.backend.cursors


def test_counts_and_distinct(db):
    db.things.insert_many([{"colour": c} for c in ["red", "blue", "red", "green"]])

    assert db.things.count_documents({}) == 4
    assert db.things.count_documents({"colour": "red"}) == 2
    assert db.things.count_documents({}, skip=1, limit=2) == 2
    assert db.things.estimated_document_count() == 4
    assert sorted(db.things.distinct("colour")) == ["blue", "green", "red"]
    assert db.things.distinct("colour", {"colour": {"$ne": "red"}}) in (
        ["blue", "green"],
        ["green", "blue"],
    )


# --- writes -------------------------------------------------------------------------


def test_update_one_with_operators_and_upsert(db):
    db.things.insert_one({"_id": 1, "name": "a", "count": 1, "gone": True})

    changed = db.things.update_one(
        {"_id": 1},
        {"$set": {"name": "b"}, "$unset": {"gone": ""}, "$inc": {"count": 2}},
    )
    unchanged = db.things.update_one({"_id": 1}, {"$set": {"name": "b"}})
    missing = db.things.update_one({"_id": 2}, {"$set": {"name": "c"}})
    upserted = db.things.update_one(
        {"name": "d"},
        {"$set": {"count": 5}, "$setOnInsert": {"new": True}},
        upsert=True,
    )

    assert (changed.matched_count, changed.modified_count) == (1, 1)
    assert (unchanged.matched_count, unchanged.modified_count) == (1, 0)
    assert (missing.matched_count, missing.upserted_id) == (0, None)
    assert isinstance(upserted.upserted_id, ObjectId)
    assert db.things.find_one({"_id": 1}) == {"_id": 1, "name": "b", "count": 3}
    assert db.things.find_one({"_id": upserted.upserted_id}, {"_id": 0}) == {
        "name": "d",
        "count": 5,
        "new": True,
    }


def test_update_many_replace_one_and_deletes(db):
    db.things.insert_many([{"_id": n, "even": n % 2 == 0} for n in range(6)])

    many = db.things.update_many({"even": True}, {"$set": {"seen": True}})
    replaced = db.things.replace_one({"_id": 1}, {"replaced": True})
    one = db.things.delete_one({"even": True})
    rest = db.things.delete_many({"even": True})

    assert (many.matched_count, many.modified_count) == (3, 3)
    assert replaced.modified_count == 1
    assert db.things.find_one({"_id": 1}) == {"_id": 1, "replaced": True}
    assert (one.deleted_count, rest.deleted_count) == (1, 2)
    assert sorted(d["_id"] for d in db.things.find()) == [1, 3, 5]


def test_find_one_and_update_and_delete(db):
    db.things.insert_many([{"name": "a", "n": 1}, {"name": "b", "n": 2}])

    after = db.things.find_one_and_update(
        {"name": "a"},
        {"$inc": {"n": 10}},
        projection={"_id": 0},
        return_document=ReturnDocument.AFTER,
    )
    before = db.things.find_one_and_update({"name": "b"}, {"$set": {"n": 0}})
    created = db.things.find_one_and_update(
        {"name": "c"},
        {"$set": {"n": 3}},
        upsert=True,
        return_document=ReturnDocument.AFTER,
    )
    nothing = db.things.find_one_and_update({"name": "z"}, {"$set": {"n": 0}})
    deleted = db.things.find_one_and_delete({}, sort=[("n", DESCENDING)])

    assert after == {"name": "a", "n": 11}
    assert before["n"] == 2
    assert created["name"] == "c" and created["n"] == 3
    assert nothing is None
    assert deleted["name"] == "a"
    assert sorted(d["name"] for d in db.things.find()) == ["b", "c"]


def test_unordered_bulk_write_of_update_ones(db):
    db.things.insert_many([{"_id": n, "v": 0} for n in range(50)])
    requests = [UpdateOne({"_id": n}, {"$set": {"v": n % 2}}) for n in range(60)]

    result = db.things.bulk_write(requests, ordered=False)

    assert result.matched_count == 50
    assert result.modified_count == 25
    assert db.things.count_documents({"v": 1}) == 25


def test_unacknowledged_writes_still_happen(db):
    unacknowledged = db.things.with_options(write_concern=WriteConcern(w=0))

    result = unacknowledged.insert_one({"name": "quiet"})

    assert not result.acknowledged
    deadline = time.monotonic() + 5
    while db.things.count_documents({"name": "quiet"}) == 0:
        assert time.monotonic() < deadline, "the unacknowledged insert never landed"
        time.sleep(0.02)


# --- indexes ------------------------------------------------------------------------


def test_unique_index_rejects_a_duplicate(db):
    db.things.create_index("email", unique=True)
    db.things.insert_many([{"email": "a@example.com"}, {"email": "b@example.com"}])

    with pytest.raises(DuplicateKeyError):
        db.things.insert_one({"email": "a@example.com"})
    with pytest.raises(DuplicateKeyError):
        db.things.update_one(
            {"email": "b@example.com"}, {"$set": {"email": "a@example.com"}}
        )

    assert sorted(d["email"] for d in db.things.find()) == [
        "a@example.com",
        "b@example.com",
    ]


def test_unordered_insert_many_keeps_all_but_the_duplicate(db):
    db.things.create_index("email", unique=True)
    documents = [{"email": e} for e in ["a", "b", "a", "c"]]

    with pytest.raises(BulkWriteError) as caught:
        db.things.insert_many(documents, ordered=False)

    details = caught.value.details
    assert details["nInserted"] == 3
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(2, 11000)]
    assert sorted(d["email"] for d in db.things.find()) == ["a", "b", "c"]


def test_ordered_insert_many_stops_at_the_duplicate(db):
    db.things.create_index("email", unique=True)

    with pytest.raises(BulkWriteError) as caught:
        db.things.insert_many([{"email": e} for e in ["a", "a", "b"]])

    assert caught.value.details["nInserted"] == 1
    assert [d["email"] for d in db.things.find()] == ["a"]


def test_list_indexes_shows_what_was_created(db):
    unique = db.things.create_index([("email", ASCENDING)], unique=True)
    ttl = db.things.create_index("at", expireAfterSeconds=3600, name="at_ttl")
    compound = db.things.create_index([("worker", ASCENDING), ("at", DESCENDING)])
    again = db.things.create_index([("email", ASCENDING)], unique=True)

    indexes = {index["name"]: index for index in db.things.list_indexes()}

    assert (unique, ttl, compound, again) == (
        "email_1",
        "at_ttl",
        "worker_1_at_-1",
        "email_1",
    )
    assert list(indexes) == ["_id_", "email_1", "at_ttl", "worker_1_at_-1"]
    assert indexes["email_1"]["unique"] is True
    assert indexes["at_ttl"]["expireAfterSeconds"] == 3600
    assert list(indexes["worker_1_at_-1"]["key"].items()) == [("worker", 1), ("at", -1)]
    assert db.things.index_information()["email_1"]["key"] == [("email", 1)]

    db.things.drop_index("at_ttl")
    assert "at_ttl" not in db.things.index_information()
    with pytest.raises(OperationFailure):
        db.things.create_index([("email", ASCENDING)], name="other_name")
    with pytest.raises(OperationFailure):
        db.things.create_index([("other", ASCENDING)], name="email_1")


def test_sparse_unique_index_accepts_documents_without_the_field(db):
    db.things.create_index("code", unique=True, sparse=True)

    db.things.insert_many([{"name": "a"}, {"name": "b"}, {"code": 1}])

    with pytest.raises(DuplicateKeyError):
        db.things.insert_one({"code": 1})
    assert db.things.count_documents({}) == 3


def test_aggregate_groups_and_sorts(db):
    db.samples.insert_many(
        [
            {"worker": "w1", "cpu": 10.0},
            {"worker": "w1", "cpu": 30.0},
            {"worker": "w2", "cpu": 50.0},
            {"worker": "w3", "cpu": 99.0, "ignored": True},
        ]
    )

    rows = list(
        db.samples.aggregate(
            [
                {"$match": {"ignored": {"$ne": True}}},
                {
                    "$group": {
                        "_id": "$worker",
                        "avg": {"$avg": "$cpu"},
                        "n": {"$sum": 1},
                    }
                },
                {"$sort": {"avg": -1}},
            ]
        )
    )

    assert rows == [
        {"_id": "w2", "avg": 50.0, "n": 1},
        {"_id": "w1", "avg": 20.0, "n": 2},
    ]


# --- collections and commands ---------------------------------------------------------


def test_time_series_collections_are_refused(db):
    with pytest.raises(OperationFailure) as caught:
        db.create_collection("history", timeseries={"timeField": "t"})

    assert caught.value.code == 72
    assert "history" not in db.list_collection_names()


def test_creating_an_existing_collection_fails(db):
    db.create_collection("things")

    with pytest.raises(CollectionInvalid):
        db.create_collection("things")
    with pytest.raises(OperationFailure) as caught:
        db.create_collection("things", check_exists=False)

    assert caught.value.code == 48
    assert db.list_collection_names(filter={"name": "things"}) == ["things"]
    assert db.list_collection_names(filter={"name": "nothing"}) == []


def test_collections_can_be_listed_and_dropped(db):
    db.c.insert_one({})
    db.b.insert_one({})

    db.b.drop()
    db.missing.drop()

    assert db.list_collection_names() == ["c"]
    assert [info["name"] for info in db.list_collections()] == ["c"]


def test_unknown_commands_fail_and_server_information_answers(client):
    with pytest.raises(OperationFailure) as caught:
        client.admin.command("noSuchThing")

    assert caught.value.code == 59
    assert client.server_info()["version"] == "7.0.0"
    assert client.admin.command("ping")["ok"] == 1.0


def test_history_falls_back_to_a_ttl_index(server):
    from backend import history

    mongoengine.disconnect()
    mongoengine.connect(
        host=f"{server.url}history_test", tz_aware=True, uuidRepresentation="standard"
    )
    try:
        first = history.ensure_collection(retention_days=7)
        second = history.ensure_collection(retention_days=7)
        indexes = history.collection().index_information()
    finally:
        mongoengine.get_connection().drop_database("history_test")
        mongoengine.disconnect()

    assert first == second == "plain"
    assert indexes["t_ttl"]["expireAfterSeconds"] == 7 * 24 * 3600


# --- the wire protocol itself ------------------------------------------------------


def exchange(sock: socket.socket, op_code: int, payload: bytes) -> tuple[int, bytes]:
    """Send one message with request id 7; return the reply's opCode and payload."""
    sock.sendall(struct.pack("<iiii", 16 + len(payload), 7, 0, op_code) + payload)
    header = sock.recv(16, socket.MSG_WAITALL)
    length, _, response_to, reply_op_code = struct.unpack("<iiii", header)
    assert response_to == 7
    return reply_op_code, sock.recv(length - 16, socket.MSG_WAITALL)


def test_raw_messages_with_checksums_sequences_and_legacy_queries(server, client):
    documents = b"".join(bson.encode({"_id": n}) for n in range(3))
    sequence = b"documents\x00" + documents
    insert = (
        struct.pack("<I", 1)  # checksumPresent
        + b"\x00"
        + bson.encode({"insert": "things", "$db": "raw_test"})
        + b"\x01"
        + struct.pack("<i", 4 + len(sequence))
        + sequence
        + b"\x00\x00\x00\x00"
    )
    query = (
        struct.pack("<i", 0)
        + b"admin.$cmd\x00"
        + struct.pack("<ii", 0, -1)
        + bson.encode({"$query": {"isMaster": 1}})
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        msg_op, msg_reply = exchange(sock, 2013, insert)
        query_op, query_reply = exchange(sock, 2004, query)

    assert msg_op == 2013
    assert msg_reply[:5] == b"\x00\x00\x00\x00\x00"
    assert bson.decode(msg_reply[5:]) == {"n": 3, "ok": 1.0}
    assert query_op == 1
    assert struct.unpack("<iqii", query_reply[:20]) == (0, 0, 0, 1)
    hello = bson.decode(query_reply[20:])
    assert hello["ismaster"] is True and hello["maxWireVersion"] == 17
    assert sorted(d["_id"] for d in client.raw_test.things.find()) == [0, 1, 2]
    client.drop_database("raw_test")


# --- several clients and processes -----------------------------------------------


def test_two_clients_see_each_other_writes(server):
    first, second = connect(server.port), connect(server.port)
    try:
        first.shared.things.insert_one({"_id": "from-first"})
        second.shared.things.insert_one({"_id": "from-second"})

        seen_by_first = sorted(d["_id"] for d in first.shared.things.find())
        seen_by_second = sorted(d["_id"] for d in second.shared.things.find())
        first.drop_database("shared")
    finally:
        first.close()
        second.close()

    assert seen_by_first == seen_by_second == ["from-first", "from-second"]


def wait_for_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the server printed nothing"
    return process.stdout.readline().strip()


def test_a_server_process_shares_one_database_between_processes():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for_line(process, 10) == f"mongo-wire listening on 127.0.0.1:{port}"
        mongo = connect(port)
        try:
            mongo.fleet.workers.insert_one({"_id": "w1", "state": "running"})
            other_process = textwrap.dedent(
                f"""
                import pymongo
                client = pymongo.MongoClient(
                    "mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=2000
                )
                workers = client.fleet.workers
                assert workers.find_one({{"_id": "w1"}})["state"] == "running"
                workers.update_one({{"_id": "w1"}}, {{"$set": {{"state": "stopped"}}}})
                workers.insert_one({{"_id": "w2", "state": "pending"}})
                client.close()
                """
            )
            subprocess.run(
                [sys.executable, "-c", other_process], check=True, timeout=30
            )
            states = {d["_id"]: d["state"] for d in mongo.fleet.workers.find()}
        finally:
            mongo.close()

        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = process.wait(timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()

    assert states == {"w1": "stopped", "w2": "pending"}
    assert code == 0
    assert time.monotonic() - started < 5


# --- mongoengine --------------------------------------------------------------------


class WireWorker(mongoengine.Document):
    name = mongoengine.StringField(required=True, unique=True)
    seen_at = mongoengine.DateTimeField()
    labels = mongoengine.DictField()
    restarts = mongoengine.IntField(default=0)

    meta = {
        "db_alias": "wiretest",
        "collection": "wire_workers",
        "indexes": ["-seen_at", {"fields": ["restarts"], "sparse": True}],
    }


@pytest.fixture
def wiretest(server: MongoWireServer) -> Iterator[None]:
    mongoengine.connect(
        db="wiretest",
        host=f"{server.url}wiretest",
        alias="wiretest",
        uuidRepresentation="standard",
    )
    yield
    mongoengine.get_connection("wiretest").drop_database("wiretest")
    mongoengine.disconnect(alias="wiretest")
    WireWorker._collection = None


def test_mongoengine_documents(wiretest):
    at = datetime(2026, 5, 6, 7, 8, 9)
    first = WireWorker(name="w1", seen_at=at, labels={"region": "us-east-1"}).save()
    WireWorker(name="w2", seen_at=at + timedelta(minutes=1)).save()

    latest = WireWorker.objects(seen_at__gte=at).order_by("-seen_at").first()
    updated = WireWorker.objects(name="w1").update(inc__restarts=1)
    modified = WireWorker.objects(name="w1").modify(
        set__labels__zone="a", inc__restarts=1, new=True
    )
    first.reload()

    assert latest.name == "w2"
    assert updated == 1
    assert modified.restarts == 2
    assert first.labels == {"region": "us-east-1", "zone": "a"}
    assert first.seen_at == at
    assert WireWorker.objects.count() == 2
    assert WireWorker.objects(restarts__gt=0).count() == 1
    with pytest.raises(mongoengine.NotUniqueError):
        WireWorker(name="w1").save()
    index_names = set(WireWorker._get_collection().index_information())
    assert {"name_1", "seen_at_-1", "restarts_1"} <= index_names

    first.delete()
    assert WireWorker.objects.count() == 1
    assert WireWorker.objects(name="w1").first() is None
