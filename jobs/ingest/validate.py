"""Validate a clean window with Great Expectations; raise before anything downstream runs.

Two suites (``expectations/``): ``raw_events`` on the landing window as parsed, with the
bad-row budget as its tolerance, and ``clean_events`` on what the cleaner wrote, including the
event-time partition, clock-skew and catalogue checks. Results are recorded in
``push.validation_runs`` and rendered as Data Docs (HTML) under ``.local/gx``; the path of the report is logged and carried in the error message.

CLI: ``python -m jobs.ingest.validate --start ... --end ...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import make_engine
from jobs.core.errors import PermanentDataError
from jobs.core.spark import get_spark
from jobs.core.timeutil import hour_bounds, parse_utc
from jobs.ingest.clean import catalogue, landing_as_cleaned
from jobs.ingest.lake import read_clean
from jobs.ingest.rules import CLEAN_COLUMNS, FUTURE_TOLERANCE, PAYLOAD

log = logging.getLogger(__name__)


class DataQualityError(PermanentDataError):
    """A batch failed its expectation suite; downstream tasks must not run."""


@dataclass(frozen=True)
class ValidationOutcome:
    suite: str
    success: bool
    evaluated: int
    failures: list[dict]
    docs_path: Path | None


# A passing suite needs counts only: GX otherwise runs one Spark job per expectation to fetch up
# to 20 unexpected values, none of which exist. A failing suite is run again with the values, so
# its Data Docs page shows examples of what broke.
COUNTS_ONLY = {"result_format": "BASIC", "partial_unexpected_count": 0}
WITH_EXAMPLES = {"result_format": "SUMMARY"}


def run_suite(frame: DataFrame, suite_builder, gx_dir: Path, batch_name: str) -> ValidationOutcome:
    """Run one suite on a Spark frame in a file-backed GX context and build its Data Docs.

    The frame is cached while the suite runs: each metric bundle is a Spark job of its own, and
    without the cache every one of them would read and parse the window's files again.
    """
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        outcome = _run_checkpoint(frame, suite_builder, gx_dir, batch_name, COUNTS_ONLY)
        if not outcome.success:
            outcome = _run_checkpoint(frame, suite_builder, gx_dir, batch_name, WITH_EXAMPLES)
    finally:
        frame.unpersist()
    return outcome


def _run_checkpoint(
    frame: DataFrame, suite_builder, gx_dir: Path, batch_name: str, result_format: dict
) -> ValidationOutcome:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    gx_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(gx_dir))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = context.suites.add_or_update(suite_builder())
    source = context.data_sources.add_or_update_spark(name="spark")
    asset = (
        source.get_asset(suite.name)
        if suite.name in source.get_asset_names()
        else source.add_dataframe_asset(suite.name)
    )
    batch_definition = (
        asset.get_batch_definition("whole")
        if "whole" in [b.name for b in asset.batch_definitions]
        else asset.add_batch_definition_whole_dataframe("whole")
    )
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{suite.name}-whole", data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{suite.name}-checkpoint",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format=result_format,
        )
    )
    result = checkpoint.run(
        batch_parameters={"dataframe": frame}, run_id=gx.core.run_identifier.RunIdentifier(run_name=batch_name)
    )
    validation = next(iter(result.run_results.values()))
    failures = [
        {
            "expectation": r.expectation_config.type,
            "kwargs": {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"},
            "unexpected_count": (r.result or {}).get("unexpected_count"),
        }
        for r in validation.results
        if not r.success
    ]
    docs = gx_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    return ValidationOutcome(
        suite.name, bool(result.success), len(validation.results), failures, docs if docs.exists() else None
    )


def raw_batch(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> DataFrame:
    """The landing window's lines as the cleaner parses them (each with its verdict).

    Without the raw text: the suite never reads it, and the frame is cached while it runs.
    """
    return landing_as_cleaned(spark, settings, start, end).drop("value", PAYLOAD)


def clean_batch(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> DataFrame:
    """The window's clean rows with their event partition and the three computed checks."""
    rows = read_clean(spark, settings, start, end, with_event_partition=True)
    landing_end = F.to_timestamp(
        F.concat_ws(" ", F.col("landing_date").cast("string"), F.format_string("%02d:00:00", "landing_hour"))
    ) + F.expr(f"INTERVAL {3600 + int(FUTURE_TOLERANCE.total_seconds())} SECONDS")
    items = catalogue(spark, settings)
    if items is None:
        rows = rows.withColumn("_known", F.lit(None).cast("string"))
    else:
        known = items.select(F.col("item_id").alias("_known")).distinct()
        rows = rows.join(F.broadcast(known), rows["item_id"] == known["_known"], "left")
    return rows.select(
        *CLEAN_COLUMNS,
        "event_date",
        "event_hour",
        ((F.to_date("ts") == F.col("event_date")) & (F.hour("ts") == F.col("event_hour"))).alias(
            "ts_in_event_partition"
        ),
        (F.col("ts") <= landing_end).alias("ts_before_landing"),
        # No catalogue snapshot: nothing to check against, so every item counts as known.
        F.when(F.col("item_id").isNull(), F.lit(None).cast("boolean"))
        .otherwise(F.col("_known").isNotNull() | F.lit(items is None))
        .alias("item_in_catalogue"),
    )


