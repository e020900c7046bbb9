"""The stream's pandas twins of the batch rules give the batch rules' answers (Spark on the same rows).

The streaming writer applies the bot rule and the recent-interactions merge to the micro-batch
it has collected, in pandas; the hourly cleaner and detector run the Spark versions. Both must
decide the same, so each twin is checked against its Spark original on rows built to sit on the
rules' edges (exactly at the rate, a minute boundary, events without an item).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from pyspark.sql import functions as F

from jobs.ingest.rules import bot_users, flag_bots
from jobs.profiles.interactions import recent_interactions, recent_interactions_frame

T = datetime(2026, 11, 24, 10, 0, 0)
COLUMNS = ("event_id", "user_id", "event_type", "item_id", "ts")


def _events(rows: list[tuple[str, str, str | None, float]]) -> pd.DataFrame:
    """(user, event type, item, seconds after T) rows, numbered as event ids."""
    return pd.DataFrame(
        [(f"e{n}", user, kind, item, T + timedelta(seconds=s)) for n, (user, kind, item, s) in enumerate(rows)],
        columns=list(COLUMNS),
    )


def _spark_frame(spark, events: pd.DataFrame):
    schema = "event_id string, user_id string, event_type string, item_id string, ts timestamp"
    return spark.createDataFrame(events.astype(object).where(events.notna(), None), schema).withColumn(
        "reason", F.lit(None).cast("string")
    )


def test_bot_users_are_the_users_flag_bots_marks(spark):
    limit = 3
    events = _events(
        [("over", "view", "i1", s) for s in (1, 2, 3, 4)]  # 4 in one minute: a bot
        + [("at_limit", "view", "i1", s) for s in (1, 2, 3)]  # 3: not
        + [("split", "view", "i1", s) for s in (57, 58, 59, 61)]  # 3 + 1 across a minute boundary: not
        + [("other_minute", "view", "i2", s) for s in (60, 70, 80, 90, 100)]  # 5 in the second minute
    )
    flagged = flag_bots(_spark_frame(spark, events), limit).where(F.col("reason") == "bot")
    expected = {row.user_id for row in flagged.select("user_id").distinct().collect()}
    assert expected == {"over", "other_minute"}
    assert bot_users(events, limit) == expected
    assert bot_users(events.iloc[0:0], limit) == set()


def test_recent_interactions_frame_equals_the_spark_merge(spark):
    events = _events(
        [
            ("u1", "view", "i1", 1),
            ("u1", "click", "i1", 5),
            ("u1", "add_to_cart", "i1", 3),
            ("u1", "purchase", "i2", 9),
            ("u1", "search", None, 10),  # no item: not an interaction
            ("u2", "view", "i1", 2),
            ("u2", "remove_from_cart", "i3", 4),  # an item but no tracked kind: a row of nulls
        ]
    )
    columns = ["user_id", "item_id", "last_viewed_at", "last_carted_at", "last_purchased_at"]
    expected = recent_interactions(_spark_frame(spark, events)).toPandas()[columns]
    got = recent_interactions_frame(events)[columns]
    order = ["user_id", "item_id"]
    pd.testing.assert_frame_equal(
        got.sort_values(order).reset_index(drop=True),
        expected.sort_values(order).reset_index(drop=True),
        check_dtype=False,
    )
    assert len(got) == 4
