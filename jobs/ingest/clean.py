"""Clean one window of landing files: parse, validate, de-duplicate, filter bots.

Every input line ends up in exactly one of three places, and the run records the counts:
``input = clean + quarantined + duplicates``. Clean events are written as Parquet partitioned
like the landing zone (``landing_date``/``landing_hour``) with a dynamic partition overwrite,
so re-cleaning a window replaces exactly the hours of that window. Quarantined lines keep
their raw text, source file, line number and reason in ``push.quarantine``.

CLI: ``python -m jobs.ingest.clean --start 2026-11-24T00:00:00Z --end 2026-11-25T00:00:00Z``.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sqlalchemy import text

from jobs.core import schema
from jobs.core.config import Settings
from jobs.core.db import advisory_lock, copy_frame, copy_rows, make_engine
from jobs.core.errors import PermanentDataError
from jobs.core.spark import get_spark
from jobs.core.timeutil import hour_bounds, hours_between, parse_utc
from jobs.ingest.reference import ITEM_REFERENCE_SCHEMA, REFERENCE_TABLES, read_items
from jobs.privacy.suppression import ERASED_REASON, erased_keys, mark_erased

log = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
RAW_LINE_SCHEMA = T.StructType(
    [
        T.StructField("source_file", T.StringType(), False),
        T.StructField("line_no", T.LongType(), False),
        T.StructField("landing_date", T.DateType(), False),
        T.StructField("landing_hour", T.IntegerType(), False),
        T.StructField("value", T.StringType(), True),
    ]
)
# Rejections that are policy, not bad data: they do not count towards the bad-row threshold.
FILTER_REASONS = frozenset({"bot", ERASED_REASON})
FUTURE_TOLERANCE = timedelta(minutes=10)


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


# --- extract ------------------------------------------------------------------------------------
def landing_files(landing_dir: Path, start: datetime, end: datetime) -> list[tuple[Path, datetime]]:
    """Files of the landing hours in [start, end), with the hour each landed in."""
    found = []
    for hour in hours_between(start, end):
        folder = landing_dir / "events" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
        if folder.is_dir():
            found += [
                (path, hour) for path in sorted(folder.iterdir()) if path.is_file() and not path.name.startswith(".")
            ]
    return found


def read_landing(spark: SparkSession, files: list[tuple[Path, datetime]]) -> DataFrame:
    """Raw lines with source file, 1-based line number and landing partition.

    Line numbers come from the read order inside each file: exact as long as a file is read as
    one split (gzip files always are; plain files below ``spark.sql.files.maxPartitionBytes``).
    """
    if not files:
        return spark.createDataFrame([], RAW_LINE_SCHEMA)
    partition = r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/"
    lines = spark.read.text([str(path) for path, _ in files]).select(
        F.col("_metadata.file_path").alias("source_file"), "value", F.monotonically_increasing_id().alias("_order")
    )
    return lines.select(
        "source_file",
        F.row_number().over(Window.partitionBy("source_file").orderBy("_order")).cast("long").alias("line_no"),
        F.to_date(F.regexp_extract("source_file", partition, 1)).alias("landing_date"),
        F.regexp_extract("source_file", partition, 2).cast("int").alias("landing_hour"),
        "value",
    )


# --- transform ----------------------------------------------------------------------------------
def parse_and_validate(raw: DataFrame) -> DataFrame:
    """Parse each line against the event schema and attach a rejection ``reason`` (null = valid).

    The first failing rule wins, so each line has exactly one reason.
    """
    parse_schema = T.StructType([*schema.RAW_EVENT_SCHEMA.fields, T.StructField(CORRUPT, T.StringType(), True)])
    parsed = raw.withColumn(
        "e", F.from_json("value", parse_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    )
    e = F.col("e")
    ts = F.expr("try_cast(e.ts AS TIMESTAMP)")
    landing_end = F.make_timestamp_ntz(
        F.year("landing_date"),
        F.month("landing_date"),
        F.dayofmonth("landing_date"),
        F.col("landing_hour"),
        F.lit(0),
        F.lit(0),
    ).cast("timestamp") + F.expr("INTERVAL 1 HOUR")
    event_type = F.lower(F.trim(e["event_type"]))
    rules = [
        (F.col("value").isNull() | (F.trim("value") == ""), "empty_line"),
        (
            e.isNull()
            | (e[CORRUPT].isNotNull() & (F.get_json_object("value", "$").isNull() | ~F.trim("value").startswith("{"))),
            "malformed_json",
        ),
        (e[CORRUPT].isNotNull(), "wrong_type"),
        *[
            (e[name].isNull() | (F.trim(e[name].cast("string")) == ""), f"missing_{name}")
            for name in schema.REQUIRED_FIELDS
        ],
        (~event_type.isin(*schema.EVENT_TYPES), "unknown_event_type"),
        (ts.isNull(), "bad_timestamp"),
        (ts > landing_end + F.expr(f"INTERVAL {int(FUTURE_TOLERANCE.total_seconds())} SECONDS"), "timestamp_in_future"),
        (event_type.isin(*schema.ITEM_EVENT_TYPES) & e["item_id"].isNull(), "missing_item_id"),
        ((e["price"] < 0) | (e["price"] > schema.MAX_PRICE), "price_out_of_range"),
        ((e["quantity"] < 0) | (e["quantity"] > schema.MAX_QUANTITY), "quantity_out_of_range"),
        ((e["dwell_ms"] < 0), "dwell_out_of_range"),
    ]
    reason = F.lit(None).cast("string")
    for condition, code in reversed(rules):
        reason = F.when(condition, F.lit(code)).otherwise(reason)
    normalised = [
        F.trim(e["event_id"]).alias("event_id"),
        F.trim(e["user_id"]).alias("user_id"),
        event_type.alias("event_type"),
        F.trim(e["item_id"]).alias("item_id"),
        e["query"].alias("query"),
        e["price"].alias("price"),
        e["quantity"].alias("quantity"),
        e["session_id"].alias("session_id"),
        F.lower(e["device"]).alias("device"),
        ts.alias("ts"),
        e["dwell_ms"].alias("dwell_ms"),
        e["notification_id"].alias("notification_id"),
    ]
    # Input columns pass through (the batch reader's five; the stream adds its landing time).
    return parsed.select(*raw.columns, *normalised, reason.alias("reason"))


def drop_duplicates(valid: DataFrame) -> DataFrame:
    """Keep the first delivery of each ``event_id`` (earliest landing, file, line)."""
    first = Window.partitionBy("event_id").orderBy("landing_date", "landing_hour", "source_file", "line_no")
    return valid.withColumn("_n", F.row_number().over(first)).where("_n = 1").drop("_n")


def flag_bots(events: DataFrame, max_events_per_minute: int) -> DataFrame:
    """Mark every event of a user who exceeded the per-minute rate in this window as ``bot``."""
    per_minute = events.groupBy("user_id", F.date_trunc("minute", "ts").alias("minute")).count()
    bots = per_minute.where(F.col("count") > max_events_per_minute).select("user_id").distinct()
    return (
        events.join(bots.withColumn("_bot", F.lit(True)), "user_id", "left")
        .withColumn("reason", F.when(F.col("_bot"), F.lit("bot")).otherwise(F.col("reason")))
        .drop("_bot")
    )


CLEAN_COLUMNS = [field.name for field in schema.CLEAN_EVENT_SCHEMA.fields]


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


# --- load ---------------------------------------------------------------------------------------
def _hour_path(clean_dir: Path, hour: datetime) -> Path:
    return clean_dir / f"landing_date={hour:%Y-%m-%d}" / f"landing_hour={hour.hour}"


def write_clean(spark: SparkSession, clean: DataFrame, clean_dir: Path, start: datetime, end: datetime) -> None:
    """Overwrite exactly the window's hour partitions (hours with no clean rows are emptied)."""
    clean.repartition("landing_date", "landing_hour").write.mode("overwrite").option(
        "partitionOverwriteMode", "dynamic"
    ).partitionBy("landing_date", "landing_hour").parquet(str(clean_dir))
    written = {
        (r.landing_date, r.landing_hour) for r in clean.select("landing_date", "landing_hour").distinct().collect()
    }
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    for hour in hours_between(start, end):
        if (hour.date(), hour.hour) not in written:
            path = jvm.org.apache.hadoop.fs.Path(str(_hour_path(clean_dir, hour)))
            path.getFileSystem(conf).delete(path, True)


