"""Storage that differs between a real MongoDB and the in-process stand-in.

With TEST_MONGODB_URL set, the whole suite runs against that server (see
conftest); the tests marked ``real_server`` check what only a real server does
and are skipped without one.
"""

import os
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from backend import history
from backend.connections import is_mongomock, update_each
from backend.models import Worker


def real_server(test):
    """For what only a real MongoDB does; ``-m "not real_server"`` leaves it out."""
    needs_one = pytest.mark.skipif(
        not os.environ.get("TEST_MONGODB_URL"),
        reason="needs a real MongoDB: set TEST_MONGODB_URL",
    )
    return pytest.mark.real_server(needs_one(test))


@real_server
def test_app_talks_to_a_real_server(app):
    with app.app_context():
        assert not is_mongomock()


@real_server
def test_history_is_a_time_series_collection(app, settings):
    with app.app_context():
        kind = history.ensure_collection(settings.history_retention_days)
        database = history.collection().database
        (info,) = database.list_collections(filter={"name": history.COLLECTION})

    assert kind == "timeseries"
    assert info["type"] == "timeseries"
    assert info["options"]["timeseries"]["timeField"] == "t"
    assert info["options"]["timeseries"]["metaField"] == "worker_id"


@real_server
def test_samples_come_back_from_the_time_series_collection(app):
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with app.app_context():
        history.append_samples(
            {"t": start.replace(minute=m), "worker_id": "w", "cml_labs_count": m}
            for m in range(10)
        )
        points = history.read_points("w", start, start.replace(minute=10), step=300)

    assert [p["count"] for p in points] == [5, 5]
    assert [p["cml_labs_count"] for p in points] == [2.0, 7.0]


def test_one_update_per_document_in_one_call(app):
    # One bulk write on a real server, one update at a time on the stand-in.
    with app.app_context():
        ids = [Worker(name=f"w{i}", region="us-east-1").save().pk for i in range(3)]
        update_each(
            Worker._get_collection(),
            [
                ({"_id": ObjectId(str(pk))}, {"$set": {"name": f"n{i}"}})
                for i, pk in enumerate(ids)
            ],
        )
        names = sorted(w.name for w in Worker.objects)

    assert names == ["n0", "n1", "n2"]
