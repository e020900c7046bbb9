"""What the collaborative models cannot see: new items, new users and today's events.

- **New items** (``AttributeColumns``): an item-to-item model (EASE) scores item ``j`` for a
  user as their interaction row times column ``B[:, j]``. A new item has no column, so one is
  predicted from its attributes: ridge regression ``B[:, j] ~ W x_j`` fitted on the warm items,
  ``W = B X (X'X + lambda I)^-1``. A warm item's column is shrunk toward its predicted one by
  ``n / (n + shrink)`` (``n`` = its interactions), so the weight given to attributes fades as the
  item gathers data. The user's score is standardised per user and mixed with an attribute
  popularity (ridge of ``log(1 + n)`` on the attributes) by ``popularity_weight``. With no
  item-to-item model (a catalogue above EASE's size) ``B`` is the identity: a content profile.
- **New users** (``DemographicPrior``): the warm users most similar in their attributes (cosine
  on one-hot features), their interaction rows summed by similarity, mixed with global
  popularity by ``weight`` (0 is popularity alone).
- **Fold-in** (``fold_in_factors``): a factor model's user vector and bias are re-solved from the
  user's latest events with the item factors fixed (the regularised least squares that SGD
  approximates, with as many sampled negatives as training used). Item-to-item models need no
  step: their scores read the user's current row.

Every weight here is chosen on a validation split of the training part (``tune_new_items``,
``tune_new_users``): a share of the warm items (users) is treated as new, so the choice never sees
the data a caller evaluates on.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import sparse

from jobs.recs.attributes import AttributeTable
from jobs.recs.evaluate import items_by_user, ranking_metrics
from jobs.recs.item_models import EaseParams, ItemModel, fit_ease, interaction_matrix
from jobs.recs.ratings import NEGATIVE_RATING
from jobs.recs.scoring import top_items
from jobs.recs.topn import MASKED
from jobs.recs.train import FactorModel

# Grids tried on validation (small and fixed: each point costs one ridge solve or one scoring pass).
COLUMN_LAMBDAS = (0.03, 0.3, 3.0, 30.0)
POPULARITY_WEIGHTS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
NEIGHBOURS = (10, 30, 100, 300)
PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
HELD_OUT_SHARE = 0.2
# Features kept for the regression: those of at least two warm items, the most frequent first.
MAX_FEATURES = 4000


@dataclass(frozen=True)
class ItemColdParams:
    lambda_scale: float = 0.3
    popularity_weight: float = 0.4
    # Interactions at which a warm item's own column and its predicted one weigh the same.
    shrink: float = 10.0


@dataclass
class AttributeColumns:
    """Predicted item-to-item columns and popularity of any item from its attribute row."""

    history_ids: np.ndarray  # the items a user's row is over (the base model's items)
    projection: np.ndarray  # history items x features: column of item j = projection @ x_j
    popularity: np.ndarray  # features: predicted log(1 + interactions) = x_j @ popularity
    features: np.ndarray  # the feature columns of the attribute table used
    params: ItemColdParams


def _dense(weights: np.ndarray | sparse.csr_matrix) -> np.ndarray:
    """An item model's weights as a dense array (EASE's already are; item-kNN's are sparse)."""
    return weights.toarray() if sparse.issparse(weights) else np.asarray(weights)


def _standardise(values: np.ndarray, axis: int) -> np.ndarray:
    mean = values.mean(axis=axis, keepdims=True)
    spread = values.std(axis=axis, keepdims=True)
    return (values - mean) / np.where(spread > 0, spread, 1.0)


def _ridge(design: sparse.csr_matrix, targets: np.ndarray, lambda_scale: float) -> np.ndarray:
    """``(X'X + lambda I)^-1 X' Y`` with lambda relative to the mean feature frequency."""
    gram = (design.T @ design).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lambda_scale * max(float(np.diag(gram).mean()), 1e-9)
    return np.linalg.solve(gram, np.asarray(design.T @ targets, dtype=np.float64))


