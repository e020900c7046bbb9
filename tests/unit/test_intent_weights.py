"""Intent weights: evidence to ratings, weighted history rows, and weights chosen on validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.recs.intent import tune_intent
from jobs.recs.item_models import EaseParams, ItemKnnParams, interaction_matrix
from jobs.recs.ratings import EVIDENCE_TYPES, IntentWeights, ratings_from_evidence

DWELL_COLUMNS = ("e_view_dwell_50", "e_view_dwell_100")


def evidence_frame(rows: list[dict]) -> pd.DataFrame:
    """Pair evidence as ``ratings.pair_evidence`` returns it; missing counts are 0."""
    frame = pd.DataFrame(rows)
    for column in [f"e_{kind}" for kind in EVIDENCE_TYPES] + list(DWELL_COLUMNS):
        frame[column] = frame.get(column, 0.0)
        frame[column] = frame[column].fillna(0.0)
    frame["bought"] = frame["e_purchase"] > 0
    return frame


def test_ratings_follow_the_weights_and_a_long_view_outweighs_a_glance_only_with_a_dwell_exponent():
    ts = pd.Timestamp("2026-11-20")
    evidence = evidence_frame(
        [
            {
                "user_id": "u",
                "item_id": "glance",
                "e_view": 1.0,
                "e_view_dwell_50": 0.5,
                "e_view_dwell_100": 0.2,
                "last_ts": ts,
            },
            {
                "user_id": "u",
                "item_id": "long",
                "e_view": 1.0,
                "e_view_dwell_50": 2.0,
                "e_view_dwell_100": 4.0,
                "last_ts": ts,
            },
            {"user_id": "u", "item_id": "bought", "e_view": 1.0, "e_purchase": 1.0, "last_ts": ts},
            {"user_id": "u", "item_id": "nothing", "e_view": 0.0, "last_ts": ts},
        ]
    )
    flat = ratings_from_evidence(evidence).set_index("item_id")["rating"]
    assert "nothing" not in flat.index  # no positive evidence, no rating
    assert flat["glance"] == flat["long"] < flat["bought"]
    dwell = ratings_from_evidence(evidence, IntentWeights(dwell_exponent=1.0)).set_index("item_id")["rating"]
    assert dwell["glance"] < dwell["long"]
    heavier = IntentWeights({**IntentWeights().types, "purchase": 12.0})
    assert ratings_from_evidence(evidence, heavier).set_index("item_id")["rating"]["bought"] > flat["bought"]
    assert IntentWeights.from_dict(heavier.to_dict()) == heavier
    assert IntentWeights.from_dict(None) == IntentWeights()
    with pytest.raises(ValueError, match="dwell exponent"):
        ratings_from_evidence(evidence, IntentWeights(dwell_exponent=0.7))


def test_a_history_row_is_binary_at_power_zero_and_graded_above():
    ratings = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], "rating": [5.0, 1.0]})
    users, items = np.array(["u"], dtype=object), np.array(["a", "b"], dtype=object)
    assert interaction_matrix(ratings, users, items).toarray().tolist() == [[1.0, 1.0]]
    graded = interaction_matrix(ratings, users, items, power=1.0).toarray()[0]
    assert graded.tolist() == pytest.approx([1.0, 0.2])


def planted_dwell_world(informative: bool, seed: int = 7) -> pd.DataFrame:
    """Items come in twins (x_k, y_k) that other shoppers always take together. A learner looks
    long at three x items and glances at three others, and later takes the twins of the three
    they lingered on. With ``informative`` False every view has the same dwell, so nothing tells
    the lingered-on items from the glanced-at ones."""
    rng = np.random.default_rng(seed)
    twins = 30
    start = pd.Timestamp("2026-11-01")
    rows = []

    def view(user: str, item: str, hours: int, long: bool | None) -> None:
        dwell = {True: (2.0, 4.0), False: (0.6, 0.36), None: (1.0, 1.0)}[long if informative else None]
        rows.append(
            {
                "user_id": user,
                "item_id": item,
                "e_view": 1.0,
                "e_view_dwell_50": dwell[0],
                "e_view_dwell_100": dwell[1],
                "last_ts": start + pd.Timedelta(hours=hours),
            }
        )

    for k in range(twins):
        for teacher in range(8):
            view(f"t{k:02d}{teacher}", f"x{k:02d}", 0, None)
            view(f"t{k:02d}{teacher}", f"y{k:02d}", 1, None)
    for learner in range(200):
        user = f"u{learner:03d}"
        chosen = rng.choice(twins, 6, replace=False)
        for position, k in enumerate(chosen):
            view(user, f"x{k:02d}", position, long=position < 3)
        for position, k in enumerate(chosen[:3]):
            view(user, f"y{k:02d}", 48 + position, None)
    return evidence_frame(rows)


def test_validation_chooses_dwell_when_it_carries_the_taste_and_never_scores_below_the_defaults():
    weights, power, record = tune_intent(
        planted_dwell_world(informative=True), EaseParams(lambda_scale=1.0), ItemKnnParams(), 5, 42, 10_000
    )
    assert weights.dwell_exponent > 0
    assert power > 0
    scores = record["validation_ndcg@5"]
    assert scores["chosen"] > scores["defaults"]

    weights, power, record = tune_intent(
        planted_dwell_world(informative=False), EaseParams(lambda_scale=1.0), ItemKnnParams(), 5, 42, 10_000
    )
    scores = record["validation_ndcg@5"]
    assert scores["chosen"] >= scores["defaults"]
    assert weights.dwell_exponent == 0.0  # a constant dwell never helps: the default stays


def test_a_query_matches_the_categories_of_the_items_holding_all_its_words():
    from jobs.profiles.search import match_queries, words

    assert words("Running SHOES, size-42") == {"running", "shoe", "size", "42"}
    items = pd.DataFrame(
        {
            "title": ["Acme running shoes 1", "Bolt running shoes 2", "Acme running socks", "Green tea"],
            "category": ["shoes", "shoes", "sports", "grocery"],
            "brand": ["acme", "bolt", "acme", "leaf"],
        }
    )
    matched = match_queries(["running shoe", "acme running", "tea", "teleport", ""], items)
    shares = {(q, c): s for q, c, s in matched.itertuples(index=False)}
    assert shares == {
        ("running shoe", "shoes"): 1.0,
        ("acme running", "shoes"): 0.5,
        ("acme running", "sports"): 0.5,
        ("tea", "grocery"): 1.0,
    }


def test_searches_count_only_when_they_predict_the_next_categories():
    from jobs.profiles.search import choose_search_weight

    # Each user browsed books but searched for shoes, and later engaged with shoes.
    users = [f"u{n}" for n in range(20)]
    behaviour = pd.DataFrame({"user_id": users, "category": "books", "affinity": 3.0})
    searches = pd.DataFrame({"user_id": users, "category": "shoes", "affinity": 1.0})
    weight, record = choose_search_weight(behaviour, searches, pd.DataFrame({"user_id": users, "category": "shoes"}))
    assert weight > 3.0  # searches must outweigh three units of browsing to rank shoes first
    assert record["validation_ndcg@3"][str(weight)] == pytest.approx(1.0)
    # When they later stay with books, the searches are ignored.
    weight, _ = choose_search_weight(behaviour, searches, pd.DataFrame({"user_id": users, "category": "books"}))
    assert weight == 0.0
