"""The landing zone: find a window's files, tell unreadable ones apart, read every format as lines.

Landing files are JSON Lines, CSV (with a header line) or Parquet, each optionally gzipped
(JSON Lines and CSV); the format comes from the file name. All three are turned into one JSON
payload per input row with its source file and line number, so one set of rules
(:mod:`jobs.ingest.rules`) judges them all. A file that cannot be read (corrupt or truncated
gzip, not Parquet, unreadable) becomes a :class:`FileProblem`, quarantined whole or after its
readable prefix.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlparse

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.core import schema
from jobs.core.config import Settings
from jobs.core.spark import hadoop_fs
from jobs.core.timeutil import hours_between

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


# What a failed Spark read raises in the driver.
READ_ERRORS = (Py4JJavaError, PySparkException)


BOM = "\ufeff"


RAW_CONTROL_BYTE = "[\\x00-\\x08\\x0A-\\x1F]"


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
    fs, jvm = hadoop_fs(spark, events_url)
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
