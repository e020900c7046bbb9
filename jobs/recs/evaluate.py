"""Offline evaluation: rating accuracy and top-k ranking quality, next to a popularity baseline.

All ranking metrics follow the usual definitions (as in Microsoft Recommenders): for each test
user with at least one relevant item, the top-k list excludes the user's training items;
metrics are averaged over those users.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from jobs.recs.topn import score_top_candidates
from jobs.recs.train import FactorModel


def rmse_mae(truth: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    error = np.asarray(truth, dtype=float) - np.asarray(estimate, dtype=float)
    if error.size == 0:
        return {"rmse": float("nan"), "mae": float("nan")}
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}


def ranking_metrics(
    recommended: Mapping[str, Sequence[str]],
    relevant: Mapping[str, set[str]],
    k: int,
    catalogue_size: int,
) -> dict[str, float]:
    """precision@k, recall@k, NDCG@k, MAP@k over users with relevant items, plus coverage."""
    precisions, recalls, ndcgs, aps = [], [], [], []
    shown: set[str] = set()
    for user, truth in relevant.items():
        if not truth:
            continue
        top = list(recommended.get(user, []))[:k]
        shown.update(top)
        hits = [item in truth for item in top]
        hit_count = sum(hits)
        precisions.append(hit_count / k)
        recalls.append(hit_count / len(truth))
        dcg = sum(1.0 / math.log2(rank + 2) for rank, hit in enumerate(hits) if hit)
        ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(truth), k)))
        ndcgs.append(dcg / ideal)
        running, precision_sum = 0, 0.0
        for rank, hit in enumerate(hits):
            if hit:
                running += 1
                precision_sum += running / (rank + 1)
        aps.append(precision_sum / min(len(truth), k))
    users = len(precisions)

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else 0.0

    return {
        f"precision@{k}": mean(precisions),
        f"recall@{k}": mean(recalls),
        f"ndcg@{k}": mean(ndcgs),
        f"map@{k}": mean(aps),
        "coverage": len(shown) / catalogue_size if catalogue_size else 0.0,
        "users_evaluated": users,
    }


def popularity_ranking(train: pd.DataFrame, users: Sequence[str], k: int) -> dict[str, list[str]]:
    """The baseline: most-interacted items in train, minus each user's own training items."""
    popularity = train.groupby("item_id")["user_id"].nunique().sort_values(ascending=False, kind="stable")
    ranked = list(popularity.index)
    seen = seen_items(train)
    result = {}
    for user in users:
        own = seen.get(user, set())
        result[user] = [item for item in ranked[: k + len(own)] if item not in own][:k]
    return result


def relevant_items(test: pd.DataFrame) -> dict[str, set[str]]:
    return test.groupby("user_id")["item_id"].agg(set).to_dict()


def seen_items(train: pd.DataFrame) -> dict[str, set[str]]:
    return train.groupby("user_id")["item_id"].agg(set).to_dict()


def evaluate_factor_model(
    model: FactorModel, train: pd.DataFrame, test: pd.DataFrame, k: int, catalogue_size: int
) -> dict:
    """RMSE/MAE on the test ratings and ranking metrics of top-k lists that exclude training items."""
    metrics = rmse_mae(test["rating"].to_numpy(), model.predict_pairs(test["user_id"], test["item_id"]))
    relevant = relevant_items(test)
    lists = score_top_candidates(model, seen_items(train), set(), k, only_users=set(relevant))
    return metrics | ranking_metrics(
        {u: [i for i, _ in items] for u, items in lists.items()}, relevant, k, catalogue_size
    )


def evaluate_popularity(train: pd.DataFrame, test: pd.DataFrame, k: int, catalogue_size: int) -> dict:
    relevant = relevant_items(test)
    return ranking_metrics(popularity_ranking(train, list(relevant), k), relevant, k, catalogue_size)
