"""Each user's latest view, cart and purchase time per item: the state that triggers (carts,
browse intent, price drops) and today's intent read, kept in ``push.recent_interactions``.

Two versions of one rule: Spark for the batch, pandas for a stream micro-batch already in memory
(a test holds them equal).
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def recent_interactions(events: DataFrame) -> DataFrame:
    """Per (user, item): when the user last viewed (or clicked), carted and bought it."""
    kind = F.col("event_type")
    return (
        events.where(F.col("item_id").isNotNull())
        .groupBy("user_id", "item_id")
        .agg(
            F.max(F.when(kind.isin("view", "click"), F.col("ts"))).alias("last_viewed_at"),
            F.max(F.when(kind == "add_to_cart", F.col("ts"))).alias("last_carted_at"),
            F.max(F.when(kind == "purchase", F.col("ts"))).alias("last_purchased_at"),
        )
    )


def recent_interactions_frame(events: pd.DataFrame) -> pd.DataFrame:
    """:func:`recent_interactions` on a small pandas frame (a collected stream micro-batch).

    Same rows as the Spark version (a unit test holds them equal), without another Spark job.
    """
    with_item = events[events["item_id"].notna()]
    kind, ts = with_item["event_type"], with_item["ts"]
    latest = pd.DataFrame(
        {
            "user_id": with_item["user_id"],
            "item_id": with_item["item_id"],
            "last_viewed_at": ts.where(kind.isin(["view", "click"])),
            "last_carted_at": ts.where(kind == "add_to_cart"),
            "last_purchased_at": ts.where(kind == "purchase"),
        }
    )
    return latest.groupby(["user_id", "item_id"], as_index=False, dropna=False).max()
