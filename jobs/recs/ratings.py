"""Implicit ratings from behaviour events, and a per-user chronological hold-out split.

A (user, item) pair's rating grows with the weighted, time-decayed evidence of interest
(view < click < cart < purchase, a long view more than a glance) and is capped, then mapped onto
1..5 with a log curve, so one purchase counts for more than ten views but a hundred views do not
dominate. The weights are :class:`IntentWeights`, chosen per training run on validation.

Rating-trained SVD only ever sees positive evidence and then ranks poorly: it cannot tell
"not interested" from "not seen". ``with_sampled_negatives`` adds, per user, a seeded sample
of items they never touched with rating 0, which teaches the factors what a user skips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.profiles.build import EVENT_WEIGHTS

RATING_MIN = 1.0
RATING_MAX = 5.0
NEGATIVE_RATING = 0.0
# Rejection rounds of the negative sampler before the exact per-user fallback.
_SAMPLING_ROUNDS = 4


# The events a pair's evidence counts, and the dwell a view is measured against: a view of
# DWELL_REFERENCE_MS counts as one view, a longer one more when the dwell exponent is above 0.
EVIDENCE_TYPES = tuple(EVENT_WEIGHTS)
DWELL_REFERENCE_MS = 10_000.0
DWELL_EXPONENTS = (0.0, 0.5, 1.0)
_DWELL_CLIP = (0.1, 10.0)


@dataclass(frozen=True)
class IntentWeights:
    """How much each kind of evidence counts: a weight per event type and a dwell exponent.

    A view's weight is multiplied by ``(dwell_ms / DWELL_REFERENCE_MS) ** dwell_exponent``
    (clipped to 0.1..10 before the power; a view without dwell counts as the reference), so at
    exponent 0 every view counts the same and at 1 a one-minute view counts six reference views.
    Training chooses them on a validation split (``jobs.recs.intent``); these defaults are the
    starting point of that search and the weights of a run without one.
    """

    types: Mapping[str, float] = field(default_factory=lambda: dict(EVENT_WEIGHTS))
    dwell_exponent: float = 0.0

    def to_dict(self) -> dict:
        return {"types": dict(self.types), "dwell_exponent": self.dwell_exponent}

    @classmethod
    def from_dict(cls, data: Mapping | None) -> IntentWeights:
        if not data:
            return cls()
        return cls({**EVENT_WEIGHTS, **data.get("types", {})}, float(data.get("dwell_exponent", 0.0)))


def dwell_column(exponent: float) -> str:
    return f"e_view_dwell_{round(exponent * 100)}"


def pair_evidence(events: DataFrame, as_of: datetime, half_life_days: float) -> pd.DataFrame:
    """Per (user, item): the time-decayed count of each event type, dwell-weighted view counts,
    ``bought`` and ``last_ts``. Any :class:`IntentWeights` turns it into ratings without another
    pass over the events (:func:`ratings_from_evidence`)."""
    age_days = (F.lit(as_of).cast("long") - F.col("ts").cast("long")) / 86400.0
    decay = F.pow(F.lit(0.5), F.greatest(age_days, F.lit(0.0)) / F.lit(half_life_days))
    dwell = F.col("dwell_ms") if "dwell_ms" in events.columns else F.lit(None)
    relative = F.coalesce(dwell.cast("double") / F.lit(DWELL_REFERENCE_MS), F.lit(1.0))
    clipped = F.least(F.greatest(relative, F.lit(_DWELL_CLIP[0])), F.lit(_DWELL_CLIP[1]))
    is_view = F.col("event_type") == "view"
    sums = [
        F.sum(F.when(F.col("event_type") == kind, decay).otherwise(0.0)).alias(f"e_{kind}") for kind in EVIDENCE_TYPES
    ]
    sums += [
        F.sum(F.when(is_view, decay * F.pow(clipped, F.lit(exponent))).otherwise(0.0)).alias(dwell_column(exponent))
        for exponent in DWELL_EXPONENTS
        if exponent > 0
    ]
    pairs = (
        events.where(F.col("item_id").isNotNull() & F.col("event_type").isin(*EVIDENCE_TYPES))
        .groupBy("user_id", "item_id")
        .agg(
            *sums,
            F.max(F.when(F.col("event_type") == "purchase", True).otherwise(False)).alias("bought"),
            F.max("ts").alias("last_ts"),
        )
        .toPandas()
    )
    # Float sums depend on Spark's order of addition: rounded, a re-run gives identical ratings.
    evidence_columns = [c for c in pairs.columns if c.startswith("e_")]
    pairs[evidence_columns] = pairs[evidence_columns].astype(float).round(9)
    return pairs.sort_values(["user_id", "item_id"], kind="stable").reset_index(drop=True)


def ratings_from_evidence(
    evidence: pd.DataFrame, weights: IntentWeights | None = None, cap: float = 20.0
) -> pd.DataFrame:
    """(user_id, item_id, rating, evidence, bought, last_ts) per pair with positive evidence."""
    weights = weights or IntentWeights()
    total = np.zeros(len(evidence))
    for kind in EVIDENCE_TYPES:
        column = f"e_{kind}"
        if kind == "view" and weights.dwell_exponent > 0:
            column = dwell_column(weights.dwell_exponent)
            if column not in evidence.columns:
                raise ValueError(f"dwell exponent {weights.dwell_exponent} is not one of {DWELL_EXPONENTS}")
        total += float(weights.types.get(kind, 0.0)) * evidence[column].to_numpy(dtype=float)
    scaled = np.minimum(np.log1p(total) / np.log1p(cap), 1.0)
    out = evidence[["user_id", "item_id"]].assign(
        rating=np.round(RATING_MIN + (RATING_MAX - RATING_MIN) * scaled, 4),
        evidence=total,
        bought=evidence["bought"].to_numpy(dtype=bool),
        last_ts=evidence["last_ts"],
    )
    return out[total > 0].reset_index(drop=True)


def of_pairs(evidence: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``evidence`` whose (user, item) pair is one of ``pairs``' (a split's part)."""
    keys = pd.MultiIndex.from_frame(pairs[["user_id", "item_id"]])
    return evidence[pd.MultiIndex.from_frame(evidence[["user_id", "item_id"]]).isin(keys)]