def validate_clean_window(settings: Settings, start: datetime, end: datetime) -> list[ValidationOutcome]:
    """Run the raw suite on the landing window, then the clean suite on what the cleaner wrote.

    Both are recorded; the first failure raises (the clean suite still runs and is recorded
    when the raw one fails, so the report shows both).
    """
    from expectations import clean_events, raw_events

    spark = get_spark(settings)
    start, end = hour_bounds(start, end)
    label = f"{start:%Y-%m-%dT%H}..{end:%Y-%m-%dT%H}"
    # Unknown items are either quarantined (then none may remain) or kept within the bad-row budget.
    known_share = 1.0 if settings.unknown_items == "quarantine" else 1.0 - settings.max_bad_row_share
    outcomes = [
        run_suite(
            raw_batch(spark, settings, start, end),
            partial(raw_events.build_suite, settings.max_bad_row_share),
            settings.local_dir / "gx",
            f"raw_events {label}",
        ),
        run_suite(
            clean_batch(spark, settings, start, end),
            partial(clean_events.build_suite, known_share),
            settings.local_dir / "gx",
            f"clean_events {label}",
        ),
    ]
    with make_engine(settings.database_url).begin() as conn:
        for outcome in outcomes:
            conn.execute(
                text(
                    "INSERT INTO push.validation_runs (suite, window_start, window_end, success, evaluated, failed,"
                    " failures) VALUES (:suite, :s, :e, :ok, :n, :f, CAST(:failures AS jsonb))"
                    " ON CONFLICT (suite, window_start, window_end) DO UPDATE SET success = EXCLUDED.success,"
                    " evaluated = EXCLUDED.evaluated, failed = EXCLUDED.failed, failures = EXCLUDED.failures"
                ),
                {
                    "suite": outcome.suite,
                    "s": start,
                    "e": end,
                    "ok": outcome.success,
                    "n": outcome.evaluated,
                    "f": len(outcome.failures),
                    "failures": json.dumps(outcome.failures, default=str),
                },
            )
    for outcome in outcomes:
        log.info(
            "GX %s on %s..%s: success=%s; Data Docs: %s", outcome.suite, start, end, outcome.success, outcome.docs_path
        )
    for outcome in outcomes:
        if not outcome.success:
            names = ", ".join(f"{f['expectation']}({f['kwargs'].get('column', '')})" for f in outcome.failures)
            raise DataQualityError(
                f"suite '{outcome.suite}' failed for {start}..{end}: {names}. Report: {outcome.docs_path}"
            )
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=parse_utc, required=True)
    parser.add_argument("--end", type=parse_utc, required=True)
    args = parser.parse_args(argv)
    outcomes = validate_clean_window(Settings.from_env(), args.start, args.end)
    print(json.dumps([{"suite": o.suite, "success": o.success, "docs": str(o.docs_path)} for o in outcomes]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
