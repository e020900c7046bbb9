"""Benchmark: cleaning throughput at 10^6 and 10^7 events, Spark job vs the same rules in pandas.

For each size, one day of landing files (JSON Lines, 24 hours x ``--files-per-hour`` files)
is generated with numpy (``simulation.bulk``), including bad lines (truncated JSON, wrong types, unknown event
types, events in the future) and re-delivered duplicates (the same line again in a later
file). Then, in the same run:

- **spark**: the real cleaning job (``jobs.ingest.clean.clean_window``) on the whole day,
  writing the clean lake, the quarantine and the accounting into the embedded PostgreSQL;
- **pandas**: the same rules written the obvious way, file by file: ``json.loads`` per line,
  a DataFrame, vectorised masks, a set of seen ``event_id`` across files, a bot rule by
  ``groupby``, one Parquet file per hour. Quarantined rows are kept in memory, not written;
- **bare**: the least any Spark cleaning must do, in the same JVM: read the day's files with
  the fixed raw schema, ``dropDuplicates`` on ``event_id``, write Parquet partitioned by date.
  No rule, no quarantine, no accounting. It runs once before and once after the job, and the
  faster of the two is the yardstick, so neither a cold JVM nor a cold file cache counts
  against it or against the job.

The job and pandas must produce the same clean / quarantined / duplicate counts (the run stops
if not), so their timings are for the same work. Printed: events/s of each, the Spark/pandas
speed ratio, the job's time over the bare pass's, and how each one's time grows from the
smaller to the larger size (10x the events: 10x the time is linear).

``python -m benchmarks.clean --events 1000000 10000000`` (``make bench-clean``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks.figures import record
from jobs.core import schema
from simulation.bulk import bulk_events

DAY = datetime(2026, 11, 24, tzinfo=UTC)
# The fields each landing line carries (no dwell time or notification id in this data set).
JSON_FIELDS = [
    "event_id",
    "user_id",
    "event_type",
    "item_id",
    "query",
    "price",
    "quantity",
    "session_id",
    "device",
    "ts",
]


def generate_day(landing: Path, events: int, files_per_hour: int, bad_share: float, dup_share: float, seed: int) -> int:
    """Write one day of landing files; return the number of lines written."""
    rng = np.random.default_rng(seed)
    per_file = events // (24 * files_per_hour)
    written, first_id = 0, 0
    redelivered: list[str] = []
    for hour in range(24):
        folder = landing / "events" / f"date={DAY:%Y-%m-%d}" / f"hour={hour:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for part in range(files_per_hour):
            lines = _event_lines(rng, per_file, first_id, DAY + timedelta(hours=hour), max(events // 50, 10))
            first_id += per_file
            _spoil(rng, lines, bad_share)
            # Re-delivery: lines of earlier files arrive again in this one.
            n_dup = int(per_file * dup_share)
            if redelivered and n_dup:
                lines[:n_dup] = rng.choice(np.array(redelivered, dtype=object), n_dup)
            redelivered = list(rng.choice(np.array(lines, dtype=object), min(len(lines), 1000)))
            (folder / f"part-{part:03d}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
            written += len(lines)
    return written


def _event_lines(rng, n: int, first_id: int, hour: datetime, users: int) -> list[str]:
    table = bulk_events(rng, n, users, 10_000, hour, hour + timedelta(hours=1), first_id=first_id)
    table = table.set_column(
        table.schema.get_field_index("ts"),
        "ts",
        pc.strftime(table.column("ts").cast(pa.timestamp("s", tz="UTC")), "%Y-%m-%dT%H:%M:%SZ"),
    )
    frame = table.select(JSON_FIELDS).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    return frame.to_json(orient="records", lines=True).splitlines()


def _spoil(rng, lines: list[str], share: float) -> None:
    """Replace a share of lines by four kinds of bad line."""
    for index in rng.choice(len(lines), int(len(lines) * share), replace=False):
        kind = index % 4
        line = lines[index]
        if kind == 0:
            lines[index] = line[: len(line) // 2]
        elif kind == 1:
            lines[index] = (
                line.replace('"device":', '"price":"cheap","x":', 1)
                if '"price":null' in line
                else line.replace('"price":', '"price":"cheap","y":', 1)
            )
        elif kind == 2:
            lines[index] = line.replace('"event_type":"', '"event_type":"teleport_', 1)
        else:
            lines[index] = line.replace('"ts":"2026', '"ts":"2031', 1)


# --- the pandas yardstick -----------------------------------------------------------------------
def pandas_clean(landing: Path, out: Path, bots_per_minute: int) -> dict:
    """The cleaning rules the obvious pandas way, file by file; returns the accounting."""
    seen: set[str] = set()
    counts: Counter = Counter()
    numeric = [name for name, dtype, _ in schema.EVENT_FIELDS if name in ("price", "quantity", "dwell_ms")]
    for folder in sorted((landing / "events").glob("date=*/hour=*")):
        hour_end = datetime.strptime(folder.parent.name[5:] + folder.name[5:], "%Y-%m-%d%H").replace(tzinfo=UTC)
        hour_end += timedelta(hours=1)
        frames = []
        for path in sorted(folder.iterdir()):
            records = []
            with path.open(encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    counts["input"] += 1
                    if not line.strip():
                        counts["empty_line"] += 1
                        continue
                    try:
                        record = json.loads(line)
                    except ValueError:
                        counts["malformed_json"] += 1
                        continue
                    if not isinstance(record, dict):
                        counts["malformed_json"] += 1
                        continue
                    records.append(record)
            frames.append(pd.DataFrame.from_records(records))
        frame = pd.concat(frames, ignore_index=True)
        reason = pd.Series(None, index=frame.index, dtype=object)

        def flag(mask, code, reason=reason):
            reason[mask & reason.isna()] = code

        for name in numeric:
            if name in frame:
                as_number = pd.to_numeric(frame[name], errors="coerce")
                flag(frame[name].notna() & as_number.isna(), "wrong_type")
                frame[name] = as_number
        for name in schema.REQUIRED_FIELDS:
            flag(frame[name].isna() | (frame[name].astype(str).str.strip() == ""), f"missing_{name}")
        frame["event_type"] = frame["event_type"].str.strip().str.lower()
        flag(~frame["event_type"].isin(schema.EVENT_TYPES), "unknown_event_type")
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="ISO8601")
        flag(frame["ts"].isna(), "bad_timestamp")
        flag(frame["ts"] > pd.Timestamp(hour_end) + pd.Timedelta(minutes=10), "timestamp_in_future")
        flag(frame["event_type"].isin(schema.ITEM_EVENT_TYPES) & frame["item_id"].isna(), "missing_item_id")
        flag((frame["price"] < 0) | (frame["price"] > schema.MAX_PRICE), "price_out_of_range")
        counts.update(reason.dropna().tolist())

        valid = frame[reason.isna()]
        first = valid.drop_duplicates("event_id")
        first = first[~first["event_id"].isin(seen)]
        counts["duplicates"] += len(valid) - len(first)
        seen.update(first["event_id"])
        per_minute = first.groupby(["user_id", first["ts"].dt.floor("min")]).size()
        bots = per_minute[per_minute > bots_per_minute].index.get_level_values(0).unique()
        is_bot = first["user_id"].isin(bots)
        counts["bot"] += int(is_bot.sum())
        clean = first[~is_bot]
        counts["clean"] += len(clean)
        out.mkdir(parents=True, exist_ok=True)
        clean.to_parquet(out / f"{folder.parent.name}-{folder.name}.parquet", index=False)
    reasons = {k: v for k, v in counts.items() if k not in ("input", "clean", "duplicates")}
    return {
        "input": counts["input"],
        "clean": counts["clean"],
        "quarantined": sum(reasons.values()),
        "duplicates": counts["duplicates"],
    }


# --- the run ------------------------------------------------------------------------------------
def bare_pass(spark, landing: Path, out: Path) -> int:
    """Read every landing file of the day with the raw schema, drop repeated event ids, write
    Parquet by date; return the rows written. Lines that do not parse become null rows and are
    written like the rest: this pass judges nothing."""
    from pyspark.sql import functions as F

    from jobs.core.schema import RAW_EVENT_SCHEMA

    events = spark.read.schema(RAW_EVENT_SCHEMA).json(str(landing / "events"))
    deduplicated = events.dropDuplicates(["event_id"]).withColumn("event_date", F.to_date("ts"))
    deduplicated.write.mode("overwrite").partitionBy("event_date").parquet(str(out))
    return spark.read.parquet(str(out)).count()


def _timed(function, *args):
    started = time.monotonic()
    value = function(*args)
    return time.monotonic() - started, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--files-per-hour", type=int, default=4)
    parser.add_argument("--bad-share", type=float, default=0.004)
    parser.add_argument("--dup-share", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    from devenv.localdb import start_sandbox
    from jobs.core.db import apply_migrations, make_engine

    url = start_sandbox("bench-clean")
    apply_migrations(make_engine(url))
    os.environ["PUSH_DATABASE_URL"] = url
    from jobs.core.config import Settings
    from jobs.core.db import truncate_pipeline_tables
    from jobs.core.spark import get_spark
    from jobs.ingest.clean import clean_window

    settings = Settings.from_env()
    started = time.monotonic()
    spark = get_spark(settings)
    print(f"Spark start {time.monotonic() - started:.1f} s (not counted below); master {settings.spark_master}")
    rows = []
    for events in args.events:
        truncate_pipeline_tables(make_engine(url))
        for folder in (settings.landing_dir, settings.lake_dir, settings.local_dir / "pandas-clean"):
            shutil.rmtree(folder, ignore_errors=True)
        started = time.monotonic()
        lines = generate_day(
            settings.landing_dir, events, args.files_per_hour, args.bad_share, args.dup_share, args.seed
        )
        generated = time.monotonic() - started
        print(f"\n{lines:,} lines generated in {generated:.1f} s", flush=True)

        bare_out = settings.local_dir / "bare-clean"
        bare_before, _ = _timed(bare_pass, spark, settings.landing_dir, bare_out)
        spark_seconds, result = _timed(clean_window, spark, settings, DAY, DAY + timedelta(days=1))
        print(f"  spark  {spark_seconds:8.1f} s  {result.counts()}", flush=True)
        bare_after, bare_rows = _timed(bare_pass, spark, settings.landing_dir, bare_out)
        bare_seconds = min(bare_before, bare_after)
        print(
            f"  bare   {bare_seconds:8.1f} s  ({bare_before:.1f} s before, {bare_after:.1f} s after; {bare_rows:,} rows)"
        )

        pandas_seconds, expected = _timed(
            pandas_clean, settings.landing_dir, settings.local_dir / "pandas-clean", settings.bot_events_per_minute
        )
        print(f"  pandas {pandas_seconds:8.1f} s  {expected}", flush=True)
        if expected != result.counts():
            raise SystemExit(f"the two cleanings disagree: spark {result.counts()} vs pandas {expected}")
        rows.append((lines, spark_seconds, pandas_seconds, bare_seconds))

    print(
        "\nlines       | spark s | spark ev/s | pandas s | pandas ev/s | spark speed / pandas | bare s | spark / bare"
    )
    for lines, spark_s, pandas_s, bare_s in rows:
        print(
            f"{lines:>11,} | {spark_s:7.1f} | {lines / spark_s:10,.0f} | {pandas_s:8.1f} | {lines / pandas_s:11,.0f}"
            f" | {pandas_s / spark_s:19.2f}x | {bare_s:6.1f} | {spark_s / bare_s:11.2f}x"
        )
    if len(rows) > 1:
        (n0, s0, p0, _), (n1, s1, p1, _) = rows[0], rows[-1]
        print(
            f"growth {n0:,} -> {n1:,} lines ({n1 / n0:.1f}x): spark time x{s1 / s0:.2f}, pandas time x{p1 / p0:.2f}"
            " (equal to the line ratio = linear)"
        )
    record(
        "bench-clean",
        {
            "runs": [
                {
                    "lines": n,
                    "spark_seconds": round(sp, 2),
                    "pandas_seconds": round(pd_s, 2),
                    "spark_vs_pandas": round(pd_s / sp, 3),
                    "bare_seconds": round(bare, 2),
                    "spark_vs_bare": round(sp / bare, 3),
                }
                for n, sp, pd_s, bare in rows
            ]
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
