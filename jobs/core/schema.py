"""The one event schema. Spark schemas, the GX suites and the SQL checks derive from it."""

from __future__ import annotations

from pyspark.sql import types as T

EVENT_TYPES: tuple[str, ...] = (
    "view",
    "search",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "purchase",
    "favorite",
    "notification_open",
    "notification_click",
)

# Event types that must name an item.
ITEM_EVENT_TYPES: tuple[str, ...] = tuple(t for t in EVENT_TYPES if t not in ("search",))

# (name, raw JSON type, required) in the order of MISSION section 1. "ts" is an ISO-8601
# string with an offset in the raw logs and a UTC timestamp once clean.
EVENT_FIELDS: tuple[tuple[str, T.DataType, bool], ...] = (
    ("event_id", T.StringType(), True),
    ("user_id", T.StringType(), True),
    ("event_type", T.StringType(), True),
    ("item_id", T.StringType(), False),
    ("query", T.StringType(), False),
    ("price", T.DoubleType(), False),
    ("quantity", T.LongType(), False),
    ("session_id", T.StringType(), False),
    ("device", T.StringType(), False),
    ("ts", T.StringType(), True),
    ("dwell_ms", T.LongType(), False),
    ("notification_id", T.StringType(), False),
)

REQUIRED_FIELDS: tuple[str, ...] = tuple(name for name, _, required in EVENT_FIELDS if required)

RAW_EVENT_SCHEMA = T.StructType([T.StructField(name, dtype, True) for name, dtype, _ in EVENT_FIELDS])

# Clean events: same fields, ts as a UTC timestamp, plus the landing partition they arrived in
# (the clean lake is partitioned like the landing zone, so re-cleaning an hour replaces exactly
# that hour).
CLEAN_EVENT_SCHEMA = T.StructType(
    [
        T.StructField(name, T.TimestampType() if name == "ts" else dtype, not required)
        for name, dtype, required in EVENT_FIELDS
    ]
    + [
        T.StructField("landing_date", T.DateType(), False),
        T.StructField("landing_hour", T.IntegerType(), False),
    ]
)

# Fields that name things: a string (or an integer, kept as its digits) of bounded length with no
# control character, so that every downstream COPY, index and log line can hold it.
NAME_FIELDS: tuple[str, ...] = ("event_id", "user_id", "item_id", "session_id", "notification_id", "device")
# Free text: any valid UTF-8 of bounded length without a NUL (PostgreSQL text cannot hold one).
TEXT_FIELDS: tuple[str, ...] = ("query",)
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 2048

MAX_PRICE = 1_000_000.0
MAX_QUANTITY = 1_000