def record_run(result: CleanResult, quarantined_rows: list[tuple], settings: Settings) -> None:
    """Replace the quarantine rows of the window's landing hours and its accounting, in one transaction."""
    with make_engine(settings.database_url).begin() as conn:
        window = {"s": result.window_start, "e": result.window_end}
        # Lines the stream rejected (stream_batch set) are not this window's to replace.
        conn.execute(
            text("DELETE FROM push.quarantine WHERE landing_hour >= :s AND landing_hour < :e AND stream_batch IS NULL"),
            window,
        )
        copy_rows(
            conn,
            "push.quarantine",
            ["window_start", "landing_hour", "source_file", "line_no", "reason", "raw"],
            quarantined_rows,
        )
        conn.execute(
            text(
                "INSERT INTO push.ingest_runs (window_start, window_end, input_rows, clean_rows, quarantined_rows,"
                " duplicate_rows, by_reason) VALUES (:s, :e, :i, :c, :q, :d, CAST(:r AS jsonb))"
                " ON CONFLICT (window_start, window_end) DO UPDATE SET input_rows = EXCLUDED.input_rows,"
                " clean_rows = EXCLUDED.clean_rows, quarantined_rows = EXCLUDED.quarantined_rows,"
                " duplicate_rows = EXCLUDED.duplicate_rows, by_reason = EXCLUDED.by_reason"
            ),
            {
                **window,
                "i": result.input_rows,
                "c": result.clean_rows,
                "q": result.quarantined_rows,
                "d": result.duplicate_rows,
                "r": json.dumps(result.by_reason, sort_keys=True),
            },
        )


