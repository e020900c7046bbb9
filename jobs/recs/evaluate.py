"""Offline evaluation: rating accuracy and top-k ranking quality, next to a popularity baseline.

All ranking metrics follow the usual definitions (as in Microsoft Recommenders): for each test
user with at least one relevant item, the top-k list excludes the user's training items;
metrics are averaged over those users.

Beyond accuracy, for the same top-k lists: catalogue ``coverage`` (share of the catalogue
shown to anyone), ``diversity`` (intra-list diversity: mean pairwise 1 - cosine similarity of
the items' training co-occurrence vectors, as in Microsoft Recommenders, so it needs no item
features), ``category_diversity`` (share of item pairs from different categories, when
categories are known) and ``novelty`` (mean self-information -log2(share of training users
who interacted with the item): recommending only blockbusters scores low).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

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


def novelty(lists: Mapping[str, Sequence[str]], train: pd.DataFrame) -> float:
    """Mean -log2(p_i) over every recommended item, p_i = share of training users with item i.

    Items nobody interacted with in training count as one user's (the most novel possible).
    """
    users = train["user_id"].nunique()
    if not users:
        return 0.0
    counts = train.groupby("item_id")["user_id"].nunique().to_dict()
    values = [-math.log2(max(counts.get(item, 0), 1) / users) for top in lists.values() for item in top]
    return float(np.mean(values)) if values else 0.0


def intra_list_diversity(lists: Mapping[str, Sequence[str]], train: pd.DataFrame, block_cells: int = 1 << 22) -> float:
    """Mean over lists of the mean pairwise ``1 - cosine(co-occurrence vectors)`` of their items.

    An item's vector marks the training users who interacted with it; items unknown to training
    are dissimilar to everything. Lists shorter than two items are skipped.

    Every item pair of every list is gathered first and each distinct pair's overlap is read
    from one blocked co-occurrence product, so the cost is that of the product (about the sum
    of squared user degrees) rather than one sparse product per list; ``block_cells`` bounds
    the dense block held at once.
    """
    item_codes, items = pd.factorize(train["item_id"], sort=True)
    user_codes, _ = pd.factorize(train["user_id"], sort=True)
    matrix = sparse.csr_matrix(
        (np.ones(len(train)), (item_codes, user_codes)), shape=(len(items), int(user_codes.max(initial=-1)) + 1)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # a user who appears twice for an item still counts once
    norms = np.sqrt(np.asarray(matrix.sum(axis=1)).ravel())
    index = pd.Index(items)
    tops = [list(top) for top in lists.values()]
    per_list = np.full(len(tops), np.nan)
    by_length: dict[int, list[int]] = {}
    for position, top in enumerate(tops):
        if len(top) >= 2:
            by_length.setdefault(len(top), []).append(position)
    groups = []  # (list positions, first-item codes, second-item codes), one row per list
    for length, positions in by_length.items():
        codes = index.get_indexer([item for position in positions for item in tops[position]])
        codes = codes.reshape(len(positions), length)
        first, second = np.triu_indices(length, k=1)
        groups.append((np.asarray(positions), codes[:, first], codes[:, second]))
    if not groups:
        return 0.0
    first = np.concatenate([group[1].ravel() for group in groups])
    second = np.concatenate([group[2].ravel() for group in groups])
    known = (first >= 0) & (second >= 0)
    low, high = np.minimum(first[known], second[known]), np.maximum(first[known], second[known])
    pairs, inverse = np.unique(low * len(items) + high, return_inverse=True)
    overlap = _pair_overlaps(matrix, pairs // len(items), pairs % len(items), block_cells)
    similarity = np.zeros(len(first))
    similarity[known] = overlap[inverse] / (norms[low] * norms[high])
    offset = 0
    for positions, group_first, _ in groups:
        size = group_first.size
        per_list[positions] = np.mean(1.0 - similarity[offset : offset + size].reshape(group_first.shape), axis=1)
        offset += size
    return float(np.mean(per_list[~np.isnan(per_list)]))


def _pair_overlaps(matrix: sparse.csr_matrix, low: np.ndarray, high: np.ndarray, block_cells: int) -> np.ndarray:
    """Users shared by items ``low[n]`` and ``high[n]`` (``low`` sorted), one row block at a time."""
    overlap = np.zeros(len(low))
    transposed = matrix.T.tocsr()
    rows = np.unique(low)
    step = max(1, block_cells // max(matrix.shape[0], 1))
    for start in range(0, len(rows), step):
        block = rows[start : start + step]
        products = (matrix[block] @ transposed).toarray()
        lo, hi = np.searchsorted(low, block[0]), np.searchsorted(low, block[-1], side="right")
        overlap[lo:hi] = products[np.searchsorted(block, low[lo:hi]), high[lo:hi]]
    return overlap


def category_diversity(lists: Mapping[str, Sequence[str]], category_of: Mapping[str, str]) -> float:
    """Mean over lists (two items or more) of the share of item pairs from different categories."""
    values = []
    for top in lists.values():
        categories = [category_of.get(item) for item in top]
        pairs = [(a, b) for n, a in enumerate(categories) for b in categories[n + 1 :]]
        if pairs:
            values.append(sum(a is None or b is None or a != b for a, b in pairs) / len(pairs))
    return float(np.mean(values)) if values else 0.0


def beyond_accuracy(
    lists: Mapping[str, Sequence[str]], train: pd.DataFrame, category_of: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Diversity and novelty of top-k lists (coverage is in :func:`ranking_metrics`)."""
    metrics = {"diversity": intra_list_diversity(lists, train), "novelty": novelty(lists, train)}
    if category_of is not None:
        metrics["category_diversity"] = category_diversity(lists, category_of)
    return metrics