def fit_attribute_columns(
    base: ItemModel | None,
    history_ids: np.ndarray,
    counts: pd.Series,
    attributes: AttributeTable,
    params: ItemColdParams,
) -> AttributeColumns:
    """Regress the base model's columns (identity without one) and the items' popularity on attributes."""
    design = attributes.rows(history_ids)
    frequency = np.asarray(design.sum(axis=0)).ravel()
    keep = np.flatnonzero(frequency >= 2)
    keep = keep[np.argsort(-frequency[keep], kind="stable")][:MAX_FEATURES]
    keep.sort()
    design = design[:, keep]
    columns = _dense(base.weights).astype(np.float64) if base is not None else np.eye(len(history_ids))
    # B ~ W X'  =>  W' = (X'X + lambda I)^-1 X' B'
    projection = _ridge(design, columns.T, params.lambda_scale).T.astype(np.float32)
    log_counts = np.log1p(counts.reindex(history_ids).fillna(0).to_numpy(dtype=np.float64))
    popularity = _ridge(design, log_counts[:, None], params.lambda_scale)[:, 0]
    return AttributeColumns(history_ids, projection, popularity, keep, params)


class HybridItemScorer:
    """Scores over any items, warm or new: shrunk columns, standardised, plus attribute popularity."""

    def __init__(
        self,
        cold: AttributeColumns,
        base: ItemModel | None,
        attributes: AttributeTable,
        counts: pd.Series,
        history: pd.DataFrame,
        item_ids: np.ndarray,
    ):
        self.item_ids = item_ids
        features = attributes.rows(item_ids)[:, cold.features]
        predicted = (features @ cold.projection.T).T  # history items x universe
        predicted = np.asarray(predicted, dtype=np.float32)
        n = counts.reindex(item_ids).fillna(0).to_numpy(dtype=np.float64)
        trust = (
            (n / (n + cold.params.shrink)).astype(np.float32) if cold.params.shrink > 0 else (n > 0).astype(np.float32)
        )
        own = np.zeros_like(predicted)
        if base is not None:
            weights = _dense(base.weights)
            in_base = pd.Index(base.item_ids).get_indexer(item_ids)
            present = in_base >= 0
            own[:, present] = weights[:, in_base[present]]
        else:
            in_history = pd.Index(cold.history_ids).get_indexer(item_ids)
            present = in_history >= 0
            own[in_history[present], np.flatnonzero(present)] = 1.0
        trust = np.where(present, trust, 0.0).astype(np.float32)
        self._columns = own * trust[None, :] + predicted * (1 - trust)[None, :]
        attribute_popularity = np.asarray(features @ cold.popularity).ravel()
        popularity = trust * np.log1p(n) + (1 - trust) * attribute_popularity
        self.popularity = _standardise(popularity.astype(np.float64), axis=0).astype(np.float32)
        self._weight = cold.params.popularity_weight
        users = np.array(sorted(history.loc[history["rating"] > 0, "user_id"].unique()), dtype=object)
        self._users = pd.Index(users)
        self._rows = interaction_matrix(history, users, cold.history_ids)

    def scores(self, users: Sequence[str]) -> np.ndarray:
        rows = self._users.get_indexer(list(users))
        out = np.full((len(rows), len(self.item_ids)), MASKED, dtype=np.float32)
        known = rows >= 0
        if known.any():
            raw = np.asarray(self._rows[rows[known]] @ self._columns, dtype=np.float64)
            mixed = (1 - self._weight) * _standardise(raw, axis=1) + self._weight * self.popularity[None, :]
            out[known] = mixed.astype(np.float32)
        return out


def _held_out(ids: Sequence[str], seed: int) -> set[str]:
    ids = np.array(sorted(set(ids)), dtype=object)
    take = max(1, round(len(ids) * HELD_OUT_SHARE))
    return set(np.random.default_rng(seed).choice(ids, size=min(take, len(ids)), replace=False))


