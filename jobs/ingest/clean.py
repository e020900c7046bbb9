"""Clean one window of landing files: parse, validate, de-duplicate, filter bots.

Every input line ends up in exactly one of three places, and the run records the counts:
``input = clean + quarantined + duplicates``. Quarantined lines keep their raw text, source
file, line number and reason in ``push.quarantine``.

Landing files are JSON Lines, CSV (with a header line) or Parquet, each optionally gzipped
(JSON Lines and CSV); the format comes from the file name. All three are turned into one JSON
payload per input row, so one set of rules judges them all.

Clean events are Parquet partitioned by **event time** and then by landing hour
(``event_date=/event_hour=/landing_date=/landing_hour=``): a late event sits with the other
events of its hour, and re-cleaning a landing window replaces exactly the leaves that window
wrote (a dynamic partition overwrite, plus removal of leaves it no longer produces).

CLI: ``python -m jobs.ingest.clean --start 2026-11-24T00:00:00Z --end 2026-11-25T00:00:00Z``.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import itertools
import json
import logging
import operator
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sqlalchemy import text

from jobs.core import schema
from jobs.core.config import Settings
from jobs.core.db import ChunkReader, advisory_lock, copy_frame, copy_rows, copy_text_field, libpq_url, make_engine
from jobs.core.errors import PermanentDataError
from jobs.core.spark import get_spark
from jobs.core.timeutil import hour_bounds, hours_between, parse_utc
from jobs.ingest.reference import ITEM_REFERENCE_SCHEMA, REFERENCE_TABLES
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
# The extra columns a non-JSON reader adds: the JSON payload the rules parse, and a reason for
# rows the format itself rejects (a CSV row with the wrong number of fields).
PAYLOAD = "payload"
ORDER = "_order"
FORMAT_ERROR = "format_error"
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet",)
# Split a CSV line on commas outside double quotes.
FORMAT_REASONS = ("malformed_csv",)
_CSV_FIELD_SPLIT = r',(?=(?:[^"]*"[^"]*")*[^"]*$)'
_JSON_NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
# Rejections that are policy, not bad data: they do not count towards the bad-row threshold.
FILTER_REASONS = frozenset({"bot", ERASED_REASON})
FUTURE_TOLERANCE = timedelta(minutes=10)
# What a failed Spark read raises in the driver.
READ_ERRORS = (Py4JJavaError, PySparkException)
BOM = "\ufeff"
# C0 controls and DEL: never part of an id (a tab or line break in one breaks logs and COPY text).
CONTROL_CHARACTER = "[\\x00-\\x1F\\x7F]"
RAW_CONTROL_BYTE = "[\\x00-\\x08\\x0A-\\x1F]"


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


# --- extract ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileProblem:
    """A landing file that could not be read, or (``partial``) only its first ``lines_read`` lines."""

    path: str
    landing_hour: datetime
    reason: str
    error: str
    size_bytes: int | None = None
    partial: bool = False
    lines_read: int | None = None


FileList = list[tuple[Path | str, datetime]]


def scan_landing(landing_dir: Path, start: datetime, end: datetime) -> tuple[FileList, list[FileProblem]]:
    """Files of the landing hours in [start, end) with the hour each landed in, and the entries
    that cannot be read as files (a directory, a broken link, no read permission)."""
    found: FileList = []
    problems: list[FileProblem] = []
    for hour in hours_between(start, end):
        folder = landing_dir / "events" / _hour_folder(hour)
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if _hidden(path.name):
                continue
            if path.is_dir():
                problems.append(FileProblem(str(path), hour, "not_a_file", "a directory where a landing file belongs"))
            elif not path.is_file():
                problems.append(FileProblem(str(path), hour, "unreadable_file", "not a regular file (a broken link?)"))
            else:
                try:
                    with path.open("rb"):
                        pass
                except OSError as error:
                    problems.append(FileProblem(str(path), hour, "unreadable_file", str(error), _size(path)))
                else:
                    found.append((path, hour))
    return found, problems


def landing_files(landing_dir: Path, start: datetime, end: datetime) -> FileList:
    """Readable files of the landing hours in [start, end), with the hour each landed in."""
    return scan_landing(landing_dir, start, end)[0]


def scan_landing_at(
    spark: SparkSession, events_url: str, start: datetime, end: datetime
) -> tuple[FileList, list[FileProblem]]:
    """Like :func:`scan_landing`, for an events root at any URL Spark's file systems can list."""
    fs, jvm = _hadoop_fs(spark, events_url)
    found: FileList = []
    problems: list[FileProblem] = []
    for hour in hours_between(start, end):
        folder = jvm.org.apache.hadoop.fs.Path(f"{events_url.rstrip('/')}/{_hour_folder(hour)}")
        if not fs.exists(folder):
            continue
        for status in sorted(fs.listStatus(folder), key=lambda st: st.getPath().getName()):
            if _hidden(status.getPath().getName()):
                continue
            if status.isFile():
                found.append((str(status.getPath()), hour))
            else:
                problems.append(
                    FileProblem(str(status.getPath()), hour, "not_a_file", "a directory where a landing file belongs")
                )
    return found, problems


