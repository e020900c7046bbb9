"""``jobs.evaluate_ratings`` on a MovieLens-shaped file with planted low-rank tastes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs import evaluate_ratings
from jobs.recs.ratings import random_split


def write_ratings(path, sep="\t", users=200, items=150, seed=0, header=False):
    """Users rate items they like more often (missing not at random), as in real rating data."""
    rng = np.random.default_rng(seed)
    taste, traits = rng.normal(size=(users, 3)), rng.normal(size=(items, 3))
    lines = ["user\titem\trating\ttimestamp".replace("\t", sep)] if header else []
    for user in range(users):
        affinity = traits @ taste[user]
        chosen = rng.choice(
            items, size=int(rng.integers(15, 40)), replace=False, p=np.exp(affinity) / np.exp(affinity).sum()
        )
        for n, item in enumerate(chosen):
            rating = int(np.clip(np.round(3 + affinity[item] / 1.5 + rng.normal(scale=0.5)), 1, 5))
            lines.append(sep.join([str(user + 1), str(item + 1), str(rating), str(881250949 + 1000 * n + user)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_last_line_is_the_documented_json(tmp_path, capsys):
    path = write_ratings(tmp_path / "u.data")
    assert evaluate_ratings.main([str(path), "--k", "5", "--seed", "3"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"random", "chrono"}
    for split in result.values():
        assert set(split) == {"svd", "svd_ranking", "popularity"}
        for name, metrics in split.items():
            assert {"precision@5", "recall@5", "ndcg@5", "map@5", "coverage", "seconds"} <= set(metrics)
            assert ("rmse" in metrics) == (name != "popularity")
            assert 0 <= metrics["ndcg@5"] <= 1


def test_svd_rmse_is_surprises_own_on_the_same_split(tmp_path):
    from surprise import SVD, Dataset, Reader, accuracy

    ratings, skipped = evaluate_ratings.read_ratings(write_ratings(tmp_path / "r.csv", sep=",", header=True), "COMMA")
    assert skipped == 1  # the header
    train, test = random_split(ratings, 0.25, min_items=2, seed=42)
    ours = evaluate_ratings.evaluate_split(train, test, k=10, seed=42)["svd"]

    reader = Reader(rating_scale=(train["rating"].min(), train["rating"].max()))
    trainset = Dataset.load_from_df(train[["user_id", "item_id", "rating"]], reader).build_full_trainset()
    algo = SVD(random_state=42)
    algo.fit(trainset)
    predictions = algo.test(list(test[["user_id", "item_id", "rating"]].itertuples(index=False, name=None)))
    assert ours["rmse"] == pytest.approx(accuracy.rmse(predictions, verbose=False), abs=1e-6)
    assert ours["mae"] == pytest.approx(accuracy.mae(predictions, verbose=False), abs=1e-6)


def test_ranking_variant_beats_plain_svd_and_popularity_on_planted_tastes(tmp_path):
    result = evaluate_ratings.evaluate_file(write_ratings(tmp_path / "u.data", seed=1), None, k=10, seed=42)
    for split in ("random", "chrono"):
        models = result[split]
        assert models["svd_ranking"]["ndcg@10"] > models["svd"]["ndcg@10"]
        assert models["svd_ranking"]["ndcg@10"] > models["popularity"]["ndcg@10"]


def test_malformed_rows_are_counted_not_fatal(tmp_path):
    path = tmp_path / "bad.data"
    path.write_text("1\t10\t4\t100\n1\t11\tfive\t101\n2\t10\t3\n\n2\t11\t2\t103\n")
    ratings, skipped = evaluate_ratings.read_ratings(path, "TAB")
    assert len(ratings) == 2
    assert skipped == 2


def test_als_option_adds_an_implicit_model_with_the_same_metrics(tmp_path, spark):
    ratings, _ = evaluate_ratings.read_ratings(write_ratings(tmp_path / "u.data", seed=2), "TAB")
    train, test = random_split(ratings, 0.25, min_items=2, seed=42)
    models = evaluate_ratings.evaluate_split(train, test, k=10, seed=42, spark=spark)
    assert set(models) == {"svd", "svd_ranking", "als", "popularity"}
    assert "rmse" not in models["als"]  # preference scores, not ratings
    assert set(models["popularity"]) - {"seconds"} <= set(models["als"])
    assert {"diversity", "novelty"} <= set(models["als"])
    assert models["als"]["ndcg@10"] > models["popularity"]["ndcg@10"]
