"""Clean one window of landing files and account for every line.

Every input line ends up in exactly one of three places, and the run records the counts:
``input = clean + quarantined + duplicates``. Quarantined lines keep their raw text, source
file, line number and reason in ``push.quarantine``; unreadable files are listed in
``push.quarantined_files``. The pieces: :mod:`jobs.ingest.landing` (files and readers),
:mod:`jobs.ingest.rules` (the rules), :mod:`jobs.ingest.lake` (the lake's contract).

CLI: ``python -m jobs.ingest.clean --start 2026-11-24T00:00:00Z --end 2026-11-25T00:00:00Z``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import ChunkReader, advisory_lock, copy_frame, copy_rows, copy_text_field, libpq_url, make_engine
from jobs.core.errors import PermanentDataError
from jobs.core.spark import get_spark
from jobs.core.timeutil import hour_bounds, parse_utc
from jobs.ingest.lake import (
    PARTITION_COLUMNS,
    read_clean,
    read_clean_by_event_time,
    with_event_partition_columns,
    write_clean,
)
from jobs.ingest.landing import (
    READ_ERRORS,
    FileList,
    FileProblem,
    error_summary,
    number_lines,
    probe_files,
    read_landing,
    scan_event_files,
    screen_parquet,
    with_raw_text,
)
from jobs.ingest.reference import ITEM_REFERENCE_SCHEMA, REFERENCE_TABLES
from jobs.ingest.rules import (
    FILTER_REASONS,
    QUARANTINE_COLUMNS,
    JudgedLines,
    LineRules,
    clean_rows,
    parse_and_validate,
    quarantine_text,
)
from jobs.privacy.suppression import erased_keys

log = logging.getLogger(__name__)


class BadInputShareExceeded(PermanentDataError):
    """Raised when a window's quarantined share exceeds the configured threshold."""


@dataclass(frozen=True)
class CleanResult:
    window_start: datetime
    window_end: datetime
    input_rows: int
    clean_rows: int
    quarantined_rows: int
    duplicate_rows: int
    by_reason: dict[str, int]
    # Landing files: seen = read + quarantined; partly read ones (a truncated gzip) count as read.
    files_seen: int = 0
    files_read: int = 0
    files_quarantined: int = 0
    files_partial: int = 0

    def counts(self) -> dict[str, int]:
        """The accounting identity's terms, for task logs and XCom."""
        return {
            "input": self.input_rows,
            "clean": self.clean_rows,
            "quarantined": self.quarantined_rows,
            "duplicates": self.duplicate_rows,
        }

    @property
    def bad_share(self) -> float:
        """Share of input rows rejected as bad data (bot filtering is not bad data)."""
        bad = sum(n for reason, n in self.by_reason.items() if reason not in FILTER_REASONS)
        return bad / self.input_rows if self.input_rows else 0.0


