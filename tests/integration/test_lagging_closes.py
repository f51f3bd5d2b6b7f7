"""Closes published after the next month's first readings, and master data that arrives after
its period was closed, through the real broker and worker: the views equal the core's own run
(SPEC §2.4-2.5), also with the worker SIGKILLed once mid-month."""

from __future__ import annotations

import random

from streams.sdk.producer import BillingProducer
from tests.integration.conftest import Pipeline
from tests.integration.expected import (
    BILLING_SQL,
    READINGS_SQL,
    ReferenceRun,
    actual_billing,
    actual_readings,
)
from tests.integration.year import LaggingYear, lagging_year

REJECTIONS_SQL = "SELECT event_id, reason FROM {db}.rejections"


def _run(pipeline: Pipeline, kill_in: int | None) -> ReferenceRun:
    """Publish phase by phase, pausing until the worker is idle; SIGKILL it in phase `kill_in`
    while that phase's submissions and close are in flight."""
    worker = pipeline.worker()
    expected = ReferenceRun()
    for index, phase in enumerate(lagging_year().phases):
        expected.registry(phase.registry)
        expected.submit(phase.submissions)
        if phase.close is not None:
            expected.close(phase.close)
        with BillingProducer(pipeline.settings) as producer:
            for event in phase.registry:
                producer.publish_registry(event, wait=False)
            for submission in phase.submissions:
                producer.submit(submission, wait=False)
            producer.flush()
            if phase.close is not None:
                producer.request_period_close(phase.close, "test")
        if index == kill_in:
            worker.kill()
            worker.run()
        pipeline.wait_idle()
    return expected


def _assert_views_equal_the_core(
    pipeline: Pipeline, expected: ReferenceRun, context: str = "undisturbed"
) -> None:
    billing = pipeline.query(BILLING_SQL)
    assert len(billing) == len(expected.billing), context
    assert actual_billing(billing) == expected.billing, context
    assert actual_readings(pipeline.query(READINGS_SQL)) == expected.readings, context
    rejections = {(r["event_id"], r["reason"]) for r in pipeline.query(REJECTIONS_SQL)}
    assert rejections == expected.rejections, context


def _assert_the_rules_were_met(year: LaggingYear, expected: ReferenceRun) -> None:
    """The traffic exercised both rules, so the equality of the views says something."""
    early = {s["event_id"] for phase in year.phases for s in phase.submissions
             if s["sender_id"].endswith("-early")}  # fmt: skip
    below = {event_id for event_id, reason in expected.rejections if reason == "BELOW_PREVIOUS"}
    assert len(early & below) >= 3  # misreads below a still-open month's reading
    assert len(early - below) >= 10  # the same value again, or a little more: accepted
    late = {year.removed[0], year.exchanged[0]}
    finals = {row[:4] for row in expected.billing if row[4] == "final" and row[0] in late}
    # Both late removals of March are billed final once, in April, the next period closed.
    april = str(year.gone_in.next())
    assert finals == {(*year.removed, april, "total"), (*year.exchanged, april, "total")}
    # The new meter, installed on 20 March and known only in April, from April on.
    assert {row[2] for row in expected.billing if row[1] == year.new_meter} == {
        "2023-04", "2023-05", "2023-06",
    }  # fmt: skip


def test_lagging_closes_and_late_master_data_equal_the_core(pipeline: Pipeline) -> None:
    expected = _run(pipeline, kill_in=None)
    _assert_the_rules_were_met(lagging_year(), expected)
    _assert_views_equal_the_core(pipeline, expected)


def test_lagging_closes_with_the_worker_killed_mid_month(pipeline: Pipeline) -> None:
    phases = lagging_year().phases
    kill_in = random.Random().choice(
        [i for i, phase in enumerate(phases) if phase.submissions and phase.close is not None]
    )
    expected = _run(pipeline, kill_in=kill_in)
    _assert_views_equal_the_core(pipeline, expected, f"killed in phase {kill_in}")