def scan_event_files(
    spark: SparkSession, settings: Settings, start: datetime, end: datetime
) -> tuple[FileList, list[FileProblem]]:
    """The window's landing files (``PUSH_EVENTS_URL`` when set, else the local landing folder)
    and the entries among them that are not readable files."""
    if settings.events_url:
        return scan_landing_at(spark, settings.events_url, start, end)
    return scan_landing(settings.landing_dir, start, end)


def event_files(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> FileList:
    """The window's readable landing files."""
    return scan_event_files(spark, settings, start, end)[0]


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


def screen_parquet(spark: SparkSession, files: FileList) -> list[FileProblem]:
    """Parquet files whose footer cannot be read (not Parquet at all, cut short): found while planning."""
    problems = []
    for path, hour in files:
        if file_format(path) == "parquet":
            try:
                spark.read.parquet(str(path)).schema  # noqa: B018 - reading the schema reads the footer
            except READ_ERRORS as error:
                problems.append(FileProblem(str(path), hour, "corrupt_parquet", error_summary(error), _size(path)))
    return problems


def probe_files(spark: SparkSession, files: FileList) -> list[FileProblem]:
    """Read each file alone to find those that break a window's read (called after a read failed).

    A gzip file that breaks part way (truncated, corrupt further on) is read again up to the
    break (``ignoreCorruptFiles``); if lines came out, it is ``truncated_gzip`` and ``partial``:
    those lines are judged as usual. Otherwise the whole file is quarantined.
    """
    problems = []
    for path, hour in files:
        fmt = file_format(path)
        reader = spark.read.parquet if fmt == "parquet" else spark.read.text
        try:
            reader(str(path)).count()
            continue
        except READ_ERRORS as error:
            summary = error_summary(error)
        if fmt == "parquet":
            problems.append(FileProblem(str(path), hour, "corrupt_parquet", summary, _size(path)))
            continue
        salvaged = 0
        if str(path).lower().endswith(".gz"):
            salvaged = spark.read.option("ignoreCorruptFiles", "true").text(str(path)).count()
        if salvaged:
            problems.append(FileProblem(str(path), hour, "truncated_gzip", summary, _size(path), True, salvaged))
        else:
            reason = "corrupt_gzip" if str(path).lower().endswith(".gz") else "unreadable_file"
            problems.append(FileProblem(str(path), hour, reason, summary, _size(path)))
    return problems


def read_problem(path: str, landing_hour: datetime) -> FileProblem | None:
    """Why a local landing file cannot be read in full, found in Python (None: it reads).

    For a reader that skipped the file without saying why (the stream's ``ignoreCorruptFiles``).
    A gzip that breaks after some lines is ``truncated_gzip``: the batch cleaner of its landing
    hour keeps those lines. Reads the whole file once; the stream calls it only for files that
    gave no line.
    """
    local = file_path(path)
    lines = 0
    try:
        if local.name.lower().endswith(".gz"):
            with gzip.open(local, "rb") as stream:
                for _ in stream:
                    lines += 1
        else:
            with local.open("rb") as stream:
                while stream.read(1 << 20):
                    pass
        return None
    except (OSError, EOFError, zlib.error) as error:
        message = " ".join(f"{type(error).__name__}: {error}".split())[:1000]
        if isinstance(error, gzip.BadGzipFile | EOFError | zlib.error):
            reason = "truncated_gzip" if lines else "corrupt_gzip"
        else:  # missing, a directory, no permission: not the content's fault
            reason = "unreadable_file"
        return FileProblem(str(path), landing_hour, reason, message, _size(local))


def file_path(path: str) -> Path:
    """A local path from a path or a ``file:`` URI (as Spark's ``_metadata.file_path`` gives it)."""
    if path.startswith("file:"):
        return Path(unquote(urlparse(path).path))
    return Path(path)


def error_summary(error: BaseException, limit: int = 1000) -> str:
    """One line for a read error: Spark's error class and message, then its innermost Java cause."""
    java = getattr(error, "java_exception", None)
    if java is None:
        return " ".join(str(error).split())[:limit]
    parts = [str(java.getMessage() or java.toString())]
    cause = java.getCause()
    while cause is not None and cause.getCause() is not None:
        cause = cause.getCause()
    if cause is not None:
        parts.append(f"caused by {cause.toString()}")
    return " ".join("; ".join(parts).split())[:limit]


def _size(path: Path | str) -> int | None:
    try:
        return Path(str(path).removeprefix("file:")).stat().st_size
    except OSError:
        return None


def _hour_folder(hour: datetime) -> str:
    return f"date={hour:%Y-%m-%d}/hour={hour:%H}"


def _hidden(name: str) -> bool:
    # Hidden and marker files (".part", "_SUCCESS") are not data, as for Spark's own readers.
    return name.startswith((".", "_"))


def file_format(path: Path | str) -> str:
    """``json``, ``csv`` or ``parquet`` from a landing file's name (``.gz`` is looked through)."""
    name = str(path).lower().removesuffix(".gz")
    for fmt, suffixes in (("csv", CSV_SUFFIXES), ("parquet", PARQUET_SUFFIXES)):
        if name.endswith(suffixes):
            return fmt
    # JSON Lines is the landing zone's native format, also for files with no known suffix.
    return "json"


def read_landing(
    spark: SparkSession, files: FileList, numbered: bool = True, tolerant: Iterable[str] = ()
) -> DataFrame:
    """One row per input record: source file, 1-based line number, landing partition, raw text.

    Line numbers come from the read order inside each file: exact as long as a file is read as
    one split (gzip files always are; plain files below ``spark.sql.files.maxPartitionBytes``).
    CSV and Parquet rows also carry the JSON ``payload`` the rules parse; a CSV header line is
    not an input row (line numbers still count it, so they match the file). With
    ``numbered=False`` JSON Lines rows keep a null ``line_no`` and their read ``_order``, for
    :func:`number_lines` to fill in later from a cached frame (saving a pass over the input).
    Files named in ``tolerant`` (a gzip found broken part way) are read up to their break.
    """
    tolerant = set(tolerant)
    by_format: dict[str, list[str]] = {}
    for path, _ in files:
        by_format.setdefault(file_format(path), []).append(str(path))
    columns = [*RAW_LINE_SCHEMA.fieldNames(), PAYLOAD, FORMAT_ERROR, ORDER]
    frames = []
    if "json" in by_format:
        lines = _read_text(spark, by_format["json"], tolerant).select(
            "source_file",
            F.lit(None).cast("long").alias("line_no"),
            "value",
            F.col("value").alias(PAYLOAD),
            F.monotonically_increasing_id().alias(ORDER),
        )
        frames.append(_with_partition(lines))
    if "csv" in by_format:
        frames.append(_with_partition(_csv_rows(spark, by_format["csv"], tolerant)))
    if "parquet" in by_format:
        frames.append(_with_partition(_parquet_rows(spark, by_format["parquet"])))
    if not frames:
        frames.append(spark.createDataFrame([], RAW_LINE_SCHEMA).withColumn(PAYLOAD, F.col("value")))
    out = None
    for frame in frames:
        for name, dtype in ((FORMAT_ERROR, "string"), (ORDER, "long")):
            if name not in frame.columns:
                frame = frame.withColumn(name, F.lit(None).cast(dtype))
        frame = frame.select(*columns)
        out = frame if out is None else out.unionByName(frame)
    return number_lines(out) if numbered else out


def number_lines(frame: DataFrame) -> DataFrame:
    """Fill in a null ``line_no`` from ``_order`` (then drop it), without sorting when files were read whole.

    A file read as one split sits in one partition in read order, so its line number is its
    row id minus the file's first id. Only when some file was split (a plain file above
    ``spark.sql.files.maxPartitionBytes``) are the numbers taken from a sort instead.
    """
    pending = frame.where(F.col("line_no").isNull())
    spans = pending.groupBy("source_file").agg(
        F.min(ORDER).alias("_first"), F.max(ORDER).alias("_last"), F.count("*").alias("_rows")
    )
    if spans.where(F.col("_last") - F.col("_first") + 1 != F.col("_rows")).isEmpty():
        numbered = frame.join(F.broadcast(spans), "source_file", "left").withColumn(
            "line_no", F.coalesce(F.col("line_no"), F.col(ORDER) - F.col("_first") + 1)
        )
        return numbered.select(*[c for c in frame.columns if c != ORDER])
    by_file = Window.partitionBy("source_file").orderBy(ORDER)
    numbered = pending.withColumn("line_no", F.row_number().over(by_file).cast("long"))
    return frame.where(F.col("line_no").isNotNull()).unionByName(numbered).drop(ORDER)


def _read_text(spark: SparkSession, paths: list[str], tolerant: set[str]) -> DataFrame:
    """``source_file`` and ``value`` of every line; files in ``tolerant`` are read up to a break."""
    frames = []
    for broken in (False, True):
        chosen = [p for p in paths if (p in tolerant) == broken]
        if chosen:
            reader = spark.read.option("ignoreCorruptFiles", "true") if broken else spark.read
            frames.append(reader.text(chosen).select(F.col("_metadata.file_path").alias("source_file"), "value"))
    return frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])