def tune_new_items(
    train: pd.DataFrame,
    attributes: AttributeTable,
    ease: EaseParams | None,
    k: int,
    seed: int,
    max_users: int = 20_000,
) -> tuple[ItemColdParams, dict]:
    """Choose the column ridge and the popularity weight: 20 % of warm items play the new ones.

    Their interactions leave the fit part; each user who had one (at most ``max_users``, a
    seeded sample) is scored over those items only (as a campaign on new arrivals ranks them)
    and NDCG@k picks the grid point.
    """
    started = time.monotonic()
    positives = train[train["rating"] > 0]
    new = _held_out(positives["item_id"], seed)
    fit_part = positives[~positives["item_id"].isin(new)]
    check = positives[positives["item_id"].isin(new) & positives["user_id"].isin(set(fit_part["user_id"]))]
    if fit_part.empty or check.empty:
        return ItemColdParams(), {"validation": None}
    base = fit_ease(fit_part, ease) if ease is not None else None
    history_ids = base.item_ids if base is not None else np.array(sorted(fit_part["item_id"].unique()), dtype=object)
    counts = fit_part["item_id"].value_counts()
    universe = np.array(sorted(new), dtype=object)
    relevant = items_by_user(check)
    users = sorted(relevant)
    if len(users) > max_users:
        users = sorted(np.random.default_rng(seed).choice(np.array(users, dtype=object), max_users, replace=False))
    trials = []
    for lambda_scale in COLUMN_LAMBDAS:
        # One fit and one scoring pass per ridge strength; the popularity weights only re-mix them.
        cold = fit_attribute_columns(base, history_ids, counts, attributes, ItemColdParams(lambda_scale, 0.0))
        scorer = HybridItemScorer(cold, base, attributes, counts, fit_part, universe)
        named: dict[float, dict[str, list[str]]] = {weight: {} for weight in POPULARITY_WEIGHTS}
        for start in range(0, len(users), 2048):
            block = users[start : start + 2048]
            columns = scorer.scores(block).astype(np.float64)
            for weight in POPULARITY_WEIGHTS:
                mixed = (1 - weight) * columns + weight * scorer.popularity[None, :]
                named[weight] |= _top_named(mixed, universe, block, k)
        for weight in POPULARITY_WEIGHTS:
            ndcg = ranking_metrics(named[weight], relevant, k, len(universe))[f"ndcg@{k}"]
            trials.append({"lambda_scale": lambda_scale, "popularity_weight": weight, "ndcg": round(ndcg, 6)})
    best = max(trials, key=lambda t: (t["ndcg"], -t["popularity_weight"]))
    params = ItemColdParams(lambda_scale=best["lambda_scale"], popularity_weight=best["popularity_weight"])
    record = {
        "validation": {"new_items": len(new), "users": len(users), "ndcg": best["ndcg"]},
        "chosen": {"lambda_scale": params.lambda_scale, "popularity_weight": params.popularity_weight},
        "trials": trials,
        "seconds": round(time.monotonic() - started, 2),
    }
    return params, record


def save_item_cold(cold: AttributeColumns, base: ItemModel | None, path) -> str:
    """Store the new-item model (and the EASE weights its warm columns come from) in one ``.npz``."""
    arrays = {
        "history_ids": cold.history_ids.astype(str),
        "projection": cold.projection,
        "popularity": cold.popularity,
        "features": cold.features,
        "params": np.array([cold.params.lambda_scale, cold.params.popularity_weight, cold.params.shrink]),
    }
    if base is not None:
        arrays["base_weights"] = _dense(base.weights).astype(np.float32)
    np.savez(path, **arrays)
    return str(path)


def load_item_cold(path) -> tuple[AttributeColumns, ItemModel | None]:
    with np.load(path, allow_pickle=False) as data:
        history_ids = data["history_ids"].astype(object)
        lambda_scale, weight, shrink = (float(v) for v in data["params"])
        cold = AttributeColumns(
            history_ids,
            data["projection"],
            data["popularity"],
            data["features"],
            ItemColdParams(lambda_scale, weight, shrink),
        )
        base = ItemModel("ease", history_ids, data["base_weights"]) if "base_weights" in data else None
    return cold, base


