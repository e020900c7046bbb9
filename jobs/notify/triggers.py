"""Behavioural triggers: abandoned carts, browse intent, price drops and items back in stock.

The Spark transforms here are pure (events in, trigger rows out) so that the batch path (the
hourly DAG) and a streaming job can share them. Each trigger has a deterministic key per
(user, trigger, item or category, window), so detecting it again - in a re-run, or by the
other path - never creates a second one; the key is part of the message's idempotency key.

- **cart_abandonment**: the first ``add_to_cart`` of an item by a user on a UTC day, with no
  purchase or removal of it within the delay; it fires at cart time + delay and is cancelled
  by a purchase or removal after that (an unsent message is then dropped).
- **browse_intent**: at least N views in one category within a tumbling window without a cart
  in that category; it fires at the window's end and names the last item viewed.
- **price_drop** / **back_in_stock**: catalogue changes (recorded when a snapshot is loaded)
  reach users who viewed or carted the item recently and have not bought it since.

CLI: ``python -m jobs.notify.triggers --at 2026-11-25T10:00:00Z``.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime, timedelta

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from sqlalchemy import Connection, text

from jobs.core.config import Settings
from jobs.core.db import copy_frame, load_query, make_engine
from jobs.core.spark import get_spark
from jobs.core.timeutil import parse_utc, utc_columns
from jobs.ingest.lake import read_clean
from jobs.ingest.reference import read_items
from jobs.profiles.interactions import recent_interactions

log = logging.getLogger(__name__)

TRIGGER_COLUMNS = (
    "trigger_key",
    "user_id",
    "trigger_type",
    "item_id",
    "category",
    "detected_at",
    "fire_at",
    "expires_at",
    "origin",
    "cancelled_at",
)


def trigger_key(*parts: Column) -> Column:
    """Deterministic key of a trigger instance (32 hex characters)."""
    return F.substring(F.sha2(F.concat_ws("|", *parts), 256), 1, 32)


def cart_abandonment_key(user_id: Column, item_id: Column, cart_day: Column) -> Column:
    """Key of an abandoned cart: one per (user, item, UTC cart day), whichever path detects it."""
    return trigger_key(user_id, F.lit("cart_abandonment"), item_id, cart_day.cast("string"))


def browse_intent_key(user_id: Column, category: Column, window_start: Column) -> Column:
    """Key of a browse burst: one per (user, category, tumbling window), whichever path detects it."""
    return trigger_key(user_id, F.lit("browse_intent"), category, window_start.cast("string"))


def cart_abandonment(events: DataFrame, until: datetime, delay: timedelta, expiry: timedelta) -> DataFrame:
    """Carts whose delay has passed by ``until`` without a purchase or removal of the item."""
    carts = (
        events.where((F.col("event_type") == "add_to_cart") & F.col("item_id").isNotNull())
        .groupBy("user_id", "item_id", F.to_date("ts").alias("cart_day"))
        .agg(F.min("ts").alias("carted_at"))
    )
    resolutions = events.where(F.col("event_type").isin("purchase", "remove_from_cart")).select(
        "user_id", "item_id", F.col("ts").alias("resolved_at")
    )
    first_resolution = (
        carts.join(resolutions, ["user_id", "item_id"], "left")
        .where(F.col("resolved_at").isNull() | (F.col("resolved_at") >= F.col("carted_at")))
        .groupBy("user_id", "item_id", "cart_day", "carted_at")
        .agg(F.min("resolved_at").alias("resolved_at"))
    )
    fire_at = F.col("carted_at") + F.make_dt_interval(secs=F.lit(delay.total_seconds()))
    return (
        first_resolution.withColumn("fire_at", fire_at)
        .where(
            (F.col("fire_at") <= F.lit(until))
            & (F.col("resolved_at").isNull() | (F.col("resolved_at") >= F.col("fire_at")))
        )
        .select(
            cart_abandonment_key(F.col("user_id"), F.col("item_id"), F.col("cart_day")).alias("trigger_key"),
            "user_id",
            F.lit("cart_abandonment").alias("trigger_type"),
            "item_id",
            F.lit(None).cast("string").alias("category"),
            F.col("fire_at").alias("detected_at"),
            "fire_at",
            (F.col("fire_at") + F.make_dt_interval(secs=F.lit(expiry.total_seconds()))).alias("expires_at"),
            F.lit("batch").alias("origin"),
            F.col("resolved_at").alias("cancelled_at"),
        )
    )


def browse_intent(
    events: DataFrame, items: DataFrame, until: datetime, min_views: int, minutes: int, expiry: timedelta
) -> DataFrame:
    """Bursts of views in one category (tumbling windows ending by ``until``) without a cart there."""
    by_category = events.where(F.col("item_id").isNotNull()).join(
        items.select("item_id", "category"), "item_id", "inner"
    )
    window = F.window("ts", f"{minutes} minutes")
    views = (
        by_category.where(F.col("event_type") == "view")
        .groupBy("user_id", "category", window.alias("w"))
        .agg(F.count("*").alias("views"), F.max_by("item_id", F.struct("ts", "item_id")).alias("item_id"))
        .where(F.col("views") >= min_views)
    )
    carts = (
        by_category.where(F.col("event_type") == "add_to_cart")
        .select("user_id", "category", window.alias("w"))
        .distinct()
    )
    fire_at = F.col("w.end")
    return (
        views.join(carts, ["user_id", "category", "w"], "left_anti")
        .where(fire_at <= F.lit(until))
        .select(
            browse_intent_key(F.col("user_id"), F.col("category"), F.col("w.start")).alias("trigger_key"),
            "user_id",
            F.lit("browse_intent").alias("trigger_type"),
            "item_id",
            "category",
            fire_at.alias("detected_at"),
            fire_at.alias("fire_at"),
            (fire_at + F.make_dt_interval(secs=F.lit(expiry.total_seconds()))).alias("expires_at"),
            F.lit("batch").alias("origin"),
            F.lit(None).cast("timestamp").alias("cancelled_at"),
        )
    )


_STORE_TRIGGERS = load_query("notify/store_triggers")

# A trigger cancelled (the user bought or removed the item) after its message was queued: the
# message is dropped before the relay reaches it (a deferred or retried one would otherwise go).
_CANCEL_QUEUED = """
UPDATE push.notification_ledger l
SET status = 'cancelled', last_error = 'trigger cancelled: the user bought or removed the item'
FROM trigger_stage s
WHERE s.cancelled_at IS NOT NULL AND l.status = 'pending' AND l.candidate_key = 'trigger:' || s.trigger_key
"""

_STORE_INTERACTIONS = load_query("notify/store_interactions")

# Item triggers: catalogue changes in (since, until] reach users interested in the item.
ITEM_TRIGGERS_SQL = load_query("notify/item_triggers")


def store_triggers(conn: Connection, triggers: pd.DataFrame, interactions: pd.DataFrame) -> None:
    """Upsert behavioural triggers (by key) and recent interactions in the caller's transaction.

    Shared by the batch detector and the stream, so both paths write triggers the same way: a
    trigger detected twice stays one row, a cancellation is kept once set, and a cancelled
    trigger's message still waiting in the outbox is cancelled with it.
    """
    conn.execute(text("CREATE TEMP TABLE trigger_stage (LIKE push.triggers INCLUDING DEFAULTS) ON COMMIT DROP"))
    copy_frame(conn, "trigger_stage", triggers[list(TRIGGER_COLUMNS)])
    conn.execute(text(_STORE_TRIGGERS))
    conn.execute(text(_CANCEL_QUEUED))
    store_interactions(conn, interactions)


def store_interactions(conn: Connection, interactions: pd.DataFrame) -> None:
    """Merge (user, item) latest view/cart/purchase times into ``push.recent_interactions`` (greatest wins)."""
    conn.execute(text("CREATE TEMP TABLE interaction_stage (LIKE push.recent_interactions) ON COMMIT DROP"))
    copy_frame(conn, "interaction_stage", interactions)
    conn.execute(text(_STORE_INTERACTIONS))


def item_trigger_params(settings: Settings, until: datetime) -> dict:
    """Parameters of :data:`ITEM_TRIGGERS_SQL`: catalogue changes still fresh at ``until``."""
    return {
        "since": until - timedelta(hours=settings.trigger_expiry_hours),
        "until": until,
        "expiry": timedelta(hours=settings.trigger_expiry_hours),
        "interest": timedelta(days=settings.item_trigger_interest_days),
    }


def detect_triggers(spark: SparkSession, settings: Settings, until: datetime) -> dict:
    """Detect every trigger due by ``until`` from recent clean events and catalogue changes; store them."""
    delay = timedelta(minutes=settings.cart_abandonment_minutes)
    expiry = timedelta(hours=settings.trigger_expiry_hours)
    # Carts up to a day old (plus the delay) can still fire or be cancelled.
    since = until - delay - timedelta(hours=25)
    events = read_clean(spark, settings, since, until).where(F.col("ts") < F.lit(until)).cache()
    behavioural = cart_abandonment(events, until, delay, expiry).unionByName(
        browse_intent(
            events,
            read_items(spark, settings),
            until,
            settings.browse_intent_views,
            settings.browse_intent_minutes,
            expiry,
        )
    )
    triggers = utc_columns(behavioural.toPandas(), ("detected_at", "fire_at", "expires_at", "cancelled_at"))
    interactions = utc_columns(
        recent_interactions(events).toPandas(), ("last_viewed_at", "last_carted_at", "last_purchased_at")
    )
    events.unpersist()
    with make_engine(settings.database_url).begin() as conn:
        store_triggers(conn, triggers, interactions)
        item_triggers = conn.execute(text(ITEM_TRIGGERS_SQL), item_trigger_params(settings, until)).rowcount
    summary = {
        "behavioural_triggers": len(triggers),
        "by_type": {str(k): int(v) for k, v in triggers["trigger_type"].value_counts().sort_index().items()},
        "cancelled": int(triggers["cancelled_at"].notna().sum()),
        "new_item_triggers": item_triggers,
        "interactions": len(interactions),
    }
    log.info("triggers: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--at", type=parse_utc, required=True, help="detect triggers due by this time (UTC)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    print(json.dumps(detect_triggers(get_spark(settings), settings, args.at)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
