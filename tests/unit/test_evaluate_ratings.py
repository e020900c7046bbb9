"""``evaluation.ratings`` on a MovieLens-shaped file with planted low-rank tastes."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from evaluation import ratings as evaluate_ratings
from jobs.recs.ratings import random_split
from tests.support.ratings import write_ratings


def test_last_line_is_the_documented_json(tmp_path, capsys):
    path = write_ratings(tmp_path / "u.data")
    assert evaluate_ratings.main([str(path), "--k", "5", "--seed", "3"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result) == {"random", "chrono"}
    for split in result.values():
        assert {"svd", "ease", "selected", "surprise_svd", "popularity"} <= set(split)
        assert split["selected"]["model"] in split
        for name, metrics in split.items():
            assert {"precision@5", "recall@5", "ndcg@5", "map@5", "coverage", "seconds"} <= set(metrics) or (
                name == "selected"
            )
            assert ("rmse" in metrics) == (name in ("svd", "surprise_svd"))
            assert 0 <= metrics["ndcg@5"] <= 1


def test_surprise_svd_rmse_is_surprises_own_on_the_same_split(tmp_path):
    from surprise import SVD, Dataset, Reader, accuracy

    ratings, skipped = evaluate_ratings.read_ratings(write_ratings(tmp_path / "r.csv", sep=",", header=True), "COMMA")
    assert skipped == 1  # the header
    train, test = random_split(ratings, 0.25, min_items=2, seed=42)
    config = evaluate_ratings.zoo_config(10, 42, "random", spark=False, als=False)
    ours = evaluate_ratings.evaluate_split(train, test, config)["surprise_svd"]

    reader = Reader(rating_scale=(train["rating"].min(), train["rating"].max()))
    trainset = Dataset.load_from_df(train[["user_id", "item_id", "rating"]], reader).build_full_trainset()
    algo = SVD(random_state=42)
    algo.fit(trainset)
    predictions = algo.test(list(test[["user_id", "item_id", "rating"]].itertuples(index=False, name=None)))
    assert ours["rmse"] == pytest.approx(accuracy.rmse(predictions, verbose=False), abs=1e-6)
    assert ours["mae"] == pytest.approx(accuracy.mae(predictions, verbose=False), abs=1e-6)


def test_the_zoos_choice_beats_plain_svd_and_popularity_on_planted_tastes(tmp_path):
    result = evaluate_ratings.evaluate_file(write_ratings(tmp_path / "u.data", seed=1), None, k=10, seed=42)
    for split in ("random", "chrono"):
        models = result[split]
        assert models["selected"]["ndcg@10"] > models["surprise_svd"]["ndcg@10"]
        assert models["selected"]["ndcg@10"] > models["popularity"]["ndcg@10"]


def _independent_precision_and_ndcg(lists_path, test: pd.DataFrame, k: int) -> tuple[float, float]:
    """P@k and NDCG@k of a ``user item rank`` file, computed here from the definitions alone."""
    lists: dict[str, list[tuple[int, str]]] = {}
    for line in lists_path.read_text().splitlines():
        user, item, rank = line.split("\t")
        lists.setdefault(user, []).append((int(rank), item))
    precision = ndcg = 0.0
    truth = test.groupby("user_id")["item_id"].agg(set)
    for user, relevant in truth.items():
        top = [item for _, item in sorted(lists.get(user, []))][:k]
        gains = [1.0 / math.log2(position + 2) for position, item in enumerate(top) if item in relevant]
        precision += len(gains) / k
        ndcg += sum(gains) / sum(1.0 / math.log2(position + 2) for position in range(min(k, len(relevant))))
    return precision / len(truth), ndcg / len(truth)


def test_recommend_out_writes_every_users_top_k_from_the_training_file_alone(tmp_path, capsys):
    ratings, _ = evaluate_ratings.read_ratings(write_ratings(tmp_path / "all.data", seed=4), "TAB")
    train, test = random_split(ratings, 0.25, min_items=2, seed=11)
    train_path = tmp_path / "train.tsv"
    train[["user_id", "item_id", "rating", "timestamp"]].to_csv(train_path, sep="\t", header=False, index=False)
    out = tmp_path / "lists.tsv"
    assert evaluate_ratings.main([str(train_path), "--recommend-out", str(out), "--k", "10"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    lines = pd.read_csv(out, sep="\t", names=["user_id", "item_id", "rank"], dtype=str)
    assert record["users"] == train["user_id"].nunique() == lines["user_id"].nunique()
    assert (lines.groupby("user_id").size() == 10).all()
    assert sorted(set(lines["rank"].astype(int))) == list(range(1, 11))
    seen = set(zip(train["user_id"].astype(str), train["item_id"].astype(str), strict=True))
    assert not seen & set(zip(lines["user_id"], lines["item_id"], strict=True))
    assert {"tuning_seconds", "fit_seconds", "tuning_over_fit", "model", "selection"} <= set(record)
    # The project's own figures for the same training part agree with an independent computation.
    reread, _ = evaluate_ratings.read_ratings(train_path, "TAB")
    ours = evaluate_ratings.evaluate_split(reread, test, evaluate_ratings.zoo_config(10, 42, "random", False, False))
    precision, ndcg = _independent_precision_and_ndcg(out, test, 10)
    assert ours["selected"]["model"] == record["model"]
    assert ours["selected"]["precision@10"] == pytest.approx(precision, abs=1e-6)
    assert ours["selected"]["ndcg@10"] == pytest.approx(ndcg, abs=1e-6)


def test_malformed_rows_are_counted_not_fatal(tmp_path):
    path = tmp_path / "bad.data"
    path.write_text("1\t10\t4\t100\n1\t11\tfive\t101\n2\t10\t3\n\n2\t11\t2\t103\n")
    ratings, skipped = evaluate_ratings.read_ratings(path, "TAB")
    assert len(ratings) == 2
    assert skipped == 2
