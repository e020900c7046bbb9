import math

import numpy as np
import pandas as pd
import pytest

from jobs.recs.evaluate import (
    category_diversity,
    evaluate_factor_model,
    evaluate_popularity,
    intra_list_diversity,
    novelty,
    popularity_ranking,
    ranking_metrics,
    rmse_mae,
)
from jobs.recs.train import FactorModel


def test_rmse_and_mae_by_hand():
    result = rmse_mae([1.0, 3.0], [2.0, 5.0])
    assert result["rmse"] == pytest.approx(math.sqrt((1 + 4) / 2))
    assert result["mae"] == pytest.approx(1.5)


def test_ranking_metrics_by_hand():
    recommended = {"a": ["x", "y", "z"], "b": ["p", "q", "r"]}
    relevant = {"a": {"y"}, "b": {"p", "r", "s"}}
    m = ranking_metrics(recommended, relevant, k=3, catalogue_size=10)
    assert m["precision@3"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert m["recall@3"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    ndcg_a = (1 / math.log2(3)) / 1.0
    ndcg_b = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert m["ndcg@3"] == pytest.approx((ndcg_a + ndcg_b) / 2)
    ap_a = (1 / 2) / 1
    ap_b = (1 / 1 + 2 / 3) / 3
    assert m["map@3"] == pytest.approx((ap_a + ap_b) / 2)
    assert m["coverage"] == pytest.approx(6 / 10)
    assert m["users_evaluated"] == 2


def test_popularity_baseline_excludes_own_items():
    train = pd.DataFrame({"user_id": ["a", "b", "b", "c", "c", "c"], "item_id": ["x", "x", "y", "x", "y", "z"]})
    ranking = popularity_ranking(train, ["a", "c", "new"], k=2)
    assert ranking["a"] == ["y", "z"]
    assert ranking["c"] == []
    assert ranking["new"] == ["x", "y"]


def test_novelty_by_hand():
    # Four training users: x is known to all four, y to one.
    train = pd.DataFrame({"user_id": ["a", "b", "c", "d", "a"], "item_id": ["x", "x", "x", "x", "y"]})
    value = novelty({"u": ["x", "y"], "v": ["y"]}, train)
    assert value == pytest.approx((-math.log2(4 / 4) - math.log2(1 / 4) - math.log2(1 / 4)) / 3)
    # An item nobody touched counts as one user's.
    assert novelty({"u": ["z"]}, train) == pytest.approx(math.log2(4))


def test_intra_list_diversity_by_hand():
    # Users of x: {a, b}; of y: {b, c}; of z: {d}.  cos(x, y) = 1 / (sqrt2 * sqrt2) = 0.5.
    train = pd.DataFrame({"user_id": ["a", "b", "b", "c", "d", "a"], "item_id": ["x", "x", "y", "y", "z", "x"]})
    lists = {"u": ["x", "y", "z"], "v": ["x", "y"], "w": ["x"]}
    first = (0.5 + 1.0 + 1.0) / 3  # pairs (x,y), (x,z), (y,z)
    second = 0.5
    assert intra_list_diversity(lists, train) == pytest.approx((first + second) / 2)
    # Identical co-occurrence means no diversity; an unknown item is dissimilar to all.
    twins = pd.DataFrame({"user_id": ["a", "a"], "item_id": ["x", "y"]})
    assert intra_list_diversity({"u": ["x", "y"]}, twins) == pytest.approx(0.0)
    assert intra_list_diversity({"u": ["x", "unknown"]}, twins) == pytest.approx(1.0)


def test_intra_list_diversity_is_independent_of_the_block_size():
    # Random lists of mixed lengths (some with unknown items) against a reference that forms
    # each list's pairwise similarity matrix directly.
    rng = np.random.default_rng(7)
    train = pd.DataFrame(
        {"user_id": rng.integers(0, 60, 900).astype(str), "item_id": rng.integers(0, 40, 900).astype(str)}
    )
    lists = {f"u{n}": list(rng.choice(45, int(rng.integers(0, 9)), replace=False).astype(str)) for n in range(80)}
    users_of = train.groupby("item_id")["user_id"].agg(set).to_dict()

    def dissimilarity(a, b):
        if a not in users_of or b not in users_of:
            return 1.0
        return 1.0 - len(users_of[a] & users_of[b]) / math.sqrt(len(users_of[a]) * len(users_of[b]))

    expected = np.mean(
        [
            np.mean([dissimilarity(a, b) for n, a in enumerate(top) for b in top[n + 1 :]])
            for top in lists.values()
            if len(top) >= 2
        ]
    )
    for block_cells in (1, 97, 1 << 22):
        assert intra_list_diversity(lists, train, block_cells=block_cells) == pytest.approx(expected)


def test_category_diversity_by_hand():
    category = {"a": "shoes", "b": "shoes", "c": "books"}
    # Pairs of [a, b, c]: (a,b) same, (a,c) and (b,c) differ -> 2/3; [a, b] -> 0.
    assert category_diversity({"u": ["a", "b", "c"], "v": ["a", "b"]}, category) == pytest.approx((2 / 3 + 0) / 2)


def test_model_and_baseline_report_the_same_metric_names():
    train = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b", "c"],
            "item_id": ["x", "y", "x", "z", "y"],
            "rating": [5.0, 4.0, 3.0, 5.0, 2.0],
        }
    )
    test = pd.DataFrame({"user_id": ["a", "c"], "item_id": ["z", "x"], "rating": [4.0, 3.0]})
    model = FactorModel(
        user_ids=np.array(["a", "b", "c"], dtype=object),
        item_ids=np.array(["x", "y", "z"], dtype=object),
        global_mean=0.0,
        user_bias=np.zeros(3),
        item_bias=np.zeros(3),
        user_factors=np.eye(3),
        item_factors=np.eye(3),
        predicts_ratings=False,
    )
    category = {"x": "shoes", "y": "books", "z": "shoes"}
    ours = evaluate_factor_model(model, train, test, k=2, catalogue_size=3, category_of=category)
    baseline = evaluate_popularity(train, test, k=2, catalogue_size=3, category_of=category)
    assert set(baseline) <= set(ours)
    assert "rmse" not in ours  # a preference model reports no rating error
    # Both rank a -> [z] and c -> [z, x] (own items excluded): users of x {a, b}, of z {b}.
    for metrics in (ours, baseline):
        assert metrics["diversity"] == pytest.approx(1 - 1 / math.sqrt(2))  # c's list only
        assert metrics["novelty"] == pytest.approx((2 * math.log2(3) + math.log2(3 / 2)) / 3)
        assert metrics["category_diversity"] == pytest.approx(0.0)  # x and z are both shoes
        assert metrics["coverage"] == pytest.approx(2 / 3)