def write_daily_summary(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> None:
    """Recompute ``push.daily_event_summary`` for every event date this window can touch.

    Late events land up to a day after their event time, so the dates from the hour before
    ``start`` to ``end`` are recomputed from two days of landing partitions around them.
    """
    first = (start - timedelta(hours=1)).date()
    last = (end - timedelta(microseconds=1)).date()
    window_start = datetime.combine(first, datetime.min.time(), start.tzinfo)
    window_end = datetime.combine(last, datetime.min.time(), start.tzinfo) + timedelta(days=2)
    items_path = settings.landing_dir / "reference" / REFERENCE_TABLES["items"][1]
    items = read_items(spark, settings) if items_path.exists() else spark.createDataFrame([], ITEM_REFERENCE_SCHEMA)
    events = read_clean(spark, settings, window_start, window_end).where(
        F.to_date("ts").between(F.lit(first), F.lit(last))
    )
    summary = daily_event_summary(events, items).toPandas()
    with make_engine(settings.database_url).begin() as conn:
        conn.execute(
            text("DELETE FROM push.daily_event_summary WHERE event_date BETWEEN :a AND :b"), {"a": first, "b": last}
        )
        copy_frame(conn, "push.daily_event_summary", summary)


def _sanitise(raw: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; keep everything else of the raw line.
    return None if raw is None else raw.replace("\x00", "\\u0000")


def clean_window(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> CleanResult:
    """Clean the landing hours in [start, end) and record the outcome. Raises when too much is bad.

    The window is widened to whole hours. Runs that touch the lake are serialised (an advisory
    lock), so the hourly and the daily DAG never overwrite an hour under each other.
    """
    start, end = hour_bounds(start, end)
    with advisory_lock(make_engine(settings.database_url), "push:clean-lake"):
        return _clean_locked(spark, settings, start, end)


def _clean_locked(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> CleanResult:
    raw = read_landing(spark, landing_files(settings.landing_dir, start, end)).cache()
    with make_engine(settings.database_url).connect() as conn:
        erased = erased_keys(conn)
    checked = mark_erased(parse_and_validate(raw), erased, settings.pseudonym_key).cache()
    valid = checked.where("reason IS NULL")
    # The first delivery wins: earlier copies in this window, and copies already cleaned from
    # the preceding landing hours, make the others duplicates.
    earlier = read_clean(spark, settings, start - timedelta(hours=settings.dedupe_hours), start).select("event_id")
    first_deliveries = drop_duplicates(valid).join(earlier, "event_id", "left_anti")
    screened = flag_bots(first_deliveries, settings.bot_events_per_minute).cache()
    clean = screened.where("reason IS NULL").select(*CLEAN_COLUMNS)
    rejected = checked.where("reason IS NOT NULL").unionByName(
        screened.where("reason IS NOT NULL").select(checked.columns)
    )

    input_rows = raw.count()
    valid_rows = valid.count()
    unique_rows = screened.count()
    clean_rows = clean.count()
    reasons = {r["reason"]: r["count"] for r in rejected.groupBy("reason").count().collect()}
    quarantined = [
        (start, _hour_start(r.landing_date, r.landing_hour), r.source_file, r.line_no, r.reason, _sanitise(r.value))
        for r in rejected.select("landing_date", "landing_hour", "source_file", "line_no", "reason", "value")
        .orderBy("source_file", "line_no")
        .collect()
    ]
    result = CleanResult(start, end, input_rows, clean_rows, sum(reasons.values()), valid_rows - unique_rows, reasons)
    if result.input_rows != result.clean_rows + result.quarantined_rows + result.duplicate_rows:
        raise AssertionError(f"accounting does not balance: {result}")
    try:
        if result.bad_share > settings.max_bad_row_share:
            # Recorded, but nothing reaches the lake: downstream never reads a failed window.
            record_run(result, quarantined, settings)
            bad = {k: v for k, v in reasons.items() if k not in FILTER_REASONS}
            top = ", ".join(f"{k}={v}" for k, v in sorted(bad.items(), key=lambda kv: -kv[1])[:3])
            raise BadInputShareExceeded(
                f"{result.bad_share:.2%} of {result.input_rows} rows quarantined in {start}..{end} "
                f"(threshold {settings.max_bad_row_share:.2%}); top reasons: {top}"
            )
        write_clean(spark, clean, settings.clean_dir, start, end)
        written = read_clean(spark, settings, start, end).count()
        if written != clean_rows:
            raise AssertionError(f"wrote {written} clean rows for {start}..{end}, expected {clean_rows}")
        record_run(result, quarantined, settings)
        write_daily_summary(spark, settings, start, end)
    finally:
        for frame in (raw, checked, screened):
            frame.unpersist()
    log.info("cleaned %s..%s: %s", start, end, result)
    return result


def _hour_start(day, hour: int) -> datetime:
    return datetime.combine(day, time(hour), UTC)


def _has_clean(settings: Settings) -> bool:
    return settings.clean_dir.exists() and any(settings.clean_dir.glob("landing_date=*"))


def _window_filter(start: datetime, end: datetime):
    hour_start = F.to_timestamp(
        F.concat_ws(" ", F.col("landing_date").cast("string"), F.format_string("%02d:00:00", "landing_hour"))
    )
    return (hour_start >= F.lit(start)) & (hour_start < F.lit(end))


def read_clean(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> DataFrame:
    """Clean events of the landing hours in [start, end) (empty frame if none were cleaned)."""
    start, end = hour_bounds(start, end)
    if not _has_clean(settings):
        return spark.createDataFrame([], schema.CLEAN_EVENT_SCHEMA)
    return spark.read.parquet(str(settings.clean_dir)).where(_window_filter(start, end)).select(*CLEAN_COLUMNS)


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
