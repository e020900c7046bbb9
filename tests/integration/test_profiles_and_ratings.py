"""Profile and rating transforms on a handful of hand-made events (real local Spark)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pandas as pd
import pytest

from jobs.profiles.build import build_user_profiles
from jobs.recs.ratings import NEGATIVE_RATING, chronological_split, implicit_ratings, with_sampled_negatives

AS_OF = datetime(2026, 11, 25, tzinfo=UTC)
ITEMS = [
    ("i1", "Shoe", "shoes", "b1", 50.0, True),
    ("i2", "Dear shoe", "shoes", "b2", 150.0, True),
    ("i3", "Book", "books", "b3", 10.0, True),
]


def _events(spark, rows):
    schema = "user_id string, event_type string, item_id string, price double, quantity long, ts timestamp"
    return spark.createDataFrame(rows, schema)


@pytest.fixture
def frames(spark):
    events = _events(
        spark,
        [
            # u1: two purchases of dear shoes at 10:00 Shanghai time (02:00 UTC), one old book view.
            ("u1", "purchase", "i2", 150.0, 1, datetime(2026, 11, 24, 2, 0)),
            ("u1", "purchase", "i2", 150.0, 2, datetime(2026, 11, 23, 2, 30)),
            ("u1", "view", "i3", 10.0, None, datetime(2026, 10, 30, 2, 0)),
            ("u2", "view", "i1", 50.0, None, datetime(2026, 11, 24, 20, 0)),
            ("u2", "search", None, None, None, datetime(2026, 11, 24, 20, 1)),
        ],
    )
    items = spark.createDataFrame(
        ITEMS, "item_id string, title string, category string, brand string, price double, in_stock boolean"
    )
    users = spark.createDataFrame([("u1", "Asia/Shanghai"), ("u2", "UTC")], "user_id string, timezone string")
    return events, items, users


def test_profiles_by_hand(frames):
    events, items, users = frames
    rows = {r.user_id: r for r in build_user_profiles(events, items, users, AS_OF, half_life_days=7.0).collect()}
    u1, u2 = rows["u1"], rows["u2"]
    assert u1.top_categories[0] == "shoes"
    affinity = json.loads(u1.category_affinity)
    assert affinity["shoes"] > 0.95  # two recent purchases vs one 26-day-old view
    assert sum(affinity.values()) == pytest.approx(1.0, abs=1e-3)
    assert u1.frequency == 2
    assert u1.monetary == pytest.approx(150.0 + 300.0)
    assert u1.preferred_hour == 10  # local time, not UTC
    assert u1.price_level > u2.price_level  # the dearest shoe vs the cheapest
    assert u2.frequency == 0
    assert u2.recency_days == pytest.approx(4 / 24, abs=1e-3)
    assert u2.preferred_weekday == 2  # 2026-11-24 is a Tuesday


def test_implicit_ratings_order_and_scale(frames):
    events, _, _ = frames
    ratings = {(r.user_id, r.item_id): r for r in implicit_ratings(events, AS_OF, 7.0).itertuples()}
    assert set(ratings) == {("u1", "i2"), ("u1", "i3"), ("u2", "i1")}
    assert ratings[("u1", "i2")].bought
    assert not ratings[("u2", "i1")].bought
    assert 1.0 <= ratings[("u1", "i3")].rating < ratings[("u2", "i1")].rating < ratings[("u1", "i2")].rating <= 5.0


def test_chronological_split_holds_out_each_users_latest_items():
    ratings = pd.DataFrame(
        {
            "user_id": ["a"] * 8 + ["b"] * 2,
            "item_id": [f"i{n}" for n in range(8)] + ["x", "y"],
            "rating": 1.0,
            "last_ts": pd.to_datetime([f"2026-11-{d:02d}" for d in range(1, 9)] + ["2026-11-01", "2026-11-02"]),
        }
    )
    train, test = chronological_split(ratings, test_share=0.25, min_items=4)
    assert sorted(test["item_id"]) == ["i6", "i7"]
    assert set(train["item_id"]) == {f"i{n}" for n in range(6)} | {"x", "y"}


def test_sampled_negatives_are_unseen_seeded_and_proportional():
    ratings = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["i1", "i2", "i1"], "rating": [5.0, 3.0, 4.0]})
    catalogue = [f"i{n}" for n in range(1, 11)]
    first = with_sampled_negatives(ratings, catalogue, ratio=2.0, seed=1)
    assert first.equals(with_sampled_negatives(ratings, catalogue, ratio=2.0, seed=1))
    negatives = first[first["rating"] == NEGATIVE_RATING]
    assert negatives.groupby("user_id").size().to_dict() == {"a": 4, "b": 2}
    seen = set(zip(ratings["user_id"], ratings["item_id"], strict=True))
    assert not seen & set(zip(negatives["user_id"], negatives["item_id"], strict=True))
    assert with_sampled_negatives(ratings, catalogue, ratio=0, seed=1).equals(ratings[["user_id", "item_id", "rating"]])


def test_popularity_weighted_negatives_follow_training_popularity_and_skip_seen_items():
    # Item "hot" is held by 8 training users, "cold" by none: with exponent 1 a free draw picks
    # "hot" (8 + 1) / (0 + 1) = 9 times as often as "cold".
    holders = pd.DataFrame({"user_id": [f"h{n}" for n in range(8)], "item_id": "hot", "rating": 4.0})
    asker = pd.DataFrame({"user_id": ["a"], "item_id": ["seen"], "rating": [5.0]})
    catalogue = ["hot", "cold", "seen"]
    picks = Counter()
    for seed in range(1500):
        drawn = with_sampled_negatives(pd.concat([holders, asker]), catalogue, 1.0, seed, popularity_exponent=1.0)
        picks.update(drawn.loc[(drawn["user_id"] == "a") & (drawn["rating"] == NEGATIVE_RATING), "item_id"])
    assert set(picks) == {"hot", "cold"}  # never the user's own item
    # "seen" is held by one user: weights hot 9, cold 1, seen 2; a draws from {hot, cold}.
    assert picks["hot"] / 1500 == pytest.approx(0.9, abs=0.025)


def test_sampled_negatives_are_uniform_over_unseen_items_and_fill_dense_users():
    catalogue = [f"i{n:02d}" for n in range(11)]
    one = pd.DataFrame({"user_id": ["a"], "item_id": ["i00"], "rating": [5.0]})
    picks = Counter(
        with_sampled_negatives(one, catalogue, ratio=1.0, seed=seed).iloc[-1]["item_id"] for seed in range(2000)
    )
    assert set(picks) == set(catalogue) - {"i00"}
    assert all(abs(count / 2000 - 0.1) < 0.025 for count in picks.values())  # 10 % each, 4+ sigma margin
    # A user who has seen all but two items gets exactly those two, whatever the ratio asks.
    dense = pd.DataFrame({"user_id": "d", "item_id": catalogue[:9], "rating": 4.0})
    negatives = with_sampled_negatives(dense, catalogue, ratio=3.0, seed=5).iloc[9:]
    assert sorted(negatives["item_id"]) == ["i09", "i10"]
    # Items outside the catalogue count as rows (ratio x rows) but cannot be drawn.
    odd = pd.DataFrame({"user_id": "o", "item_id": ["zz", "i01"], "rating": 4.0})
    drawn = with_sampled_negatives(odd, catalogue, ratio=1.0, seed=2).iloc[2:]
    assert len(drawn) == 2
    assert not {"zz", "i01"} & set(drawn["item_id"])


def test_searches_matched_to_the_catalogue_move_the_category_affinity(spark):
    from jobs.profiles.search import query_shares, search_affinity

    schema = (
        "user_id string, event_type string, item_id string, price double, quantity long, query string, ts timestamp"
    )
    events = spark.createDataFrame(
        [
            ("u3", "view", "i3", 10.0, None, None, datetime(2026, 11, 24, 9)),  # one book viewed
            ("u3", "search", None, None, None, "dear SHOES", datetime(2026, 11, 24, 10)),
            ("u3", "search", None, None, None, "shoe", datetime(2026, 11, 24, 11)),
            ("u3", "search", None, None, None, "teleporter", datetime(2026, 11, 24, 12)),  # matches nothing
        ],
        schema,
    )
    items = spark.createDataFrame(
        ITEMS, "item_id string, title string, category string, brand string, price double, in_stock boolean"
    )
    shares = {(r.query, r.category): r.share for r in query_shares(spark, events, items).collect()}
    assert shares == {("dear SHOES", "shoes"): 1.0, ("shoe", "shoes"): 1.0}
    affinity = search_affinity(events, query_shares(spark, events, items), AS_OF, 7.0).collect()
    assert [(r.user_id, r.category) for r in affinity] == [("u3", "shoes")]
    users = spark.createDataFrame([("u3", "UTC")], "user_id string, timezone string")
    searches = search_affinity(events, query_shares(spark, events, items), AS_OF, 7.0)
    plain = build_user_profiles(events, items, users, AS_OF, 7.0).collect()[0]
    weighted = build_user_profiles(events, items, users, AS_OF, 7.0, searches, 2.0).collect()[0]
    assert plain.top_categories == ["books"]
    assert weighted.top_categories == ["shoes", "books"]  # two searches x 2 outweigh one view
