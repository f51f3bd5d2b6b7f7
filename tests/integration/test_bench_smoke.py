"""`pokazy bench`, tiny, against the real test broker: every figure is there and makes sense.

No timing thresholds: the machine is shared, so only the shape of the report is asserted, and
the counts that do not depend on timing.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from streams.domain.calendar import Period
from streams.settings import Settings
from streams.tools.bench import BenchOptions, Traffic, percentile, register_readings, run_bench


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def test_bench_reports_every_figure(broker: str, tmp_path: Path) -> None:
    settings = Settings(
        kafka_bootstrap=broker, data_dir=tmp_path, partitions=2, kafka_session_timeout=6
    )
    # A hang fails the test within minutes instead of waiting out the default timeout.
    # The first worker runs under the profiler, as `--profile` asks: it must not rot either.
    options = BenchOptions(
        accounts=200, workers=1, latency_rate=200, latency_seconds=3, timeout=120,
        profile=tmp_path / "worker",
    )  # fmt: skip
    output = io.StringIO()
    json_path = tmp_path / "bench.json"

    run_bench(settings, options, console=Console(file=output, width=160), json_path=json_path)

    report = orjson.loads(json_path.read_bytes())
    assert set(report) == {
        "started_at", "options", "machine", "publish", "throughput", "latency", "memory",
        "state", "recovery", "registry", "close", "baseline", "ratio_to_baseline", "core",
        "notes",
    }  # fmt: skip
    assert report["options"]["accounts"] == 200
    assert report["options"]["profile"] == str(tmp_path / "worker")
    assert any("Pipeline.handle_batch" in p.read_text() for p in tmp_path.glob("worker-*.txt"))

    core = report["core"]
    # The registry: a meter per account, and the meters the traffic exchanges.
    assert core["submissions"] == 200 and core["registry_events"] >= 200
    assert core["readings"] >= core["submissions"]
    assert _positive(core["us_per_submission"]) and _positive(core["registry_us_per_event"])

    machine = report["machine"]
    assert _positive(machine["cores"])
    assert machine["cpu_model"] and machine["python"].startswith("3.")
    assert machine["packages"]["faust-streaming"] == "0.15.3"
    assert machine["kafka_version"] and machine["kafka_bootstrap"] == broker

    publish = report["publish"]
    assert publish["registry_events"] == core["registry_events"]
    assert publish["submissions"] == 200
    assert publish["readings"] >= publish["submissions"]
    assert _positive(publish["msgs_per_s"]) and _positive(publish["registry_msgs_per_s"])

    throughput = report["throughput"]
    assert throughput["workers"] == 1
    assert throughput["readings"] == publish["readings"]
    # Every published reading ends as an accepted or a rejected row; a retried event's rows
    # replace their twins, so the views hold the distinct events' readings only.
    assert 0 < throughput["accepted_rows"] + throughput["rejected_rows"] <= throughput["readings"]
    assert throughput["rejected_rows"] > 0  # the traffic has its customers' mistakes
    for name in (
        "processing_seconds", "readings_per_s", "publish_seconds", "seconds_from_publish",
        "idle_seconds_from_publish", "worker_cpu_seconds", "worker_cpu_per_reading_us",
        "worker_busy_share",
    ):  # fmt: skip
        assert _positive(throughput[name]), name
    assert throughput["processing_seconds"] <= throughput["seconds_from_publish"]
    assert throughput["publish_seconds"] <= throughput["seconds_from_publish"]
    assert throughput["seconds_from_publish"] <= throughput["idle_seconds_from_publish"]

    latency = report["latency"]
    assert latency["unseen"] == 0
    assert latency["measured"] > 0 and latency["readings"] >= latency["submissions"]
    assert 0 < latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    assert _positive(latency["achieved_readings_per_s"])
    # Every submission gets a reply, retries and unknown accounts included.
    assert latency["reply_unseen"] == 0
    assert 0 < latency["reply_p50_ms"] <= latency["reply_p90_ms"] <= latency["reply_p99_ms"]
    assert latency["reply_p99_ms"] <= latency["reply_max_ms"]

    registry = report["registry"]
    assert registry["workers"] == 1 and registry["events"] == 200  # --accounts by default
    for name in ("publish_seconds", "seconds", "events_per_s"):
        assert _positive(registry[name]), name

    close = report["close"]
    assert close["accounts"] == registry["events"]  # the accounts phase 6 registered
    assert close["partitions"] == 2 and close["store"] == "memory://"
    assert _positive(close["seconds"]) and _positive(close["accounts_per_s"])
    # A line per zone of each meter: one or two per account.
    assert close["accounts"] <= close["billing_rows"] <= 2 * close["accounts"]
    assert len(close["peak_rss_mib"]) == 1 and _positive(close["rss_bytes_per_account"])

    memory = report["memory"]
    assert len(memory["peak_rss_mib"]) == 1 and all(map(_positive, memory["peak_rss_mib"]))
    assert _positive(memory["peak_rss_mib_after_restart"])
    assert _positive(memory["baseline_peak_rss_mib"])

    state = report["state"]
    assert state["store"] == "memory://"
    assert state["changelog_topic"].endswith("worker-accounts-changelog")
    assert state["accounts_with_state"] == 200  # every registered account has state
    assert state["changelog_messages"] >= state["accounts_with_state"]
    assert _positive(state["changelog_bytes"]) and _positive(state["bytes_per_account"])
    assert state["changelog_disk_bytes"] is None or _count(state["changelog_disk_bytes"])

    assert [r["stop"] for r in report["recovery"]] == ["SIGTERM", "SIGKILL"]
    for restart in report["recovery"]:
        assert _positive(restart["health_seconds"])
        # A restarted worker that never makes the probe queryable is reported, not waited for:
        # that is the worker's defect to fix, and this test checks the report's shape only.
        if restart["stalled"]:
            assert restart["first_message_seconds"] is None
        else:
            assert restart["health_seconds"] <= restart["first_message_seconds"]
        assert restart["session_timeout_s"] == 6

    baseline = report["baseline"]
    # The baseline reads exactly phase 1's submissions and writes one row per reading.
    assert baseline["readings"] == baseline["rows"] == throughput["readings"]
    assert _positive(baseline["readings_per_s"]) and _positive(baseline["cpu_seconds"])
    assert _positive(report["ratio_to_baseline"])
    assert math.isclose(
        report["ratio_to_baseline"], throughput["readings_per_s"] / baseline["readings_per_s"]
    )

    printed = output.getvalue()
    assert "end-to-end throughput" in printed and "ratio to the baseline" in printed
    assert "reply latency p99" in printed and "period close" in printed
    # The run cleans up after itself: its data dir is gone.
    assert not list((tmp_path / "bench").iterdir())


def test_traffic_is_deterministic_and_has_the_usual_mix() -> None:
    first, second = Traffic(300, 600, seed=1), Traffic(300, 600, seed=1)
    submissions = first.submissions(600)
    assert submissions == second.submissions(600)
    assert register_readings(submissions) > len(submissions)  # two-zone meters send two
    event_ids = [s["event_id"] for s in submissions]
    assert len(set(event_ids)) < len(event_ids)  # bots retry
    known = {m["account_id"] for m in first.registry}
    assert any(s["account_id"] not in known for s in submissions)
    this_month = Period.of(datetime.now(UTC).date()).first_day.isoformat()
    assert all(s["submitted_at"] < this_month for s in submissions)  # nothing from the future


def test_traffic_that_runs_out_starts_over_with_new_event_ids() -> None:
    traffic = Traffic(20, 10, seed=1)
    simulated = traffic.submissions(len(traffic._simulated))
    again = traffic.submissions(len(simulated))
    assert [{**s, "event_id": ""} for s in again] == [{**s, "event_id": ""} for s in simulated]
    assert not {s["event_id"] for s in again} & {s["event_id"] for s in simulated}


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    ordered = [float(n) for n in range(1, 101)]
    assert percentile(ordered, 50) == 50.0
    assert percentile(ordered, 99) == 99.0
    assert percentile(ordered, 100) == 100.0