def popularity_ranking(train: pd.DataFrame, users: Sequence[str], k: int) -> dict[str, list[str]]:
    """The baseline: most-interacted items in train, minus each user's own training items."""
    popularity = train.groupby("item_id")["user_id"].nunique().sort_values(ascending=False, kind="stable")
    ranked = list(popularity.index)
    seen = items_by_user(train)
    result = {}
    for user in users:
        own = seen.get(user, set())
        result[user] = [item for item in ranked[: k + len(own)] if item not in own][:k]
    return result


def items_by_user(ratings: pd.DataFrame) -> dict[str, set[str]]:
    """Each user's items: the relevant ones of a test split, the seen ones of a training split."""
    return ratings.groupby("user_id")["item_id"].agg(set).to_dict()


def evaluate_factor_model(
    model: FactorModel,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int,
    catalogue_size: int,
    category_of: Mapping[str, str] | None = None,
) -> dict:
    """RMSE/MAE on the test ratings (models that predict ratings) and top-k metrics of lists that
    exclude training items."""
    metrics = {}
    if model.predicts_ratings:
        metrics = rmse_mae(test["rating"].to_numpy(), model.predict_pairs(test["user_id"], test["item_id"]))
    relevant = items_by_user(test)
    scored = score_top_candidates(model, items_by_user(train), set(), k, only_users=set(relevant))
    lists = {u: [i for i, _ in items] for u, items in scored.items()}
    evaluated = {u: lists.get(u, []) for u, truth in relevant.items() if truth}
    return (
        metrics | ranking_metrics(lists, relevant, k, catalogue_size) | beyond_accuracy(evaluated, train, category_of)
    )


def evaluate_popularity(
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int,
    catalogue_size: int,
    category_of: Mapping[str, str] | None = None,
) -> dict:
    relevant = items_by_user(test)
    lists = popularity_ranking(train, list(relevant), k)
    return ranking_metrics(lists, relevant, k, catalogue_size) | beyond_accuracy(lists, train, category_of)
