"""The model zoo's Spark paths: item-kNN's Spark self-join and the evaluation harness's Spark options."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from evaluation import ratings as evaluate_ratings
from jobs.recs.item_models import ItemKnnParams, fit_item_knn
from jobs.recs.ratings import random_split
from tests.support.ratings import grouped_interactions, write_ratings


def test_item_knn_with_spark_is_the_in_memory_matrix(spark):
    ratings = grouped_interactions(users=30, items=12, per_user=5, seed=3)
    for cut in (200, 3):  # all of each user's items, then their strongest three only
        params = ItemKnnParams(neighbours=3, shrink=2.0, max_user_items=cut)
        with_spark = fit_item_knn(spark, ratings, replace(params, local_max_items=0)).weights.toarray()
        in_memory = fit_item_knn(None, ratings, params).weights.toarray()
        np.testing.assert_allclose(in_memory, with_spark, rtol=1e-6)


def test_spark_options_add_item_knn_and_als_with_the_same_metrics(tmp_path, spark):
    ratings, _ = evaluate_ratings.read_ratings(write_ratings(tmp_path / "u.data", seed=2), "TAB")
    train, test = random_split(ratings, 0.25, min_items=2, seed=42)
    config = evaluate_ratings.zoo_config(10, 42, "random", spark=True, als=True)
    models = evaluate_ratings.evaluate_split(train, test, config, spark=spark)
    assert {"svd", "ease", "item_knn", "als", "popularity"} <= set(models)
    assert "rmse" not in models["als"]  # preference scores, not ratings
    assert set(models["popularity"]) - {"seconds"} <= set(models["als"])
    assert {"diversity", "novelty"} <= set(models["als"])
    for name in ("als", "item_knn"):
        assert models[name]["ndcg@10"] > models["popularity"]["ndcg@10"]