def _text_lines(spark: SparkSession, paths: list[str], tolerant: set[str]) -> DataFrame:
    """Numbered lines of text files (the CSV reader needs each file's header line first)."""
    lines = _read_text(spark, paths, tolerant).select(
        "source_file",
        F.lit(None).cast("long").alias("line_no"),
        "value",
        F.monotonically_increasing_id().alias(ORDER),
    )
    return number_lines(lines)


def _with_partition(frame: DataFrame) -> DataFrame:
    # The last ".../date=YYYY-MM-DD/hour=HH/" folders of the path (landing_files lists only
    # those). Plain substring search: a regular expression costs a conversion of every row's
    # path to a Java string, a measurable share of the whole parse.
    def folder(key: str):
        return F.substring_index(F.substring_index("source_file", f"/{key}=", -1), "/", 1)

    return frame.withColumn("landing_date", F.to_date(folder("date"))).withColumn(
        "landing_hour", folder("hour").cast("int")
    )


def csv_header(line: str) -> list[str]:
    """Column names of a CSV header line (quotes and a byte-order mark stripped)."""
    return [name.strip().strip('"').strip().lower() for name in line.lstrip("\ufeff").split(",")]


def _csv_rows(spark: SparkSession, paths: list[str], tolerant: set[str]) -> DataFrame:
    """CSV lines with a JSON payload built from each file's own header.

    Numeric fields that look like numbers become JSON numbers, anything else a JSON string, so
    "cheap" in the price column is a ``wrong_type`` exactly as in JSON. Empty fields are absent.
    A row whose field count differs from its header is ``malformed_csv``. Quoted fields with
    line breaks inside are not supported: each physical line is one row.
    """
    lines = _text_lines(spark, paths, tolerant).cache()
    headers = {r.source_file: csv_header(r.value or "") for r in lines.where("line_no = 1").collect()}
    types = {name: dtype for name, dtype, _ in schema.EVENT_FIELDS}
    rows = None
    for header in {tuple(h) for h in headers.values()}:
        files = [f for f, h in headers.items() if tuple(h) == header]
        part = lines.where(F.col("source_file").isin(files) & (F.col("line_no") > 1))
        tokens = F.from_csv(
            F.col("value"), ", ".join(f"c{i} STRING" for i in range(len(header))), {"mode": "PERMISSIVE", "escape": '"'}
        )
        part = part.withColumn("_t", tokens)
        members = []
        for i, name in enumerate(header):
            if name not in types:
                continue  # columns outside the event schema are ignored, as in JSON
            token = F.col("_t")[f"c{i}"]
            as_string = F.regexp_replace(F.to_json(F.array(token)), r"^\[|\]$", "")
            if isinstance(types[name], T.StringType):
                rendered = as_string
            else:
                rendered = F.when(F.trim(token).rlike(_JSON_NUMBER), F.trim(token)).otherwise(as_string)
            members.append(F.when(token.isNotNull() & (token != ""), F.concat(F.lit(f'"{name}":'), rendered)))
        payload = F.concat(F.lit("{"), F.concat_ws(",", *members), F.lit("}")) if members else F.lit("{}")
        field_count = F.size(F.split(F.col("value"), _CSV_FIELD_SPLIT))
        part = part.select(
            "source_file",
            "line_no",
            "value",
            F.when(F.col("value").isNull() | (F.trim("value") == ""), F.col("value")).otherwise(payload).alias(PAYLOAD),
            F.when((F.trim("value") != "") & (field_count != len(header)), F.lit("malformed_csv")).alias(FORMAT_ERROR),
        )
        rows = part if rows is None else rows.unionByName(part)
    if rows is None:
        return lines.select("source_file", "line_no", "value", F.col("value").alias(PAYLOAD)).where("false")
    return rows


