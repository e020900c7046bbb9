"""Health rules of the streaming job (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobs.stream.health import BatchMetrics, HealthThresholds, assess, processing_lag

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _batch(n: int, minutes_ago: float, lag_s: float = 3.0, **kw) -> BatchMetrics:
    recorded = NOW - timedelta(minutes=minutes_ago)
    return BatchMetrics(n, recorded, recorded - timedelta(seconds=lag_s), 100, **kw)


def test_a_quiet_stream_is_healthy_however_old_its_last_batch():
    report = assess([_batch(1, 120)], NOW, newest_file_at=NOW - timedelta(minutes=125))
    assert report.healthy, report.problems
    assert report.figures["last_batch_age_s"] == 7200.0


def test_files_waiting_past_the_limit_mean_a_stall():
    report = assess([_batch(7, 30)], NOW, newest_file_at=NOW - timedelta(minutes=20))
    assert not report.healthy
    assert report.problems[0].startswith("stalled: last batch 7")


def test_files_that_just_landed_are_not_a_stall_yet():
    assert assess([_batch(7, 30)], NOW, newest_file_at=NOW - timedelta(seconds=30)).healthy


def test_processing_lag_over_the_limit_is_falling_behind():
    report = assess([_batch(1, 1, lag_s=400)], NOW, None)
    assert report.problems == ["falling behind: files waited up to 400s for their batch; limit 300s"]
    assert processing_lag(_batch(1, 1, lag_s=400)) == timedelta(seconds=400)


def test_input_faster_than_processing_for_several_batches_is_falling_behind():
    slow = [_batch(n, 5 - n, input_rows_per_second=900.0, processed_rows_per_second=600.0) for n in range(5)]
    report = assess(slow, NOW, None)
    assert any("input rate above processing rate" in p for p in report.problems)
    one_slow = [_batch(n, 5 - n, input_rows_per_second=500.0, processed_rows_per_second=600.0) for n in range(4)]
    assert assess([*one_slow, slow[-1]], NOW, None).healthy


def test_state_size_and_a_dead_process_are_reported():
    report = assess(
        [_batch(1, 1, state_rows=11)], NOW, None, thresholds=HealthThresholds(max_state_rows=10), running=False
    )
    assert report.problems == ["the streaming job is not running", "state too large: 11 rows (limit 10)"]
    assert "stream unhealthy" in report.message()


def test_never_ran_although_files_landed():
    report = assess([], NOW, newest_file_at=NOW - timedelta(hours=1))
    assert not report.healthy
    assert "no batch recorded" in report.problems[0]
    assert assess([], NOW, newest_file_at=None).healthy
