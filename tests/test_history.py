"""Metric history: samples, downsampling with visible gaps, and the API's ranges."""

from datetime import UTC, datetime, timedelta

import pytest

from backend import history
from backend.connections import is_mongomock
from backend.models import Worker


@pytest.fixture
def worker_id(app):
    with app.app_context():
        return str(Worker(name="w", region="us-east-1", status="running").save().pk)


def _seed(app, worker_id: str, start: datetime, minutes: int, skip=()) -> None:
    samples = [
        {
            "t": start + timedelta(minutes=m),
            "worker_id": worker_id,
            "cloudwatch_cpu_utilization": float(m % 10),
            "cml_labs_count": 3,
        }
        for m in range(minutes)
        if m not in skip
    ]
    with app.app_context():
        history.append_samples(samples)


def test_history_collection_has_retention(app, settings):
    with app.app_context():
        kind = history.ensure_collection(settings.history_retention_days)
        if kind == "timeseries":
            # A time-series collection expires documents by its own option.
            database = history.collection().database
            (info,) = database.list_collections(filter={"name": history.COLLECTION})
            assert info["options"]["timeseries"]["granularity"] == "minutes"
            expiry = [info["options"]["expireAfterSeconds"]]
        else:
            # The stand-in, or a server that refused time series: a TTL index.
            indexes = history.collection().index_information()
            expiry = [
                i["expireAfterSeconds"]
                for i in indexes.values()
                if "expireAfterSeconds" in i
            ]

    if is_mongomock():
        assert kind == "plain"
    assert expiry == [settings.history_retention_days * 86400]


def test_metrics_are_averaged_per_step_with_counts(app, user, worker_id):
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    _seed(app, worker_id, start, 60, skip=range(20, 30))
    since = start.isoformat()
    until = (start + timedelta(hours=1)).isoformat()

    response = user.get(
        f"/api/workers/{worker_id}/metrics",
        query_string={"since": since, "until": until, "step": 600},
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["step"] == 600
    points = body["points"]
    assert [p["count"] for p in points] == [10, 10, 0, 10, 10, 10]
    assert points[0]["cloudwatch_cpu_utilization"] == pytest.approx(4.5)
    assert "cloudwatch_cpu_utilization" not in points[2], "a gap stays a gap"
    assert points[0]["cml_labs_count"] == 3


def test_a_long_range_comes_back_in_at_most_500_points(app, user, worker_id):
    until = datetime.now(UTC)
    since = until - timedelta(days=7)

    body = user.get(
        f"/api/workers/{worker_id}/metrics",
        query_string={
            "since": since.isoformat(),
            "until": until.isoformat(),
            "step": 1,
        },
    ).get_json()

    assert len(body["points"]) <= 500
    assert body["step"] >= 7 * 86400 / 500


@pytest.mark.parametrize(
    "query",
    [
        {"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
        {"since": "yesterday"},
        {"step": "0"},
        {"step": "-5"},
        {"until": "2000-01-01T00:00:00Z", "since": "1999-12-31T00:00:00Z"},
    ],
)
def test_bad_ranges_are_400(user, worker_id, query):
    response = user.get(f"/api/workers/{worker_id}/metrics", query_string=query)

    assert response.status_code == 400
    assert response.get_json()["error"] == "validation_error"


def test_history_of_unknown_worker_is_404(user):
    assert user.get("/api/workers/64b7f0000000000000000000/metrics").status_code == 404