def implicit_ratings(
    events: DataFrame, as_of: datetime, half_life_days: float, weights: IntentWeights | None = None
) -> pd.DataFrame:
    """Ratings of every pair with positive evidence, sorted by (user, item)."""
    return ratings_from_evidence(pair_evidence(events, as_of, half_life_days), weights)


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
    ratings: pd.DataFrame, item_ids: list[str], ratio: float, seed: int, popularity_exponent: float = 0.0
) -> pd.DataFrame:
    """``ratings`` plus ``ratio`` x (positives) unseen items per user at ``NEGATIVE_RATING``.

    Only ``ratings`` (the training part) decides anything here: which pairs are seen, how many
    negatives each user gets and, with ``popularity_exponent`` > 0, how likely an item is drawn
    (proportional to (users with the item in ``ratings`` + 1) ** exponent, so popular items the
    user skipped teach the model more than obscure ones). At 0 the draw is uniform over the
    user's unseen catalogue items. Each user's sample is without replacement and seeded. It is
    drawn for all users at once on integer codes (draw with replacement, reject seen and repeated
    pairs, keep the first of each user's survivors in draw order, repeat for the shortfall),
    because a per-user set difference over the catalogue costs users x items and does not finish
    at 10^7 events.
    """
    positives = ratings[["user_id", "item_id", "rating"]]
    if ratio <= 0:
        return positives
    rng = np.random.default_rng(seed)
    catalogue = np.array(sorted(set(item_ids)), dtype=object)
    n_items = len(catalogue)
    users = np.array(sorted(positives["user_id"].unique()), dtype=object)
    if not n_items or not len(users):
        return positives

    def pair_keys(frame: pd.DataFrame) -> np.ndarray:
        """``user code * n_items + item code`` of the frame's pairs known to both users and catalogue."""
        user_code = pd.Categorical(frame["user_id"], categories=users).codes.astype(np.int64)
        item_code = pd.Categorical(frame["item_id"], categories=catalogue).codes.astype(np.int64)
        known = (user_code >= 0) & (item_code >= 0)
        return user_code[known] * n_items + item_code[known]

    no_pairs = np.array([], dtype=np.int64)
    taken = np.unique(pair_keys(positives))
    weights = None
    if popularity_exponent > 0:
        holders = np.bincount(taken % n_items, minlength=n_items).astype(float)
        weights = (holders + 1.0) ** popularity_exponent
        weights /= weights.sum()
        cumulative = np.cumsum(weights)
        cumulative[-1] = 1.0

    def draw_items(size: int) -> np.ndarray:
        if weights is None:
            return rng.integers(0, n_items, size=size)
        return np.minimum(np.searchsorted(cumulative, rng.random(size), side="right"), n_items - 1)

    def taken_mass(keys: np.ndarray) -> np.ndarray:
        """Per user, the share of the draw distribution its taken items hold."""
        mass = None if weights is None else weights[keys % n_items]
        share = np.bincount(keys // n_items, weights=mass, minlength=len(users))
        return share / n_items if weights is None else share

    rows_per_user = positives.groupby("user_id", sort=True).size().reindex(users).to_numpy()
    taken_per_user = np.bincount(taken // n_items, minlength=len(users))
    need = np.minimum(n_items - taken_per_user, np.round(ratio * rows_per_user).astype(np.int64))
    chosen: list[np.ndarray] = []
    for _ in range(_SAMPLING_ROUNDS):
        if not need.any():
            break
        # Oversample by the share of the draw distribution each user has left, so one round usually suffices.
        free_share = np.maximum(1.0 - taken_mass(taken), 1.0 / n_items)
        draws = np.where(need > 0, np.ceil(need / free_share * 1.2).astype(np.int64) + 4, 0)
        user_of_draw = np.repeat(np.arange(len(users), dtype=np.int64), draws)
        keys = user_of_draw * n_items + draw_items(len(user_of_draw))
        fresh = ~np.isin(keys, taken)
        keys, user_of_draw = keys[fresh], user_of_draw[fresh]
        _, first = np.unique(keys, return_index=True)
        first.sort()  # first draw of each pair, in draw order
        keys, user_of_draw = keys[first], user_of_draw[first]
        # Rank of each surviving draw within its user (draws are grouped by user).
        rank = np.arange(len(keys)) - np.searchsorted(user_of_draw, user_of_draw)
        keep = rank < need[user_of_draw]
        picked = keys[keep]
        chosen.append(picked)
        taken = np.union1d(taken, picked)
        got = np.bincount(user_of_draw[keep], minlength=len(users))
        need -= got
        taken_per_user += got
    for user in np.flatnonzero(need > 0):  # users who have seen nearly the whole catalogue
        own = taken[(taken >= user * n_items) & (taken < (user + 1) * n_items)] - user * n_items
        unseen = np.setdiff1d(np.arange(n_items), own)
        p = None if weights is None else weights[unseen] / weights[unseen].sum()
        chosen.append(user * n_items + rng.choice(unseen, size=need[user], replace=False, p=p))
    keys = np.concatenate(chosen) if chosen else no_pairs
    keys = keys[np.argsort(keys // n_items, kind="stable")]  # grouped by user, draw order within
    negatives = pd.DataFrame(
        {"user_id": users[keys // n_items], "item_id": catalogue[keys % n_items], "rating": NEGATIVE_RATING}
    )
    return pd.concat([positives, negatives], ignore_index=True)
