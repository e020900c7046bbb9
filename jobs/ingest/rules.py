"""The cleaning rules, as pure transforms of Spark frames: what makes a line clean, a duplicate
or quarantined (and why).

:func:`clean_rows` is the one composition of the rules, from raw lines to clean rows: the batch
cleaner (:mod:`jobs.ingest.clean`), the quality gate's raw suite and the evaluation harnesses
all call it. The stream applies the same field rules (:func:`parse_and_validate`) and the same
bot rule (:func:`bot_users`, the pandas twin of :func:`flag_bots`) to each micro-batch; its
de-duplication runs under a watermark, which a batch has no use for.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.core import schema
from jobs.ingest.landing import BOM, CORRUPT, FORMAT_ERROR, FORMAT_REASONS, PAYLOAD, RAW_CONTROL_BYTE
from jobs.privacy.suppression import ERASED_REASON, mark_erased

log = logging.getLogger(__name__)

# Rejections that are policy, not bad data: they do not count towards the bad-row threshold.
FILTER_REASONS = frozenset({"bot", ERASED_REASON})


FUTURE_TOLERANCE = timedelta(minutes=10)


# C0 controls and DEL: never part of an id (a tab or line break in one breaks logs and COPY text).
CONTROL_CHARACTER = "[\\x00-\\x1F\\x7F]"


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


@dataclass(frozen=True)
class LineRules:
    """What the rules need besides the lines: field limits, the bot rate, the suppression list
    (pseudonymised keys) and, when unknown items are quarantined, the catalogue."""

    max_id_length: int = schema.MAX_ID_LENGTH
    max_text_length: int = schema.MAX_TEXT_LENGTH
    bot_events_per_minute: int = 30
    erased: Collection[str] = ()
    pseudonym_key: str = ""
    items: DataFrame | None = None

    @classmethod
    def from_settings(cls, settings, erased: Collection[str] = (), items: DataFrame | None = None) -> LineRules:
        return cls(
            settings.max_id_length,
            settings.max_text_length,
            settings.bot_events_per_minute,
            erased,
            settings.pseudonym_key,
            items,
        )


@dataclass(frozen=True)
class JudgedLines:
    """Every line with its verdict: ``checked`` holds all lines (``reason`` null when the field
    rules passed), ``screened`` the first deliveries of the valid ones (``reason`` null or a
    filter such as ``bot``). Valid lines not in ``screened`` are duplicates."""

    checked: DataFrame
    screened: DataFrame

    @property
    def clean(self) -> DataFrame:
        return self.screened.where("reason IS NULL").select(*CLEAN_COLUMNS)


def clean_rows(
    raw: DataFrame,
    rules: LineRules,
    earlier_event_ids: DataFrame | None = None,
    keep_checked: Callable[[DataFrame], DataFrame] = lambda checked: checked,
) -> JudgedLines:
    """The cleaning rules, in order, from raw lines (:func:`jobs.ingest.landing.read_landing`) to verdicts.

    Field rules (:func:`parse_and_validate`), then the suppression list (``erased_user``) and
    the catalogue (``unknown_item``) mark lines; of the valid ones, the first delivery of each
    event id is kept (``earlier_event_ids``: ids already cleaned, whose copies are duplicates
    too), and the users above the bot rate are marked ``bot``. ``keep_checked`` sees the checked
    lines before they are split: the batch cleaner caches them there and numbers their lines.
    """
    checked = mark_erased(
        parse_and_validate(raw, rules.max_id_length, rules.max_text_length), list(rules.erased), rules.pseudonym_key
    )
    if rules.items is not None:
        checked = flag_unknown_items(checked, rules.items)
    checked = keep_checked(checked)
    first_deliveries = drop_duplicates(checked.where("reason IS NULL").drop("value"))
    if earlier_event_ids is not None:
        first_deliveries = first_deliveries.join(earlier_event_ids, "event_id", "left_anti")
    return JudgedLines(checked, flag_bots(first_deliveries, rules.bot_events_per_minute))