def new_item_picks(
    scorer: HybridItemScorer,
    users: Sequence[str],
    new_items: set[str],
    excluded: Mapping[str, Iterable[str]],
    n: int,
    slots: int,
) -> dict[str, list[tuple[str, int, float]]]:
    """Per user, the new items that make their hybrid top ``n`` (at most ``slots``): (item, rank, score).

    The hybrid ranks warm and new items on one scale, so a new item is shown only to users for
    whom it beats all but ``n - 1`` of the items they could be shown; ``rank`` is its 0-based
    place in that list.
    """
    if slots <= 0 or not new_items:
        return {}
    ranked = top_items(scorer, users, excluded, set(), n)
    picks = {}
    for user, top in ranked.items():
        chosen = [(item, rank, score) for rank, (item, score) in enumerate(top) if item in new_items][:slots]
        if chosen:
            picks[user] = chosen
    return picks


@dataclass
class DemographicPrior:
    """Similar warm users' items, mixed with popularity, for a user known only by attributes."""

    user_ids: np.ndarray
    user_features: sparse.csr_matrix  # warm users x features, rows of unit length
    rows: sparse.csr_matrix  # warm users x item_ids
    item_ids: np.ndarray
    popularity: np.ndarray  # item_ids, sums to 1
    neighbours: int = 100
    weight: float = 0.5

    def scores(self, features: sparse.csr_matrix, block_size: int = 512) -> np.ndarray:
        """float64 (users, item_ids): higher is better; rows sum to 1. Blocks of users bound memory."""
        features = _unit_rows(features).tocsr()
        out = np.repeat(self.popularity[None, :], features.shape[0], axis=0) * (1 - self.weight)
        if self.weight <= 0 or not len(self.user_ids):
            return out
        for start in range(0, features.shape[0], block_size):
            block = slice(start, min(start + block_size, features.shape[0]))
            similarity = np.asarray((features[block] @ self.user_features.T).toarray(), dtype=np.float64)
            take = min(self.neighbours, similarity.shape[1])
            if take < similarity.shape[1]:
                cut = np.partition(similarity, similarity.shape[1] - take, axis=1)[:, -take][:, None]
                similarity = np.where(similarity >= cut, similarity, 0.0)
            mass = (sparse.csr_matrix(similarity) @ self.rows).toarray()
            total = mass.sum(axis=1, keepdims=True)
            mass = np.where(total > 0, mass / np.where(total > 0, total, 1.0), self.popularity[None, :])
            out[block] += self.weight * mass
        return out


def _unit_rows(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix


def fit_demographic_prior(
    train: pd.DataFrame, attributes: AttributeTable, item_ids: np.ndarray, neighbours: int, weight: float
) -> DemographicPrior:
    positives = train[train["rating"] > 0]
    users = np.array(sorted(set(positives["user_id"]) & set(attributes.ids)), dtype=object)
    counts = positives["item_id"].value_counts().reindex(item_ids).fillna(0).to_numpy(dtype=np.float64)
    popularity = (counts + 1e-9) / (counts + 1e-9).sum()
    return DemographicPrior(
        users,
        _unit_rows(attributes.rows(users)).tocsr(),
        interaction_matrix(positives, users, item_ids).astype(np.float64),
        item_ids,
        popularity,
        neighbours,
        weight,
    )


def tune_new_users(train: pd.DataFrame, attributes: AttributeTable, k: int, seed: int) -> tuple[dict, dict]:
    """Neighbours and prior weight, chosen with 20 % of the warm users (with attributes) as new."""
    started = time.monotonic()
    positives = train[train["rating"] > 0]
    known = sorted(set(positives["user_id"]) & set(attributes.ids))
    if len(known) < 5:
        return {"neighbours": NEIGHBOURS[1], "weight": 0.0}, {"validation": None}
    new = _held_out(known, seed + 7)
    fit_part = positives[~positives["user_id"].isin(new)]
    item_ids = np.array(sorted(fit_part["item_id"].unique()), dtype=object)
    relevant = items_by_user(positives[positives["user_id"].isin(new)])
    users = sorted(relevant)
    features = attributes.rows(users)
    trials = []
    for neighbours in NEIGHBOURS:
        prior = fit_demographic_prior(fit_part, attributes, item_ids, neighbours, 1.0)
        neighbour_scores = prior.scores(features)
        for weight in PRIOR_WEIGHTS:
            scores = (1 - weight) * prior.popularity[None, :] + weight * neighbour_scores
            named = _top_named(scores, item_ids, users, k)
            ndcg = ranking_metrics(named, relevant, k, len(item_ids))[f"ndcg@{k}"]
            trials.append({"neighbours": neighbours, "weight": weight, "ndcg": round(ndcg, 6)})
    best = max(trials, key=lambda t: (t["ndcg"], -t["weight"]))
    chosen = {"neighbours": best["neighbours"], "weight": best["weight"]}
    record = {
        "validation": {"new_users": len(users), "ndcg": best["ndcg"]},
        "popularity_ndcg": max(t["ndcg"] for t in trials if t["weight"] == 0.0),
        "chosen": chosen,
        "seconds": round(time.monotonic() - started, 2),
    }
    return chosen, record


def _top_named(scores: np.ndarray, item_ids: np.ndarray, users: Sequence[str], k: int) -> dict[str, list[str]]:
    take = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :take]
    return {user: item_ids[order[n]].tolist() for n, user in enumerate(users)}