def _parquet_rows(spark: SparkSession, paths: list[str]) -> DataFrame:
    """Parquet rows as JSON text (raw and payload alike), read file by file so schemas may differ."""
    rows = None
    for path in paths:
        frame = spark.read.parquet(path)
        part = frame.select(
            F.col("_metadata.file_path").alias("source_file"),
            F.to_json(F.struct(*[F.col(f"`{c}`") for c in frame.columns])).alias("value"),
            F.monotonically_increasing_id().alias("_order"),
        ).select(
            "source_file",
            F.row_number().over(Window.orderBy("_order")).cast("long").alias("line_no"),
            "value",
            F.col("value").alias(PAYLOAD),
        )
        rows = part if rows is None else rows.unionByName(part)
    return rows


# --- transform ----------------------------------------------------------------------------------
def parse_and_validate(
    raw: DataFrame, max_id_length: int = schema.MAX_ID_LENGTH, max_text_length: int = schema.MAX_TEXT_LENGTH
) -> DataFrame:
    """Parse each line against the event schema and attach a rejection ``reason`` (null = valid).

    The first failing rule wins, so each line has exactly one reason. The JSON parsed is the
    ``payload`` column when the reader made one (CSV, Parquet), else the raw ``value``; a
    byte-order mark in front of it is not part of the JSON. Whatever passes is valid UTF-8,
    holds no NUL, and its names (:data:`schema.NAME_FIELDS`) are strings or integers of at most
    ``max_id_length`` characters without control characters: every downstream write can take it.
    """
    text_col = PAYLOAD if PAYLOAD in raw.columns else "value"
    parse_schema = T.StructType([*schema.RAW_EVENT_SCHEMA.fields, T.StructField(CORRUPT, T.StringType(), True)])
    payload = F.when(F.col(text_col).startswith(BOM), F.expr(f"substring({text_col}, 2)")).otherwise(F.col(text_col))
    parsed = raw.withColumn(
        "e", F.from_json(payload, parse_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    )
    format_error = F.col(FORMAT_ERROR) if FORMAT_ERROR in raw.columns else F.lit(None).cast("string")
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
    names = [e[name] for name in schema.NAME_FIELDS]
    escaped = F.instr(payload, "\\") > 0
    # Fields that may be a rendering of an object, array, boolean or fraction: only their rows
    # parse the payload a second time (as a variant, bound once by the lambda) to learn the JSON
    # types. Kept inside the rules' one projection: a projection of its own would make Spark
    # parse the JSON twice for every row.
    suspects = {name: _could_be_rendered(e[name]) for name in (*schema.NAME_FIELDS, *schema.TEXT_FIELDS)}
    any_suspect = functools.reduce(operator.or_, suspects.values())
    typed_wrong = F.transform(
        F.array(F.try_parse_json(payload)),
        lambda variant: functools.reduce(
            operator.or_, [suspect & _not_string_or_integer(variant, name) for name, suspect in suspects.items()]
        ),
    )[0]
    rules = [
        (F.col("value").isNull() | (F.trim("value") == ""), "empty_line"),
        (~F.is_valid_utf8("value"), "invalid_utf8"),
        *[(format_error == code, code) for code in FORMAT_REASONS],
        (
            e.isNull()
            | (
                e[CORRUPT].isNotNull()
                & (
                    F.get_json_object(payload, "$").isNull()
                    | ~F.trim(payload).startswith("{")
                    # A raw control byte (not a tab) is never JSON; the lenient parser above takes it.
                    | payload.rlike(RAW_CONTROL_BYTE)
                )
            ),
            "malformed_json",
        ),
        (e[CORRUPT].isNotNull(), "wrong_type"),
        (F.when(any_suspect, typed_wrong), "wrong_type"),
        *[
            (e[name].isNull() | (F.trim(e[name].cast("string")) == ""), f"missing_{name}")
            for name in schema.REQUIRED_FIELDS
        ],
        (_largest([F.length(name) for name in names]) > max_id_length, "id_too_long"),
        # JSON carries a control character in a string only escaped (a raw one is malformed), and
        # the CSV and Parquet payloads are rendered by to_json: no backslash, no control character.
        (escaped & F.concat_ws("", *names).rlike(CONTROL_CHARACTER), "control_character"),
        (escaped & (_largest([F.instr(e[name], "\x00") for name in schema.TEXT_FIELDS]) > 0), "nul_in_text"),
        (_largest([F.length(e[name]) for name in schema.TEXT_FIELDS]) > max_text_length, "text_too_long"),
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
    # Input columns pass through (the batch reader's, the stream's landing time), not the payload.
    passed = [c for c in raw.columns if c not in (PAYLOAD, FORMAT_ERROR)]
    return parsed.select(*passed, *normalised, reason.alias("reason"))


def _largest(columns: list):
    # greatest() wants two arguments or more.
    return columns[0] if len(columns) == 1 else F.greatest(*columns)


def _could_be_rendered(value):
    """True when a parsed string field could be ``from_json``'s rendering of a non-string value.

    ``from_json`` renders any JSON value as text in a string field, so ``{"a": 1}`` and
    ``"{\\"a\\": 1}"`` look alike there: those starting with a bracket, a boolean, a number
    with a point or an exponent. Comparisons only: this runs for every field of every row.
    """
    first = F.substring(value, 1, 1)
    numeric = first.isin("-", *"0123456789") & (value.contains(".") | value.contains("e") | value.contains("E"))
    return first.isin("{", "[") | value.isin("true", "false") | numeric


def _not_string_or_integer(variant, name: str):
    """True when ``name`` in the payload (parsed as a variant) is not a JSON string or integer."""
    json_type = F.schema_of_variant(F.try_variant_get(variant, f"$.{name}", "variant"))
    # A type that cannot be told (the object does not parse as a variant: a key given twice) fails too.
    allowed = F.coalesce(json_type.rlike(r"^(STRING|TINYINT|SMALLINT|INT|BIGINT|DECIMAL\(\d+,0\))$"), F.lit(False))
    return ~allowed


def drop_duplicates(valid: DataFrame) -> DataFrame:
    """Keep the first delivery of each ``event_id`` (earliest landing, file, line).

    Re-deliveries are rare, so only the ids seen more than once (found by a shuffle of the ids
    alone, then broadcast) go through the ordering window; every other row stays where it is
    instead of travelling through a shuffle and a sort with all its columns.
    """
    # Computed once, here: the plans below hold it in several places, and an aggregate written
    # as a subtree is re-run (a scan of the window and a shuffle of every id) at each of them.
    repeated = (
        valid.groupBy("event_id")
        .count()
        .where("count > 1")
        .select("event_id", F.lit(True).alias("_repeated"))
        .localCheckpoint()
    )
    marked = valid.join(F.broadcast(repeated), "event_id", "left")
    once = marked.where(F.col("_repeated").isNull()).drop("_repeated")
    first = Window.partitionBy("event_id").orderBy("landing_date", "landing_hour", "source_file", "line_no")
    kept = marked.where(F.col("_repeated")).withColumn("_n", F.row_number().over(first)).where("_n = 1")
    return once.unionByName(kept.drop("_n", "_repeated"))


def flag_bots(events: DataFrame, max_events_per_minute: int) -> DataFrame:
    """Mark every event of a user who exceeded the per-minute rate in this window as ``bot``."""
    per_minute = events.groupBy("user_id", F.date_trunc("minute", "ts").alias("minute")).count()
    bots = per_minute.where(F.col("count") > max_events_per_minute).select("user_id").distinct().localCheckpoint()
    # Broadcast: bots are few users, and a shuffle join would move every event of the window.
    return (
        events.join(F.broadcast(bots.withColumn("_bot", F.lit(True))), "user_id", "left")
        .withColumn("reason", F.when(F.col("_bot"), F.lit("bot")).otherwise(F.col("reason")))
        .drop("_bot")
    )


def bot_users(events: pd.DataFrame, max_events_per_minute: int) -> set[str]:
    """:func:`flag_bots`'s rule on a small pandas frame: the users above the per-minute rate.

    The stream applies it to the micro-batch it has already collected, where it costs
    milliseconds and another Spark job costs seconds on a small machine. A unit test keeps the
    two versions equal.
    """
    if events.empty:
        return set()
    per_minute = events.groupby([events["user_id"], events["ts"].dt.floor("min")]).size()
    return set(per_minute[per_minute > max_events_per_minute].index.get_level_values(0))


def flag_unknown_items(checked: DataFrame, items: DataFrame) -> DataFrame:
    """Mark valid events whose item the catalogue does not know as ``unknown_item``."""
    known = items.select(F.col("item_id").alias("_known_item")).distinct()
    return (
        checked.join(F.broadcast(known), checked["item_id"] == known["_known_item"], "left")
        .withColumn(
            "reason",
            F.when(
                F.col("reason").isNull() & F.col("item_id").isNotNull() & F.col("_known_item").isNull(),
                F.lit("unknown_item"),
            ).otherwise(F.col("reason")),
        )
        .drop("_known_item")
    )


CLEAN_COLUMNS = [field.name for field in schema.CLEAN_EVENT_SCHEMA.fields]
# The lake's partition columns, outermost first: event time, then the landing hour.
PARTITION_COLUMNS = ("event_date", "event_hour", "landing_date", "landing_hour")


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
def with_event_partition_columns(clean: DataFrame) -> DataFrame:
    """Add the event-time partition columns (UTC date and hour of ``ts``)."""
    return clean.withColumn("event_date", F.to_date("ts")).withColumn("event_hour", F.hour("ts"))


def _hadoop_fs(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), jvm


def landing_leaves(spark: SparkSession, clean_dir: Path, hour: datetime) -> list[str]:
    """Paths of the lake leaves holding events that landed in ``hour``, whatever their event time."""
    pattern = f"{clean_dir}/event_date=*/event_hour=*/landing_date={hour:%Y-%m-%d}/landing_hour={hour.hour}"
    fs, jvm = _hadoop_fs(spark, str(clean_dir))
    found = fs.globStatus(jvm.org.apache.hadoop.fs.Path(pattern)) or []
    return [str(status.getPath().toUri().getPath()) for status in found]


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
    before = {leaf for hour in hours_between(start, end) for leaf in landing_leaves(spark, clean_dir, hour)}
    clean = with_event_partition_columns(clean)
    clean.repartition(*PARTITION_COLUMNS).write.mode("overwrite").option(
        "partitionOverwriteMode", "dynamic"
    ).partitionBy(*PARTITION_COLUMNS).parquet(str(clean_dir))
    written = {str(leaf_path(clean_dir, *leaf)) for leaf in leaves}
    fs, jvm = _hadoop_fs(spark, str(clean_dir))
    for hour in hours_between(start, end):
        for leaf in landing_leaves(spark, clean_dir, hour):
            if leaf not in written:
                fs.delete(jvm.org.apache.hadoop.fs.Path(leaf), True)
    return {date.fromisoformat(_EVENT_DATE.search(leaf).group(1)) for leaf in before | written}


def _remove_unfinished_writes(spark: SparkSession, clean_dir: Path) -> None:
    """Delete the staging folders of writes killed before their commit.

    Readers skip them (hidden names), so they only take space. The caller holds the lake lock,
    so no write is in flight. A leaf such a write had already replaced is restored by the re-run
    of its window (the task's retry).
    """
    fs, jvm = _hadoop_fs(spark, str(clean_dir))
    for status in fs.globStatus(jvm.org.apache.hadoop.fs.Path(f"{clean_dir}/.spark-staging-*")) or []:
        log.warning("removing %s, left by a lake write that did not finish", status.getPath())
        fs.delete(status.getPath(), True)


_EVENT_DATE = re.compile(r"event_date=(\d{4}-\d{2}-\d{2})")


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


QUARANTINE_COLUMNS = ("window_start", "landing_hour", "source_file", "line_no", "reason", "raw", "raw_bytes")


def quarantine_text(lines: DataFrame) -> DataFrame:
    """Rejected lines' ``value`` as text PostgreSQL can hold, and their exact bytes where it cannot.

    A line with invalid UTF-8 or a NUL byte keeps a readable ``value`` (invalid bytes as U+FFFD,
    NUL as the six characters ``\\u0000``) and its exact bytes in ``raw_bytes``; every other
    line's text is exact and ``raw_bytes`` is null. Nothing of a line is lost.
    """
    value = F.col("value")
    exact = F.is_valid_utf8(value) & (F.instr(value, "\x00") == 0)
    readable = F.replace(F.make_valid_utf8(value), F.lit("\x00"), F.lit("\\u0000"))
    return lines.withColumn("raw_bytes", F.when(~exact, value.cast("binary"))).withColumn(
        "value", F.when(exact, value).otherwise(readable)
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
    checked = parse_and_validate(raw, settings.max_id_length, settings.max_text_length)
    parsed = mark_erased(checked, erased, settings.pseudonym_key)
    if settings.unknown_items == "quarantine":
        items = catalogue(spark, settings)
        if items is None:
            log.warning("no catalogue snapshot: events with unknown items cannot be told apart and are kept")
        else:
            parsed = flag_unknown_items(parsed, items)
    # Parsed once and cached; line numbers come from the cached rows (no second pass over the
    # input). Only rejected rows keep their raw text: the cache is then about half the size and
    # a large window stays in memory instead of spilling to disk.
    parsed = parsed.withColumn("value", F.when(F.col("reason").isNotNull(), F.col("value"))).cache()
    try:
        result, clean, leaves = _judge(spark, settings, start, end, files, tolerant, parsed, token, file_counts)
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
        parsed.unpersist()
    log.info("cleaned %s..%s: %s", start, end, result)
    return result


def _judge(
    spark: SparkSession,
    settings: Settings,
    start: datetime,
    end: datetime,
    files: FileList,
    tolerant: set[str],
    parsed: DataFrame,
    token: str,
    file_counts: dict[str, int],
) -> tuple[CleanResult, DataFrame, set[tuple]]:
    """Split the parsed window into clean rows, duplicates and rejected rows (staged for the quarantine).

    Returns the accounting, the clean rows (a plan, not yet written) and the lake leaves they go to.
    """
    checked = number_lines(parsed)
    valid = checked.where("reason IS NULL").drop("value")
    # The first delivery wins: earlier copies in this window, and copies already cleaned from
    # the preceding landing hours, make the others duplicates.
    earlier = read_clean(spark, settings, start - timedelta(hours=settings.dedupe_hours), start).select("event_id")
    first_deliveries = drop_duplicates(valid).join(earlier, "event_id", "left_anti")
    screened = flag_bots(first_deliveries, settings.bot_events_per_minute)
    clean = screened.where("reason IS NULL").select(*CLEAN_COLUMNS)
    # One pass over the screened rows (not cached: building a cache of the whole window costs
    # more than the three passes made over them) gives every figure the run needs from them:
    # the unique and clean counts, the landing hours of rows rejected late, and the lake leaves
    # the clean rows go to.
    tally = with_event_partition_columns(screened).groupBy("reason", *PARTITION_COLUMNS).count().collect()
    unique_rows = sum(r["count"] for r in tally)
    clean_rows = sum(r["count"] for r in tally if r.reason is None)
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
        start, end, input_rows, clean_rows, sum(reasons.values()), valid_rows - unique_rows, reasons, **file_counts
    )
    if result.input_rows != result.clean_rows + result.quarantined_rows + result.duplicate_rows:
        raise AssertionError(f"accounting does not balance: {result}")
    return result, clean, leaves


def with_raw_text(
    spark: SparkSession, files: FileList, rows: DataFrame, hours: set[tuple], tolerant: set[str]
) -> DataFrame:
    """``rows`` (rejected after the cache dropped their text: bots) with their raw line, re-read.

    Only the files of ``hours`` (the landing dates and hours those rows came from) are read
    again, as text, with the same line numbering; an inner join, so a line that could not be
    found shows up as a broken accounting identity rather than as a quarantine row without text.
    """
    wanted = [(path, hour) for path, hour in files if (hour.date(), hour.hour) in hours]
    if not wanted:
        return rows.withColumn("value", F.lit(None).cast("string")).where("false")
    lines = read_landing(spark, wanted, tolerant=tolerant).select("source_file", "line_no", "value")
    return rows.join(lines, ["source_file", "line_no"]).select(*rows.columns, "value")


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
