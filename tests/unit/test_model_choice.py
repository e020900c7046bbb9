"""Trainer choice, seeded hyper-parameter search, stored factors and the adjusted Rand index."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from jobs.profiles.segments import adjusted_rand_index
from jobs.recs.job import gate, zoo_config
from jobs.recs.train import (
    SvdParams,
    factor_model,
    load_factor_model,
    save_factor_model,
    save_model,
    train_svd,
    tune_svd,
)


def _low_rank_ratings(users=40, items=25, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    taste, traits = rng.normal(size=(users, 2)), rng.normal(size=(items, 2))
    rows = [
        (f"u{u}", f"i{i}", float(np.clip(3 + taste[u] @ traits[i] + rng.normal(scale=0.3), 1, 5)))
        for u in range(users)
        for i in rng.choice(items, size=12, replace=False)
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])


def test_adjusted_rand_index_by_hand():
    # Segments {0,1} {2} {3} vs groups {0,1} {2,3}: pairs agreeing beyond chance.
    # sum C(n_ij, 2) = 1; rows: 1; columns: 2; C(4, 2) = 6 -> expected 1/3, max 3/2.
    assert adjusted_rand_index([0, 0, 1, 2], [0, 0, 1, 1]) == pytest.approx((1 - 1 / 3) / (3 / 2 - 1 / 3))
    assert adjusted_rand_index(["a", "a", "b", "b"], [1, 1, 0, 0]) == pytest.approx(1.0)  # names do not matter
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) < 0  # worse than chance
    with pytest.raises(ValueError, match="differ in length"):
        adjusted_rand_index([0, 1], [0])


def test_grid_search_is_seeded_and_picks_the_better_candidate():
    ratings = _low_rank_ratings()
    base = SvdParams(n_factors=4, n_epochs=5, random_state=3, negative_ratio=0.0)
    grid = {"n_epochs": [1.0, 40.0], "reg_all": [0.05]}
    tuned, summary = tune_svd(ratings, base, grid, folds=3, rating_scale=(1.0, 5.0))
    assert (tuned, summary) == tune_svd(ratings, base, grid, folds=3, rating_scale=(1.0, 5.0))
    # One epoch barely moves off the global mean; forty learn the biases and tastes.
    assert tuned.n_epochs == 40
    assert isinstance(tuned.n_epochs, int)
    assert tuned.reg_all == 0.05
    assert tuned.n_factors == base.n_factors  # not in the grid: kept
    assert summary["best"] == {"n_epochs": 40, "reg_all": 0.05}
    with pytest.raises(ValueError, match="cannot tune"):
        tune_svd(ratings, base, {"momentum": [0.9]})


def test_zoo_is_configured_from_settings(settings):
    ratings = _low_rank_ratings()
    catalogue = sorted(ratings["item_id"].unique())
    config, record = zoo_config(replace(settings, recs_trainer="als", als_rank=8), ratings, catalogue)
    assert config.families == ("als", "ease", "item_knn")
    assert (config.als.rank, config.als.seed) == (8, settings.seed)
    assert config.blend
    assert config.tune
    assert record == {}
    config, record = zoo_config(
        replace(settings, svd_tuning="config", recs_models=("svd",), svd_factors=7), ratings, catalogue
    )
    assert (config.families, config.blend, config.tune, config.svd.n_factors) == (("svd",), False, False, 7)
    grid = replace(settings, svd_tuning="grid", svd_grid={"n_factors": [2.0, 4.0]}, svd_epochs=3)
    config, record = zoo_config(grid, ratings, catalogue)
    assert config.svd.n_factors in (2, 4)
    assert record["grid_search"]["best"] == {"n_factors": config.svd.n_factors}
    with pytest.raises(ValueError, match="PUSH_RECS_TRAINER"):
        zoo_config(replace(settings, recs_trainer="lightfm"), ratings, catalogue)
    with pytest.raises(ValueError, match="PUSH_RECS_MODELS"):
        zoo_config(replace(settings, recs_models=("svd", "lightgcn")), ratings, catalogue)


def test_stored_factors_reload_identically(tmp_path):
    ratings = _low_rank_ratings()
    algo = train_svd(ratings, SvdParams(n_factors=3, n_epochs=3, negative_ratio=0.0), rating_scale=(1.0, 5.0))
    svd = factor_model(algo)
    reloaded_svd = load_factor_model(save_model(algo, tmp_path / "svd.pkl"))
    np.testing.assert_array_equal(reloaded_svd.item_factors, svd.item_factors)
    implicit = replace(svd, user_bias=np.zeros(len(svd.user_ids)), predicts_ratings=False)
    path = save_factor_model(implicit, tmp_path / "als.npz")
    reloaded = load_factor_model(path)
    assert list(reloaded.user_ids) == list(implicit.user_ids)
    assert list(reloaded.item_ids) == list(implicit.item_ids)
    np.testing.assert_array_equal(reloaded.user_factors, implicit.user_factors)
    assert reloaded.predicts_ratings is False
    pairs = ratings.head(5)
    np.testing.assert_allclose(
        reloaded.predict_pairs(pairs["user_id"], pairs["item_id"]),
        implicit.predict_pairs(pairs["user_id"], pairs["item_id"]),
    )
    assert save_factor_model(implicit, tmp_path / "direct.npz").exists()


def test_gate_refuses_a_model_below_popularity_or_the_live_model():
    good, weak = {"ndcg@10": 0.30}, {"ndcg@10": 0.10}
    popularity = {"ndcg@10": 0.20}
    # First model: only the baseline can stop it.
    assert gate(good, popularity, None, 10, 0.05)[0]
    promoted, decision = gate(weak, popularity, None, 10, 0.05)
    assert not promoted
    assert "no model promoted yet, popularity recommendations published instead" in decision
    # Within the tolerance of the baseline passes: 0.19 >= 0.20 * 0.95.
    assert gate({"ndcg@10": 0.19}, popularity, None, 10, 0.05)[0]
    # A live model raises the bar: 0.30 * 0.95 = 0.285.
    assert gate({"ndcg@10": 0.29}, popularity, {"ndcg@10": 0.30}, 10, 0.05)[0]
    promoted, decision = gate({"ndcg@10": 0.28}, popularity, {"ndcg@10": 0.30}, 10, 0.05)
    assert not promoted
    assert "live 0.3000" in decision
    promoted, decision = gate(weak, popularity, {"ndcg@10": 0.05}, 10, 0.05)
    assert not promoted
    assert decision.startswith("kept live model")
    assert "popularity 0.2000" in decision
    # A weaker baseline never rescues a model worse than the live one, and vice versa.
    assert not gate({"ndcg@10": 0.15}, {"ndcg@10": 0.01}, {"ndcg@10": 0.30}, 10, 0.05)[0]
    assert not gate({"ndcg@10": 0.15}, {"ndcg@10": 0.30}, {"ndcg@10": 0.01}, 10, 0.05)[0]