def fold_in_factors(
    model: FactorModel, history: pd.DataFrame, users: Sequence[str], negative_ratio: float, reg: float, seed: int
) -> FactorModel:
    """``model`` with the vectors and biases of ``users`` re-solved from ``history``, items fixed.

    Per user: minimise ``sum (r - mu - b_i - b_u - p_u.q_i)^2 + reg * n * (b_u^2 + |p_u|^2)`` over
    their positives and ``negative_ratio`` uniformly drawn unseen items per positive (rated
    ``NEGATIVE_RATING``; ``n`` observations), the stationary point of the SGD training. Users new
    to the model are appended. Cost per user: one (factors + 1)^2 solve.
    """
    items = pd.Index(model.item_ids)
    mine = history[history["user_id"].isin(set(users)) & (history["rating"] > 0)]
    mine = mine.assign(column=items.get_indexer(mine["item_id"]))
    mine = mine[mine["column"] >= 0]
    if mine.empty:
        return model
    rng = np.random.default_rng(seed)
    n_items, factors = len(items), model.item_factors.shape[1]
    index = {user: n for n, user in enumerate(model.user_ids)}
    user_ids = list(model.user_ids)
    user_bias = list(model.user_bias)
    user_factors = list(model.user_factors)
    for user, group in mine.groupby("user_id", sort=True):
        positives = group["column"].to_numpy()
        wanted = min(round(negative_ratio * len(positives)), n_items - len(set(positives)))
        draws = rng.integers(n_items, size=3 * wanted + 16) if wanted > 0 else np.array([], dtype=np.int64)
        draws = pd.unique(draws[~np.isin(draws, positives)])[:wanted]
        columns = np.concatenate([positives, draws])
        ratings = np.concatenate([group["rating"].to_numpy(dtype=np.float64), np.full(len(draws), NEGATIVE_RATING)])
        design = np.hstack([np.ones((len(columns), 1)), model.item_factors[columns].astype(np.float64)])
        target = ratings - model.global_mean - model.item_bias[columns]
        gram = design.T @ design + reg * len(columns) * np.eye(factors + 1)
        solution = np.linalg.solve(gram, design.T @ target)
        if user not in index:
            index[user] = len(user_ids)
            user_ids.append(user)
            user_bias.append(0.0)
            user_factors.append(np.zeros(factors))
        user_bias[index[user]], user_factors[index[user]] = solution[0], solution[1:]
    return replace(
        model,
        user_ids=np.array(user_ids, dtype=object),
        user_bias=np.asarray(user_bias, dtype=model.user_bias.dtype),
        user_factors=np.vstack(user_factors).astype(model.user_factors.dtype),
    )
