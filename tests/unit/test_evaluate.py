import math

import pandas as pd
import pytest

from jobs.recs.evaluate import popularity_ranking, ranking_metrics, rmse_mae


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
