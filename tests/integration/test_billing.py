"""A simulated year through the real broker and worker: `billing` equals the core's own run."""

from __future__ import annotations

import random
import time

from streams.domain.calendar import kyiv_date, latest_closable_period
from streams.sdk.producer import BillingProducer
from streams.tools.processes import WorkerProcess
from streams.tools.simulate import simulate
from tests.integration.conftest import Pipeline
from tests.integration.expected import (
    BILLING_SQL,
    READINGS_SQL,
    ReferenceRun,
    actual_billing,
    actual_readings,
)
from tests.integration.year import FIRST_MONTH


def _run_year(pipeline: Pipeline, worker: WorkerProcess, kills: set[int]) -> ReferenceRun:
    """Publish the year month by month, closing each; SIGKILL the worker in `kills` months."""
    year = simulate(30, 12, seed=3, start=FIRST_MONTH)
    registry = year.registry_events()
    expected = ReferenceRun()
    expected.registry(registry)
    with BillingProducer(pipeline.settings) as producer:
        for event in registry:
            producer.publish_registry(event, wait=False)
    pipeline.wait_idle()
    for index, (period, submissions) in enumerate(year.by_close()[0]):
        expected.submit(submissions)
        expected.close(period)
        with BillingProducer(pipeline.settings) as producer:
            for submission in submissions:
                producer.submit(submission, wait=False)
            if index in kills:
                # Mid-stream: the month's readings are in flight and the close is queued.
                producer.flush()
                producer.request_period_close(period, "test")
                worker.kill()
                worker.run()
                continue
        pipeline.wait_idle()
        with BillingProducer(pipeline.settings) as producer:
            producer.request_period_close(period, "test")
        pipeline.wait_idle()
    pipeline.wait_idle()
    return expected


def test_a_year_of_billing_equals_the_core(pipeline: Pipeline) -> None:
    worker = pipeline.worker()
    expected = _run_year(pipeline, worker, kills=set())
    billing = pipeline.query(BILLING_SQL)
    assert len(billing) == len(expected.billing)
    assert actual_billing(billing) == expected.billing
    bases = {row[4] for row in expected.billing}
    assert {"actual", "calculated", "estimated"} <= bases
    assert actual_readings(pipeline.query(READINGS_SQL)) == expected.readings


def test_a_year_with_the_worker_killed_twice_ends_with_the_same_billing(
    pipeline: Pipeline,
) -> None:
    worker = pipeline.worker()
    kills = set(random.Random().sample(range(1, 11), 2))
    expected = _run_year(pipeline, worker, kills=kills)
    billing = pipeline.query(BILLING_SQL)
    assert len(billing) == len(expected.billing), f"killed in months {sorted(kills)}"
    assert actual_billing(billing) == expected.billing
    assert actual_readings(pipeline.query(READINGS_SQL)) == expected.readings


def test_automatic_close_bills_every_period_whose_window_has_ended(pipeline: Pipeline) -> None:
    year = simulate(4, 1, seed=3, start=FIRST_MONTH)
    registry = year.registry_events()
    expected = ReferenceRun()
    expected.registry(registry)
    ((period, submissions),), _ = year.by_close()
    expected.submit(submissions)
    due = latest_closable_period(kyiv_date(expected.now))
    expected.close(due)
    first = pipeline.worker()
    pipeline.publish(registry, submissions)
    pipeline.wait_idle()
    first.stop()
    pipeline.env["POKAZY_AUTO_CLOSE"] = "true"
    pipeline.env["POKAZY_AUTO_CLOSE_CHECK_INTERVAL"] = "1"
    pipeline.worker()
    deadline = time.monotonic() + 120
    while not pipeline.query(f"SELECT 1 FROM {{db}}.billing WHERE period = '{due}' LIMIT 1"):
        assert time.monotonic() < deadline, "no automatic close within 120 s"
        time.sleep(1)
    pipeline.wait_idle()
    assert actual_billing(pipeline.query(BILLING_SQL)) == expected.billing
    assert {row[2] for row in expected.billing} >= {str(period), str(due)}
