"""Recent intent: the hourly refresh (PostgreSQL, from merged interactions) equals a full
recompute (Spark, from the events) of the same windows, hour after hour."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pandas as pd
import pytest
from pyspark.sql import functions as F

from jobs.core.db import fetch_frame
from jobs.ingest.landing import landing_files, read_landing
from jobs.ingest.rules import LineRules, clean_rows
from jobs.notify.triggers import store_interactions
from jobs.profiles.intent import INTENT_WINDOWS_HOURS, recent_intent, refresh_recent_intent
from jobs.profiles.interactions import recent_interactions
from simulation.synthetic import GeneratorConfig, generate

COLUMNS = ["user_id", "window_hours", "item_id", "last_viewed_at", "last_carted_at"]
HOURS = 6


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[COLUMNS].copy()
    for column in ("last_viewed_at", "last_carted_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["window_hours"] = frame["window_hours"].astype(int)
    return frame.sort_values(["user_id", "window_hours", "item_id"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def events(spark, settings, tmp_path_factory):
    local = replace(settings, landing_dir=tmp_path_factory.mktemp("intent"))
    summary = generate(GeneratorConfig(users=150, items=60, days=2, seed=9), local.landing_dir)
    start, end = (datetime.fromisoformat(summary[k]) for k in ("window_start", "window_end"))
    landed = F.to_timestamp(F.format_string("%s %02d:00:00", F.col("landing_date").cast("string"), "landing_hour"))
    raw = read_landing(spark, landing_files(local.landing_dir, start, end))
    frame = clean_rows(raw, LineRules.from_settings(local)).clean
    return frame.withColumn("landed_at", landed).cache(), end


def test_hourly_refresh_equals_full_recompute(events, empty_db):
    frame, end = events
    first = end - timedelta(hours=HOURS)
    interactions_columns = ["user_id", "item_id", "last_viewed_at", "last_carted_at", "last_purchased_at"]

    def advance(conn, since, until):
        batch = frame.where((F.col("landed_at") >= F.lit(since)) & (F.col("landed_at") < F.lit(until)))
        merged = recent_interactions(batch).toPandas()[interactions_columns]
        for column in interactions_columns[2:]:
            merged[column] = pd.to_datetime(merged[column]).dt.tz_localize("UTC")
        store_interactions(conn, merged)

    with empty_db.begin() as conn:  # the state before the first hour: all earlier history at once
        advance(conn, datetime(2000, 1, 1, tzinfo=first.tzinfo), first)
    rows_by_window = dict.fromkeys(INTENT_WINDOWS_HOURS, 0)
    for hour in range(HOURS):
        since, until = first + timedelta(hours=hour), first + timedelta(hours=hour + 1)
        with empty_db.begin() as conn:
            advance(conn, since, until)  # only this hour's events
            counts = refresh_recent_intent(conn, until)
        refreshed = fetch_frame(empty_db.connect(), "SELECT * FROM push.recent_intent")
        recomputed = recent_intent(frame.where(F.col("landed_at") < F.lit(until)), until).toPandas()
        pd.testing.assert_frame_equal(_normalised(refreshed), _normalised(recomputed))
        assert set(refreshed["computed_for"]) == {pd.Timestamp(until)}
        for window, count in counts.items():
            rows_by_window[window] += count
    assert all(rows_by_window[w] > 0 for w in INTENT_WINDOWS_HOURS), rows_by_window


def test_bought_items_leave_the_intent(events):
    frame, end = events
    until = end - timedelta(hours=1)
    intent = recent_intent(frame.where(F.col("landed_at") < F.lit(until)), until).toPandas()
    day = frame.where((F.col("ts") >= F.lit(until - timedelta(hours=24))) & (F.col("ts") < F.lit(until)))
    bought = day.where("event_type = 'purchase'").select("user_id", "item_id", F.col("ts").alias("bought_at"))
    last_interest = (
        day.where(F.col("event_type").isin("view", "click", "add_to_cart"))
        .groupBy("user_id", "item_id")
        .agg(F.max("ts").alias("interest_at"))
    )
    bought_after = bought.join(last_interest, ["user_id", "item_id"]).where("bought_at >= interest_at").toPandas()
    assert len(bought_after) > 0, "the generated day has purchases"
    day_intent = set(
        zip(
            intent.loc[intent["window_hours"] == 24, "user_id"],
            intent.loc[intent["window_hours"] == 24, "item_id"],
            strict=True,
        )
    )
    assert not day_intent & set(zip(bought_after["user_id"], bought_after["item_id"], strict=True))
    carted_only = intent[(intent["window_hours"] == 24) & intent["last_carted_at"].notna()]
    assert len(carted_only) > 0
