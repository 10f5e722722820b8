"""The periodic schedule and the refresh lease."""

import threading

from rq_scheduler import Scheduler

from backend import jobs


def _fleet_jobs(scheduler: Scheduler) -> list:
    return [job for job in scheduler.get_jobs() if job.id == jobs.FLEET_JOB_ID]


def test_schedule_registers_once_and_survives_restarts(redis_client):
    scheduler = Scheduler(queue_name=jobs.QUEUE_NAME, connection=redis_client)

    assert jobs.register_schedule(scheduler, 300) == "registered"
    assert jobs.register_schedule(scheduler, 300) == "kept"
    restarted = Scheduler(queue_name=jobs.QUEUE_NAME, connection=redis_client)
    assert jobs.register_schedule(restarted, 300) == "kept"

    registered = _fleet_jobs(scheduler)
    assert len(registered) == 1
    assert registered[0].meta["interval"] == 300
    assert registered[0].timeout == jobs.REFRESH_TIMEOUT_SECONDS


def test_changed_interval_replaces_the_schedule(redis_client):
    scheduler = Scheduler(queue_name=jobs.QUEUE_NAME, connection=redis_client)
    jobs.register_schedule(scheduler, 300)

    assert jobs.register_schedule(scheduler, 60) == "registered"

    registered = _fleet_jobs(scheduler)
    assert [job.meta["interval"] for job in registered] == [60]


def test_lease_admits_one_holder_and_is_released(redis_client):
    entered = threading.Event()
    release = threading.Event()
    results = []

    def hold() -> None:
        with jobs.lease(redis_client, "test:lease", ttl_seconds=5) as acquired:
            results.append(acquired)
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(10)
    with jobs.lease(redis_client, "test:lease") as second:
        results.append(second)
    release.set()
    holder.join(10)

    assert results == [True, False]
    assert redis_client.get("test:lease") is None


def test_lease_is_renewed_while_the_holder_runs(redis_client):
    with jobs.lease(redis_client, "test:lease", ttl_seconds=0.6) as acquired:
        assert acquired
        threading.Event().wait(1.2)
        assert redis_client.get("test:lease") is not None, "renewed past its ttl"
