"""Implicit ratings from behaviour events, and a per-user chronological hold-out split.

A (user, item) pair's rating grows with the weighted, time-decayed evidence of interest
(view < click < cart < purchase) and is capped, then mapped onto 1..5 with a log curve, so one
purchase counts for more than ten views but a hundred views do not dominate.

Rating-trained SVD only ever sees positive evidence and then ranks poorly: it cannot tell
"not interested" from "not seen". ``with_sampled_negatives`` adds, per user, a seeded sample
of items they never touched with rating 0, which teaches the factors what a user skips.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.profiles.build import event_weights

RATING_MIN = 1.0
RATING_MAX = 5.0
NEGATIVE_RATING = 0.0


def implicit_ratings(events: DataFrame, as_of: datetime, half_life_days: float, cap: float = 20.0) -> DataFrame:
    """(user_id, item_id, rating, evidence, bought, last_ts) per pair with positive evidence."""
    age_days = (F.lit(as_of).cast("long") - F.col("ts").cast("long")) / 86400.0
    weighted = events.where(F.col("item_id").isNotNull()).withColumn(
        "w", event_weights() * F.pow(F.lit(0.5), F.greatest(age_days, F.lit(0.0)) / F.lit(half_life_days))
    )
    pairs = weighted.groupBy("user_id", "item_id").agg(
        F.sum("w").alias("evidence"),
        F.max(F.when(F.col("event_type") == "purchase", True).otherwise(False)).alias("bought"),
        F.max("ts").alias("last_ts"),
    )
    scaled = F.least(F.log1p("evidence") / F.log1p(F.lit(cap)), F.lit(1.0))
    return pairs.where("evidence > 0").withColumn(
        "rating", F.round(F.lit(RATING_MIN) + F.lit(RATING_MAX - RATING_MIN) * scaled, 4)
    )


def chronological_split(
    ratings: pd.DataFrame, test_share: float = 0.25, min_items: int = 4, time_column: str = "last_ts"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, the most recent ``test_share`` of their items go to test (users with few items stay in train)."""
    ordered = ratings.sort_values(["user_id", time_column, "item_id"], kind="stable").reset_index(drop=True)
    return _split_tail_per_user(ordered, test_share, min_items)


def random_split(
    ratings: pd.DataFrame, test_share: float = 0.25, min_items: int = 2, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, a seeded random ``test_share`` of their items go to test (stratified by user)."""
    shuffled = ratings.assign(_key=np.random.default_rng(seed).random(len(ratings)))
    ordered = shuffled.sort_values(["user_id", "_key"], kind="stable").drop(columns="_key").reset_index(drop=True)
    return _split_tail_per_user(ordered, test_share, min_items)


def _split_tail_per_user(ordered: pd.DataFrame, test_share: float, min_items: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last floor(n x share) rows of each user's (already ordered) rows form the test set."""
    position = ordered.groupby("user_id").cumcount()
    counts = ordered.groupby("user_id")["item_id"].transform("size")
    test_count = np.floor(counts * test_share).astype(int)
    is_test = (counts >= min_items) & (position >= counts - test_count)
    return ordered[~is_test].reset_index(drop=True), ordered[is_test].reset_index(drop=True)


def with_sampled_negatives(
    ratings: pd.DataFrame, item_ids: list[str], ratio: float, seed: int, held_out: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``ratings`` plus ``ratio`` x (positives) unseen items per user at ``NEGATIVE_RATING``.

    ``held_out`` pairs (an evaluation's test set) are never drawn as negatives, so a model is
    not taught that the items it will be tested on are disliked.
    """
    if ratio <= 0:
        return ratings[["user_id", "item_id", "rating"]]
    rng = np.random.default_rng(seed)
    catalogue = np.array(sorted(item_ids), dtype=object)
    frames = [ratings[["user_id", "item_id", "rating"]]]
    users, negatives = [], []
    hidden = {} if held_out is None else held_out.groupby("user_id")["item_id"].agg(list).to_dict()
    for user, seen in ratings.groupby("user_id", sort=True)["item_id"]:
        unseen = catalogue[~np.isin(catalogue, [*seen.to_numpy(), *hidden.get(user, [])])]
        count = min(len(unseen), round(ratio * len(seen)))
        if count:
            negatives.append(rng.choice(unseen, size=count, replace=False))
            users.append(np.full(count, user, dtype=object))
    if negatives:
        frames.append(
            pd.DataFrame(
                {"user_id": np.concatenate(users), "item_id": np.concatenate(negatives), "rating": NEGATIVE_RATING}
            )
        )
    return pd.concat(frames, ignore_index=True)