def landing_as_cleaned(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> DataFrame:
    """The window's landing lines as its last clean run read them, judged by the same rules.

    Files that run quarantined are left out and partly read ones read up to their break, so
    that a check of the raw batch (the ``raw_events`` suite) sees what cleaning saw.
    """
    files, _ = scan_event_files(spark, settings, start, end)
    with make_engine(settings.database_url).connect() as conn:
        problems = conn.execute(
            text(
                "SELECT source_file, partial FROM push.quarantined_files WHERE landing_hour >= :s AND landing_hour < :e"
            ),
            {"s": start, "e": end},
        ).all()
    skipped = {path for path, partial in problems if not partial}
    tolerant = {path for path, partial in problems if partial}
    readable = [(path, hour) for path, hour in files if str(path) not in skipped]
    raw = read_landing(spark, readable, tolerant=tolerant)
    return parse_and_validate(raw, settings.max_id_length, settings.max_text_length)


def daily_event_summary(events: DataFrame, items: DataFrame) -> DataFrame:
    """Events and distinct users per UTC event date, event type and item category."""
    return (
        events.join(items.select("item_id", "category"), "item_id", "left")
        .groupBy(
            F.to_date("ts").alias("event_date"),
            "event_type",
            F.coalesce("category", F.when(F.col("item_id").isNull(), "(no item)").otherwise("(unknown item)")).alias(
                "category"
            ),
        )
        .agg(F.count("*").alias("events"), F.countDistinct("user_id").alias("users"))
    )


def stage_quarantine(rejected: DataFrame, settings: Settings, token: str, window_start: datetime) -> dict[str, int]:
    """Write rejected lines into ``push.quarantine_incoming`` from the Spark tasks; count them by reason.

    Each task COPYs its own partition over its own connection, so no rejected row passes
    through the driver, however many there are. :func:`record_run` moves the rows into
    ``push.quarantine`` in the run's transaction.
    """
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM push.quarantine_incoming WHERE token = :t"), {"t": token})
    rows = quarantine_text(rejected).select(
        "landing_date", "landing_hour", "source_file", "line_no", "reason", "value", "raw_bytes"
    )
    rows.foreachPartition(_copy_partition(libpq_url(settings.database_url), token, window_start.isoformat()))
    with engine.connect() as conn:
        counted = conn.execute(
            text("SELECT reason, count(*) FROM push.quarantine_incoming WHERE token = :t GROUP BY reason"), {"t": token}
        )
        return {reason: int(n) for reason, n in counted}


def _copy_partition(dsn: str, token: str, window_start: str):
    """The function each Spark task runs on its partition of rejected lines (see :func:`stage_quarantine`)."""

    def copy(rows: Iterator) -> None:
        first = next(rows, None)
        if first is None:
            return
        import psycopg2

        lines = (
            "\t".join(
                [
                    copy_text_field(token),
                    window_start,
                    f"{row.landing_date:%Y-%m-%d} {row.landing_hour:02d}:00:00+00",
                    copy_text_field(row.source_file),
                    "\\N" if row.line_no is None else str(row.line_no),
                    copy_text_field(row.reason),
                    "\\N" if row.value is None else copy_text_field(row.value),
                    "\\N" if row.raw_bytes is None else copy_text_field("\\x" + bytes(row.raw_bytes).hex()),
                ]
            )
            + "\n"
            for row in itertools.chain([first], rows)
        )
        conn = psycopg2.connect(dsn)
        try:
            with conn, conn.cursor() as cursor:
                columns = ", ".join(("token", *QUARANTINE_COLUMNS))
                cursor.copy_expert(f"COPY push.quarantine_incoming ({columns}) FROM STDIN", ChunkReader(lines), 1 << 18)
        finally:
            conn.close()

    return copy


def record_run(result: CleanResult, token: str, problems: list[FileProblem], settings: Settings) -> None:
    """Replace the window's quarantine rows, quarantined files and accounting, in one transaction."""
    with make_engine(settings.database_url).begin() as conn:
        window = {"s": result.window_start, "e": result.window_end, "t": token}
        # Lines the stream rejected (stream_batch set) are not this window's to replace.
        conn.execute(
            text("DELETE FROM push.quarantine WHERE landing_hour >= :s AND landing_hour < :e AND stream_batch IS NULL"),
            window,
        )
        columns = ", ".join(QUARANTINE_COLUMNS)
        conn.execute(
            text(
                f"INSERT INTO push.quarantine ({columns}) SELECT {columns} FROM push.quarantine_incoming"
                " WHERE token = :t"
            ),
            window,
        )
        conn.execute(text("DELETE FROM push.quarantine_incoming WHERE token = :t"), window)
        conn.execute(text("DELETE FROM push.quarantined_files WHERE landing_hour >= :s AND landing_hour < :e"), window)
        copy_rows(
            conn,
            "push.quarantined_files",
            [
                "window_start",
                "window_end",
                "landing_hour",
                "source_file",
                "size_bytes",
                "reason",
                "error",
                "partial",
                "lines_read",
            ],
            [
                (
                    result.window_start,
                    result.window_end,
                    p.landing_hour,
                    p.path,
                    p.size_bytes,
                    p.reason,
                    p.error,
                    p.partial,
                    p.lines_read,
                )
                for p in problems
            ],
        )
        conn.execute(
            text(
                "INSERT INTO push.ingest_runs (window_start, window_end, input_rows, clean_rows, quarantined_rows,"
                " duplicate_rows, by_reason, files_seen, files_read, files_quarantined, files_partial)"
                " VALUES (:s, :e, :i, :c, :q, :d, CAST(:r AS jsonb), :fs, :fr, :fq, :fp)"
                " ON CONFLICT (window_start, window_end) DO UPDATE SET input_rows = EXCLUDED.input_rows,"
                " clean_rows = EXCLUDED.clean_rows, quarantined_rows = EXCLUDED.quarantined_rows,"
                " duplicate_rows = EXCLUDED.duplicate_rows, by_reason = EXCLUDED.by_reason,"
                " files_seen = EXCLUDED.files_seen, files_read = EXCLUDED.files_read,"
                " files_quarantined = EXCLUDED.files_quarantined, files_partial = EXCLUDED.files_partial"
            ),
            {
                **window,
                "i": result.input_rows,
                "c": result.clean_rows,
                "q": result.quarantined_rows,
                "d": result.duplicate_rows,
                "r": json.dumps(result.by_reason, sort_keys=True),
                "fs": result.files_seen,
                "fr": result.files_read,
                "fq": result.files_quarantined,
                "fp": result.files_partial,
            },
        )


def write_daily_summary(spark: SparkSession, settings: Settings, dates: set[date]) -> None:
    """Recompute ``push.daily_event_summary`` for the given event dates, each from its own partitions.

    The lake is partitioned by event time, so a date's summary includes late arrivals.
    """
    if not dates:
        return
    first, last = min(dates), max(dates)
    items = catalogue(spark, settings)
    if items is None:
        items = spark.createDataFrame([], ITEM_REFERENCE_SCHEMA)
    events = read_clean_by_event_time(
        spark,
        settings,
        datetime.combine(first, time(), UTC),
        datetime.combine(last, time(), UTC) + timedelta(days=1),
    )
    summary = daily_event_summary(events, items).toPandas()
    with make_engine(settings.database_url).begin() as conn:
        conn.execute(
            text("DELETE FROM push.daily_event_summary WHERE event_date BETWEEN :a AND :b"), {"a": first, "b": last}
        )  # dates in between are recomputed too: same result as before
        copy_frame(conn, "push.daily_event_summary", summary)


def catalogue(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """The catalogue's item ids and categories, or None when there is no snapshot yet."""
    items_path = settings.landing_dir / "reference" / REFERENCE_TABLES["items"][1]
    if not items_path.exists():
        return None
    # Read afresh through pandas: a Spark file read of the same path can be answered from a frame
    # another job cached earlier in this process, i.e. from an older snapshot.
    items = pd.read_csv(items_path, usecols=["item_id", "category"], dtype=str, keep_default_na=False)
    return spark.createDataFrame(items.replace({"": None}), "item_id string, category string")


def clean_window(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> CleanResult:
    """Clean the landing hours in [start, end) and record the outcome. Raises when too much is bad.

    The window is widened to whole hours. Runs that touch the lake are serialised (an advisory
    lock), so the hourly and the daily DAG never overwrite an hour under each other. A file that
    cannot be read is quarantined (``push.quarantined_files``) and the rest of the window is
    cleaned; only a window with no readable file at all fails.
    """
    start, end = hour_bounds(start, end)
    if settings.unknown_items not in ("keep", "quarantine"):
        raise ValueError(f"PUSH_UNKNOWN_ITEMS must be 'keep' or 'quarantine', not {settings.unknown_items!r}")
    with advisory_lock(make_engine(settings.database_url), "push:clean-lake"):
        files, problems = scan_event_files(spark, settings, start, end)
        problems += screen_parquet(spark, files)
        while True:
            try:
                return _clean_files(spark, settings, start, end, files, problems)
            except READ_ERRORS as error:
                # Some file broke the window's read. Spark's error names it, else every file is
                # read alone to find it; then the window is cleaned again without it (or with its
                # readable prefix). With none found the failure was not the files' and is raised.
                readable = _readable(files, problems)
                message = error_summary(error, limit=100_000)
                named = [(path, hour) for path, hour in readable if str(path) in message]
                found = [p for p in probe_files(spark, named or readable) if p.path not in {q.path for q in problems}]
                if not found:
                    raise
                log.warning("unreadable landing files in %s..%s: %s", start, end, [(p.path, p.reason) for p in found])
                problems = problems + found


def _readable(files: FileList, problems: list[FileProblem]) -> FileList:
    """``files`` without those quarantined whole (partly read ones stay)."""
    skipped = {p.path for p in problems if not p.partial}
    return [(path, hour) for path, hour in files if str(path) not in skipped]


def _clean_files(
    spark: SparkSession,
    settings: Settings,
    start: datetime,
    end: datetime,
    listed: FileList,
    problems: list[FileProblem],
) -> CleanResult:
    files = _readable(listed, problems)
    tolerant = {p.path for p in problems if p.partial}
    token = f"clean:{start.isoformat()}:{end.isoformat()}"
    file_counts = {
        # Entries found unreadable while listing are not among the listed files.
        "files_seen": len(listed) + len({p.path for p in problems} - {str(path) for path, _ in listed}),
        "files_read": len(files),
        "files_partial": len(tolerant),
    }
    file_counts["files_quarantined"] = file_counts["files_seen"] - len(files)
    if problems and not files:
        result = CleanResult(start, end, 0, 0, 0, 0, {}, **file_counts)
        record_run(result, token, problems, settings)
        named = "; ".join(f"{p.path} ({p.reason}: {p.error[:200]})" for p in problems)
        raise PermanentDataError(
            f"no landing file of {start}..{end} could be read: {named}. Replace or remove them "
            "(push.quarantined_files lists them) and re-run the window."
        )
    raw = read_landing(spark, files, numbered=False, tolerant=tolerant)
    with make_engine(settings.database_url).connect() as conn:
        erased = erased_keys(conn)
    items = None
    if settings.unknown_items == "quarantine":
        items = catalogue(spark, settings)
        if items is None:
            log.warning("no catalogue snapshot: events with unknown items cannot be told apart and are kept")
    cached: list[DataFrame] = []

    def parse_once(checked: DataFrame) -> DataFrame:
        # Parsed once and cached; line numbers come from the cached rows (no second pass over
        # the input). Only rejected rows keep their raw text: the cache is then about half the
        # size and a large window stays in memory instead of spilling to disk.
        kept = checked.withColumn("value", F.when(F.col("reason").isNotNull(), F.col("value"))).cache()
        cached.append(kept)
        return number_lines(kept)

    # The first delivery wins: earlier copies in this window, and copies already cleaned from
    # the preceding landing hours, make the others duplicates.
    earlier = read_clean(spark, settings, start - timedelta(hours=settings.dedupe_hours), start).select("event_id")
    judged = clean_rows(raw, LineRules.from_settings(settings, erased, items), earlier, parse_once)
    try:
        result, leaves = _judge(spark, settings, start, end, files, tolerant, judged, token, file_counts)
        clean = judged.clean
        if result.bad_share > settings.max_bad_row_share:
            # Recorded, but nothing reaches the lake: downstream never reads a failed window.
            record_run(result, token, problems, settings)
            bad = {k: v for k, v in result.by_reason.items() if k not in FILTER_REASONS}
            top = ", ".join(f"{k}={v}" for k, v in sorted(bad.items(), key=lambda kv: -kv[1])[:3])
            raise BadInputShareExceeded(
                f"{result.bad_share:.2%} of {result.input_rows} rows quarantined in {start}..{end} "
                f"(threshold {settings.max_bad_row_share:.2%}); top reasons: {top}. Nothing of the window "
                "reached the lake: look at push.quarantine for it, fix the source and re-run the window, or raise "
                "PUSH_MAX_BAD_ROW_SHARE if such input is expected."
            )
        touched_dates = write_clean(spark, clean, settings.clean_dir, start, end, leaves)
        written = read_clean(spark, settings, start, end).count()
        if written != result.clean_rows:
            raise AssertionError(f"wrote {written} clean rows for {start}..{end}, expected {result.clean_rows}")
        record_run(result, token, problems, settings)
        write_daily_summary(spark, settings, touched_dates)
    finally:
        for frame in cached:
            frame.unpersist()
    log.info("cleaned %s..%s: %s", start, end, result)
    return result


def _judge(
    spark: SparkSession,
    settings: Settings,
    start: datetime,
    end: datetime,
    files: FileList,
    tolerant: set[str],
    judged: JudgedLines,
    token: str,
    file_counts: dict[str, int],
) -> tuple[CleanResult, set[tuple]]:
    """Count the verdicts, stage the rejected lines for the quarantine; check the accounting.

    Returns the accounting and the lake leaves the clean rows go to.
    """
    checked, screened = judged.checked, judged.screened
    tally = with_event_partition_columns(screened).groupBy("reason", *PARTITION_COLUMNS).count().collect()
    unique_rows = sum(r["count"] for r in tally)
    clean_count = sum(r["count"] for r in tally if r.reason is None)
    leaves = {tuple(r[c] for c in PARTITION_COLUMNS) for r in tally if r.reason is None}
    late_hours = {(r.landing_date, r.landing_hour) for r in tally if r.reason is not None}
    late_rejects = screened.where("reason IS NOT NULL").select(
        "landing_date", "landing_hour", "source_file", "line_no", "reason"
    )
    kept = ["landing_date", "landing_hour", "source_file", "line_no", "reason", "value"]
    rejected = (
        checked.where("reason IS NOT NULL")
        .select(*kept)
        .unionByName(with_raw_text(spark, files, late_rejects, late_hours, tolerant))
    )
    totals = checked.agg(F.count("*").alias("input"), F.count_if(F.col("reason").isNull()).alias("valid")).first()
    input_rows, valid_rows = totals["input"], totals["valid"]
    reasons = stage_quarantine(rejected, settings, token, start)
    result = CleanResult(
        start, end, input_rows, clean_count, sum(reasons.values()), valid_rows - unique_rows, reasons, **file_counts
    )
    if result.input_rows != result.clean_rows + result.quarantined_rows + result.duplicate_rows:
        raise AssertionError(f"accounting does not balance: {result}")
    return result, leaves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=parse_utc, required=True, help="window start, ISO-8601 (UTC if no offset)")
    parser.add_argument("--end", type=parse_utc, required=True, help="window end (exclusive)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    result = clean_window(get_spark(settings), settings, args.start, args.end)
    print(
        json.dumps({**result.__dict__, "window_start": str(result.window_start), "window_end": str(result.window_end)})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
