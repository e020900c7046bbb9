"""Pure transforms of the streaming job: raw lines in, one tagged output stream out.

The query has one sink, so everything the micro-batch writer needs travels in one frame with a
``kind`` column:

- ``line``: every input line after :func:`jobs.ingest.rules.parse_and_validate` (the batch
  cleaner's rules), valid or not, with its raw text (and exact bytes where the text cannot
  hold them, as the batch quarantine keeps them), file, line number and landing time;
- ``event``: the first delivery of each valid ``event_id`` within the watermark
  (``dropDuplicatesWithinWatermark``; late rows are dropped by that operator);
- ``cart``: an abandoned cart (or the cancellation of one already fired), from per
  (user, item) state with an event-time timeout at cart time + delay;
- ``browse``: a tumbling window of one user's views in one category with at least N views and
  no cart, emitted once the watermark has passed the window's end.

Trigger keys are computed later with the batch detector's key functions, so a trigger found by
both paths is one row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.streaming.state import GroupState, GroupStateTimeout

from jobs.core import schema
from jobs.ingest.rules import parse_and_validate, quarantine_text

KINDS = ("line", "event", "cart", "browse")
# Raw lines as the stream reads them: the batch reader's columns plus the landing time.
RAW_STREAM_COLUMNS = ("source_file", "line_no", "landing_date", "landing_hour", "value", "landed_at")
_LANDING_PARTITION = r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/"

OUTPUT_SCHEMA = T.StructType(
    [
        T.StructField("kind", T.StringType(), False),
        T.StructField("source_file", T.StringType(), True),
        T.StructField("line_no", T.LongType(), True),
        T.StructField("landed_at", T.TimestampType(), True),
        T.StructField("landing_date", T.DateType(), True),
        T.StructField("landing_hour", T.IntegerType(), True),
        T.StructField("value", T.StringType(), True),
        T.StructField("raw_bytes", T.BinaryType(), True),
        T.StructField("reason", T.StringType(), True),
        T.StructField("event_id", T.StringType(), True),
        T.StructField("user_id", T.StringType(), True),
        T.StructField("event_type", T.StringType(), True),
        T.StructField("item_id", T.StringType(), True),
        T.StructField("ts", T.TimestampType(), True),
        T.StructField("category", T.StringType(), True),
        T.StructField("cart_day", T.StringType(), True),
        T.StructField("window_start", T.TimestampType(), True),
        T.StructField("fire_at", T.TimestampType(), True),
        T.StructField("cancelled_at", T.TimestampType(), True),
    ]
)


# --- raw lines ------------------------------------------------------------------------------------
def file_lines(files: DataFrame) -> DataFrame:
    """Whole files (``wholetext`` rows with ``_metadata``) to one row per line.

    Reading whole files gives exact 1-based line numbers without a window function (which a
    stream cannot use); line breaks are split like Spark's text reader does (``\\n``, ``\\r\\n``,
    ``\\r``; a final line break does not start an empty line), and each line keeps its bytes.
    """
    # Split as ISO-8859-1 text (one character per byte) and turn each line back into its own
    # bytes: a string split goes through Java strings, which would replace bytes that are not
    # UTF-8 before the cleaning rules (and the quarantine's exact bytes) ever saw them.
    text = F.decode(F.col("value").cast("binary"), "ISO-8859-1")
    parts = F.split(text, "\r\n|\r|\n", -1)
    trimmed = F.when(text == "", F.array().cast("array<string>")).when(
        text.rlike("(\r\n|\r|\n)$"), F.slice(parts, 1, F.size(parts) - 1)
    )
    lines = files.select(
        F.col("_metadata.file_path").alias("source_file"),
        F.col("_metadata.file_modification_time").alias("landed_at"),
        F.posexplode(F.coalesce(trimmed, parts)).alias("pos", "latin1"),
    ).withColumn("value", F.encode("latin1", "ISO-8859-1").cast("string"))
    return with_landing_partition(lines.withColumn("line_no", (F.col("pos") + 1).cast("long")).drop("pos", "latin1"))


def kafka_lines(records: DataFrame) -> DataFrame:
    """Kafka records to raw lines: the topic/partition stands for the file, the offset for the line."""
    lines = records.select(
        F.concat(F.lit("kafka:"), F.col("topic"), F.lit("/"), F.col("partition").cast("string")).alias("source_file"),
        F.col("offset").cast("long").alias("line_no"),
        F.col("timestamp").alias("landed_at"),
        F.col("value").cast("string").alias("value"),
    )
    return with_landing_partition(lines)


def with_landing_partition(lines: DataFrame) -> DataFrame:
    """Landing date/hour from the ``date=/hour=`` folders, else from the landing time.

    Files of the ``live/`` folder (and Kafka records) have no partition in their path; the hour
    they landed in takes its place, so ``timestamp_in_future`` still compares an event with the
    end of the hour it arrived in.
    """
    path = F.col("source_file")
    from_path = F.to_date(F.nullif(F.regexp_extract(path, _LANDING_PARTITION, 1), F.lit("")))
    hour_from_path = F.nullif(F.regexp_extract(path, _LANDING_PARTITION, 2), F.lit("")).cast("int")
    return lines.select(
        "source_file",
        "line_no",
        F.coalesce(from_path, F.to_date("landed_at")).alias("landing_date"),
        F.when(from_path.isNotNull(), hour_from_path).otherwise(F.hour("landed_at")).alias("landing_hour"),
        "value",
        "landed_at",
    )


# --- stateful triggers ----------------------------------------------------------------------------
CART_INPUT_COLUMNS = ("user_id", "item_id", "event_type", "ts")
CART_OUTPUT_SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.StringType()),
        T.StructField("item_id", T.StringType()),
        T.StructField("cart_day", T.StringType()),
        T.StructField("fire_at", T.TimestampType()),
        T.StructField("cancelled_at", T.TimestampType()),
    ]
)
# The carts of one (user, item), by UTC cart day, as JSON: {"2026-11-24": {"carted": ms, "fire": ms,
# "phase": "pending" | "fired" | "resolved" | "cancelled"}}.
CART_STATE_SCHEMA = T.StructType([T.StructField("carts", T.StringType())])
_RESOLVING = ("purchase", "remove_from_cart")


def _ms(value) -> int:
    return int(pd.Timestamp(value).value // 1_000_000)


def _ts(ms: int) -> datetime:
    # Naive UTC, as Spark hands timestamps to and from pandas with a UTC session time zone.
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def advance_carts(
    carts: dict[str, dict], events: pd.DataFrame, delay_ms: int, watermark_ms: int
) -> tuple[dict[str, dict], list[tuple]]:
    """Apply one (user, item)'s new events to its carts; return the carts and the rows to emit.

    The rules are the batch detector's (:func:`jobs.notify.triggers.cart_abandonment`): the first
    ``add_to_cart`` of a UTC day starts a cart due at cart time + delay; a purchase or removal
    at or after the cart time and before it is due cancels it silently; one at or after the due
    time still fires it, already cancelled; one after it fired emits the cancellation. Rows
    emitted are ``(cart_day, fire_ms, cancelled_ms | None)``. Carts already due by the
    watermark (their timeout can no longer be set) fire here.
    """
    emitted: list[tuple] = []
    order = events.assign(_resolving=events["event_type"].isin(_RESOLVING)).sort_values(["ts", "_resolving"])
    for kind, ts in zip(order["event_type"], order["ts"], strict=True):
        at = _ms(ts)
        if kind == "add_to_cart":
            day = _ts(at).date().isoformat()
            cart = carts.get(day)
            if cart is None:
                carts[day] = {"carted": at, "fire": at + delay_ms, "phase": "pending"}
            elif cart["phase"] == "pending" and at < cart["carted"]:
                cart.update(carted=at, fire=at + delay_ms)
        elif kind in _RESOLVING:
            for day, cart in sorted(carts.items()):
                if at < cart["carted"]:
                    continue
                if cart["phase"] == "pending":
                    if at < cart["fire"]:
                        cart["phase"] = "resolved"
                    else:
                        cart["phase"] = "cancelled"
                        emitted.append((day, cart["fire"], at))
                elif cart["phase"] == "fired":
                    cart["phase"] = "cancelled"
                    emitted.append((day, cart["fire"], at))
    emitted += fire_due_carts(carts, watermark_ms)
    return carts, emitted


def fire_due_carts(carts: dict[str, dict], watermark_ms: int) -> list[tuple]:
    """Fire every pending cart due at or before the watermark; return the rows to emit."""
    fired = []
    for day, cart in sorted(carts.items()):
        if cart["phase"] == "pending" and cart["fire"] <= watermark_ms:
            cart["phase"] = "fired"
            fired.append((day, cart["fire"], None))
    return fired


def next_timeout(carts: dict[str, dict], retain_ms: int) -> int | None:
    """When the state must wake up: the next due cart, else when fired carts may be forgotten.

    A fired or resolved cart is kept ``retain_ms`` past its due time so that a purchase soon
    after the message can still cancel it and a second cart that day stays the same trigger.
    """
    pending = [cart["fire"] for cart in carts.values() if cart["phase"] == "pending"]
    if pending:
        return min(pending)
    kept = [cart["fire"] + retain_ms for cart in carts.values()]
    return max(kept) if kept else None


def cart_state_function(delay: timedelta, retain: timedelta):
    """The ``applyInPandasWithState`` function for abandoned carts (keyed by user and item)."""
    delay_ms = int(delay.total_seconds() * 1000)
    retain_ms = int(retain.total_seconds() * 1000)

    def update(key: tuple, frames: Iterator[pd.DataFrame], state: GroupState) -> Iterator[pd.DataFrame]:
        user_id, item_id = key
        carts: dict[str, dict] = json.loads(state.get[0]) if state.exists else {}
        watermark = state.getCurrentWatermarkMs()
        if state.hasTimedOut:
            emitted = fire_due_carts(carts, watermark)
            # Forget carts whose retention has passed.
            carts = {day: c for day, c in carts.items() if c["phase"] == "pending" or c["fire"] + retain_ms > watermark}
        else:
            events = pd.concat(list(frames), ignore_index=True)
            carts, emitted = advance_carts(carts, events, delay_ms, watermark)
        wake = next_timeout(carts, retain_ms)
        if not carts or wake is None or wake <= watermark:
            state.remove()
        else:
            state.update((json.dumps(carts, sort_keys=True),))
            state.setTimeoutTimestamp(wake)
        if emitted:
            yield pd.DataFrame(
                {
                    "user_id": [user_id] * len(emitted),
                    "item_id": [item_id] * len(emitted),
                    "cart_day": [day for day, _, _ in emitted],
                    "fire_at": [_ts(fire) for _, fire, _ in emitted],
                    "cancelled_at": [None if cancel is None else _ts(cancel) for _, _, cancel in emitted],
                }
            )

    return update


def abandoned_carts(events: DataFrame, delay: timedelta, retain: timedelta) -> DataFrame:
    """Abandoned carts (and late cancellations of fired ones) from watermarked events."""
    carts = events.where(F.col("event_type").isin("add_to_cart", *_RESOLVING) & F.col("item_id").isNotNull()).select(
        *CART_INPUT_COLUMNS
    )
    return carts.groupBy("user_id", "item_id").applyInPandasWithState(
        cart_state_function(delay, retain),
        outputStructType=CART_OUTPUT_SCHEMA,
        stateStructType=CART_STATE_SCHEMA,
        outputMode="append",
        timeoutConf=GroupStateTimeout.EventTimeTimeout,
    )


def browse_windows(events: DataFrame, items: DataFrame, min_views: int, minutes: int) -> DataFrame:
    """Tumbling windows with at least ``min_views`` views in one category and no cart there.

    Appended once the watermark passes the window's end, so each window is judged once, on all
    of its on-time events; the item named is the last one viewed, as in the batch detector.
    """
    is_view = F.col("event_type") == "view"
    windows = (
        events.where(F.col("item_id").isNotNull() & F.col("event_type").isin("view", "add_to_cart"))
        .join(F.broadcast(items.select("item_id", "category")), "item_id", "inner")
        .groupBy("user_id", "category", F.window("ts", f"{minutes} minutes").alias("w"))
        .agg(
            # Distinct event ids: a re-delivered view must not count twice.
            F.size(F.collect_set(F.when(is_view, F.col("event_id")))).alias("views"),
            F.count(F.when(~is_view, True)).alias("carts"),
            F.max_by("item_id", F.when(is_view, F.struct("ts", "item_id"))).alias("item_id"),
        )
    )
    return windows.where((F.col("views") >= min_views) & (F.col("carts") == 0)).select(
        "user_id", "category", "item_id", F.col("w.start").alias("window_start"), F.col("w.end").alias("fire_at")
    )


# --- the one output -------------------------------------------------------------------------------
def _tagged(frame: DataFrame, kind: str) -> DataFrame:
    present = set(frame.columns)
    return frame.select(
        F.lit(kind).alias("kind"),
        *[
            (F.col(f.name) if f.name in present else F.lit(None)).cast(f.dataType).alias(f.name)
            for f in OUTPUT_SCHEMA.fields[1:]
        ],
    )


def detect(
    raw: DataFrame,
    items: DataFrame,
    watermark: timedelta,
    delay: timedelta,
    browse_views: int,
    browse_minutes: int,
    max_id_length: int = schema.MAX_ID_LENGTH,
    max_text_length: int = schema.MAX_TEXT_LENGTH,
) -> DataFrame:
    """The whole streaming plan: cleaning rules, deduplication, both stateful detectors, tagged.

    Args:
        raw: raw lines with :data:`RAW_STREAM_COLUMNS` (from :func:`file_lines` or :func:`kafka_lines`).
        items: the catalogue (``item_id``, ``category``), a static frame.
        watermark: how late an event may be (behind the newest event time) and still count.
        delay: cart abandonment delay.
        browse_views: views needed in one category within one window.
        browse_minutes: the browse window's length.
        max_id_length, max_text_length: the cleaner's field limits.
    """
    checked = parse_and_validate(raw, max_id_length, max_text_length)
    valid = checked.where(F.col("reason").isNull()).withWatermark("ts", f"{int(watermark.total_seconds())} seconds")
    # Each stateful operator drops events at or before the watermark itself. The detectors read
    # the valid events directly, not the deduplicated ones: both are insensitive to re-delivery
    # by construction (a cart that exists is not started again, views are counted by distinct
    # event id), and one deduplication state instead of three keeps the state store small.
    unique = valid.dropDuplicatesWithinWatermark(["event_id"])
    carts = abandoned_carts(valid, delay, retain=delay)
    browse = browse_windows(valid, items, browse_views, browse_minutes)
    return (
        _tagged(quarantine_text(checked), "line")
        .unionByName(_tagged(unique, "event"))
        .unionByName(_tagged(carts, "cart"))
        .unionByName(_tagged(browse, "browse"))
    )
