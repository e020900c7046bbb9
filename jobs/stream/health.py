"""Health of the streaming job, judged from its per-batch metrics (``push.stream_batches``).

Pure functions over plain values, so the rules are unit-tested without Spark or a database;
:func:`load_batches` and :func:`newest_landing` are the only I/O, used by the Airflow check.

A quiet stream is not a stalled one: with no new files there are no batches, so the last batch's
age alone says nothing. The job is **stalled** when files landed after its last batch and have
waited longer than the allowed age; it is **falling behind** when files wait too long before
their batch is recorded (processing lag) or when it reads faster than it processes; its state
is **too large** above a row budget (each state row costs memory on the driver's executors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text


@dataclass(frozen=True)
class BatchMetrics:
    """One micro-batch as the health rules see it."""

    batch_id: int
    recorded_at: datetime | None
    first_landed_at: datetime | None
    input_rows: int
    input_rows_per_second: float | None = None
    processed_rows_per_second: float | None = None
    state_rows: int | None = None


@dataclass(frozen=True)
class HealthThresholds:
    max_batch_age: timedelta = timedelta(minutes=10)
    max_processing_lag: timedelta = timedelta(minutes=5)
    max_state_rows: int = 5_000_000
    # Reading faster than processing for this many recent batches in a row means a growing backlog.
    behind_batches: int = 5


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    problems: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)

    def message(self) -> str:
        if self.healthy:
            return f"stream healthy: {self.figures}"
        return "stream unhealthy: " + "; ".join(self.problems) + f" ({self.figures})"


def processing_lag(batch: BatchMetrics) -> timedelta | None:
    """How long the batch's oldest file waited until the batch's decisions were recorded."""
    if batch.recorded_at is None or batch.first_landed_at is None:
        return None
    return batch.recorded_at - batch.first_landed_at


def assess(
    batches: Sequence[BatchMetrics],
    now: datetime,
    newest_file_at: datetime | None,
    thresholds: HealthThresholds | None = None,
    running: bool = True,
) -> HealthReport:
    """Judge the stream from its recent batches (newest last) and the newest landed file."""
    limits = thresholds or HealthThresholds()
    problems: list[str] = []
    if not running:
        problems.append("the streaming job is not running")
    recorded = [b for b in batches if b.recorded_at is not None]
    last = recorded[-1] if recorded else None
    figures: dict = {"batches": len(batches)}
    if last is None:
        if newest_file_at is not None and now - newest_file_at > limits.max_batch_age:
            problems.append(f"no batch recorded although files landed (newest at {newest_file_at.isoformat()})")
        return HealthReport(not problems, problems, figures)

    age = now - last.recorded_at
    figures["last_batch_id"] = last.batch_id
    figures["last_batch_age_s"] = round(age.total_seconds(), 1)
    waiting = newest_file_at is not None and newest_file_at > last.recorded_at
    if waiting and age > limits.max_batch_age and now - newest_file_at > limits.max_batch_age:
        problems.append(
            f"stalled: last batch {last.batch_id} recorded {age.total_seconds():.0f}s ago while files landed since "
            f"(newest {newest_file_at.isoformat()}); limit {limits.max_batch_age.total_seconds():.0f}s"
        )

    lags = [lag for lag in (processing_lag(b) for b in recorded[-limits.behind_batches :]) if lag is not None]
    if lags:
        worst = max(lags)
        figures["max_processing_lag_s"] = round(worst.total_seconds(), 1)
        if worst > limits.max_processing_lag:
            problems.append(
                f"falling behind: files waited up to {worst.total_seconds():.0f}s for their batch; "
                f"limit {limits.max_processing_lag.total_seconds():.0f}s"
            )

    rated = [b for b in batches[-limits.behind_batches :] if b.input_rows_per_second and b.processed_rows_per_second]
    if rated:
        figures["input_rows_per_second"] = round(rated[-1].input_rows_per_second, 1)
        figures["processed_rows_per_second"] = round(rated[-1].processed_rows_per_second, 1)
    if len(rated) >= limits.behind_batches and all(
        b.input_rows_per_second > b.processed_rows_per_second for b in rated
    ):
        problems.append(
            f"falling behind: input rate above processing rate for the last {len(rated)} batches "
            f"({rated[-1].input_rows_per_second:.0f} > {rated[-1].processed_rows_per_second:.0f} rows/s)"
        )

    states = [b.state_rows for b in batches if b.state_rows is not None]
    if states:
        figures["state_rows"] = states[-1]
        if states[-1] > limits.max_state_rows:
            problems.append(f"state too large: {states[-1]} rows (limit {limits.max_state_rows})")
    return HealthReport(not problems, problems, figures)


# --- I/O for the Airflow check ----------------------------------------------------------------------
def load_batches(engine: Engine, limit: int = 50) -> list[BatchMetrics]:
    """The most recent batches of the newest query (oldest first)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT batch_id, recorded_at, first_landed_at, input_rows, input_rows_per_second,"
                " processed_rows_per_second, state_rows FROM push.stream_batches"
                " WHERE query_id = (SELECT query_id FROM push.stream_batches ORDER BY started_at DESC LIMIT 1)"
                " ORDER BY batch_id DESC LIMIT :n"
            ),
            {"n": limit},
        ).all()
    return [BatchMetrics(*row) for row in reversed(rows)]


def newest_landing(folder: Path) -> datetime | None:
    """Modification time of the newest visible file under ``folder`` (None if there is none)."""
    from datetime import UTC

    newest = None
    if folder.is_dir():
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith((".", "_")):
                mtime = path.stat().st_mtime
                newest = mtime if newest is None or mtime > newest else newest
    return None if newest is None else datetime.fromtimestamp(newest, UTC)
