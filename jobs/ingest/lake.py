"""The clean-event lake: its layout, its one writer and its readers.

Clean events are Parquet partitioned by **event time** and then by landing hour
(``event_date=/event_hour=/landing_date=/landing_hour=``): a late event sits with the other
events of its hour, and re-cleaning a landing window replaces exactly the leaves that window
wrote (a dynamic partition overwrite, plus removal of leaves it no longer produces). Readers
select by landing hour (reproducible re-runs) or by event time (partition-pruned).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import schema
from jobs.core.config import Settings
from jobs.core.errors import PermanentDataError
from jobs.core.spark import hadoop_fs
from jobs.core.timeutil import hour_bounds, hours_between
from jobs.ingest.rules import CLEAN_COLUMNS

log = logging.getLogger(__name__)

# The lake's partition columns, outermost first: event time, then the landing hour.
PARTITION_COLUMNS = ("event_date", "event_hour", "landing_date", "landing_hour")


def with_event_partition_columns(clean: DataFrame) -> DataFrame:
    """Add the event-time partition columns (UTC date and hour of ``ts``)."""
    return clean.withColumn("event_date", F.to_date("ts")).withColumn("event_hour", F.hour("ts"))


def landing_leaves(spark: SparkSession, clean_dir: Path, start: datetime, end: datetime) -> list[str]:
    """Paths of the lake leaves holding events that landed in [start, end), whatever their event time.

    One listing for the whole window (a glob over its landing dates, filtered to its hours):
    a glob per hour would list the whole event-time tree once per hour of the window.
    """
    hours = {(f"{hour:%Y-%m-%d}", hour.hour) for hour in hours_between(start, end)}
    if not hours:
        return []
    dates = sorted({day for day, _ in hours})
    alternatives = dates[0] if len(dates) == 1 else "{" + ",".join(dates) + "}"
    pattern = f"{clean_dir}/event_date=*/event_hour=*/landing_date={alternatives}/landing_hour=*"
    fs, jvm = hadoop_fs(spark, str(clean_dir))
    found = [
        str(status.getPath().toUri().getPath())
        for status in fs.globStatus(jvm.org.apache.hadoop.fs.Path(pattern)) or []
    ]
    leaves = []
    for leaf in found:
        match = _LANDING.search(leaf)
        if match and (match.group(1), int(match.group(2))) in hours:
            leaves.append(leaf)
    return leaves


def write_clean(
    spark: SparkSession, clean: DataFrame, clean_dir: Path, start: datetime, end: datetime, leaves: set[tuple]
) -> set[date]:
    """Overwrite exactly the window's leaves; leaves of its landing hours it no longer produces go.

    A dynamic partition overwrite replaces the (event hour, landing hour) leaves written now;
    a leaf from an earlier run of the same landing hour with no rows this time is deleted, so a
    re-run leaves exactly what a first run would have. ``leaves`` are the partition values
    (:data:`PARTITION_COLUMNS`) the rows fall into, which the caller has already tallied.
    Returns the event dates whose content may have changed (before or after).
    """
    _refuse_legacy_layout(clean_dir)
    _remove_unfinished_writes(spark, clean_dir)
    before = set(landing_leaves(spark, clean_dir, start, end))
    clean = with_event_partition_columns(clean)
    clean.repartition(*PARTITION_COLUMNS).write.mode("overwrite").option(
        "partitionOverwriteMode", "dynamic"
    ).partitionBy(*PARTITION_COLUMNS).parquet(str(clean_dir))
    written = {str(leaf_path(clean_dir, *leaf)) for leaf in leaves}
    fs, jvm = hadoop_fs(spark, str(clean_dir))
    for leaf in landing_leaves(spark, clean_dir, start, end):
        if leaf not in written:
            fs.delete(jvm.org.apache.hadoop.fs.Path(leaf), True)
    return {date.fromisoformat(_EVENT_DATE.search(leaf).group(1)) for leaf in before | written}


def _remove_unfinished_writes(spark: SparkSession, clean_dir: Path) -> None:
    """Delete the staging folders of writes killed before their commit.

    Readers skip them (hidden names), so they only take space. The caller holds the lake lock,
    so no write is in flight. A leaf such a write had already replaced is restored by the re-run
    of its window (the task's retry).
    """
    fs, jvm = hadoop_fs(spark, str(clean_dir))
    for status in fs.globStatus(jvm.org.apache.hadoop.fs.Path(f"{clean_dir}/.spark-staging-*")) or []:
        log.warning("removing %s, left by a lake write that did not finish", status.getPath())
        fs.delete(status.getPath(), True)


_EVENT_DATE = re.compile(r"event_date=(\d{4}-\d{2}-\d{2})")
_LANDING = re.compile(r"landing_date=(\d{4}-\d{2}-\d{2})/landing_hour=(\d{1,2})$")


def leaf_path(clean_dir: Path, event_date, event_hour: int, landing_date, landing_hour: int) -> Path:
    return (
        clean_dir
        / f"event_date={event_date:%Y-%m-%d}"
        / f"event_hour={event_hour}"
        / f"landing_date={landing_date:%Y-%m-%d}"
        / f"landing_hour={landing_hour}"
    )


def _refuse_legacy_layout(clean_dir: Path) -> None:
    if clean_dir.is_dir() and any(clean_dir.glob("landing_date=*")):
        raise PermanentDataError(
            f"{clean_dir} holds clean events in the older landing-hour layout; delete that folder "
            "and re-clean the landing zone (the daily DAG's clean_days param) to rebuild it by event time"
        )


def _has_clean(settings: Settings) -> bool:
    _refuse_legacy_layout(settings.clean_dir)
    return settings.clean_dir.exists() and any(settings.clean_dir.glob("event_date=*/event_hour=*/landing_date=*"))


def _window_filter(start: datetime, end: datetime):
    hour_start = F.to_timestamp(
        F.concat_ws(" ", F.col("landing_date").cast("string"), F.format_string("%02d:00:00", "landing_hour"))
    )
    return (hour_start >= F.lit(start)) & (hour_start < F.lit(end))


def read_clean(
    spark: SparkSession, settings: Settings, start: datetime, end: datetime, with_event_partition: bool = False
) -> DataFrame:
    """Clean events of the landing hours in [start, end) (empty frame if none were cleaned).

    Windows by landing hour make every reader reproducible: a re-run for the same dates sees
    the same rows even after late events for those dates have landed since.
    ``with_event_partition`` adds the lake's ``event_date`` and ``event_hour`` columns.
    """
    start, end = hour_bounds(start, end)
    columns = [*CLEAN_COLUMNS, *(("event_date", "event_hour") if with_event_partition else ())]
    if not _has_clean(settings):
        empty = spark.createDataFrame([], schema.CLEAN_EVENT_SCHEMA)
        return with_event_partition_columns(empty).select(*columns) if with_event_partition else empty
    return _read_lake(spark, settings).where(_window_filter(start, end)).select(*columns)


def read_clean_by_event_time(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> DataFrame:
    """Clean events with ``ts`` in [start, end), whenever they landed (event-date partitions pruned)."""
    if not _has_clean(settings):
        return spark.createDataFrame([], schema.CLEAN_EVENT_SCHEMA)
    first, last = start.astimezone(UTC).date(), (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    return (
        _read_lake(spark, settings)
        .where(F.col("event_date").between(F.lit(first), F.lit(last)))
        .where((F.col("ts") >= F.lit(start)) & (F.col("ts") < F.lit(end)))
        .select(*CLEAN_COLUMNS)
    )


def _read_lake(spark: SparkSession, settings: Settings) -> DataFrame:
    return spark.read.option("basePath", str(settings.clean_dir)).parquet(str(settings.clean_dir))


def lookback_events(spark: SparkSession, settings: Settings, as_of: datetime) -> DataFrame:
    """Clean events that landed in the ``lookback_days`` before ``as_of``."""
    return read_clean(spark, settings, as_of - timedelta(days=settings.lookback_days), as_of)
