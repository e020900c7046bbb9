"""Scores of any model for a block of users over one item universe, and top-k from them.

Every model of the zoo answers the same question, "how much does each of these users want
each item": factor models (SVD, ALS) from their user and item vectors, item-to-item models
(EASE, item-kNN) from the users' interaction rows, and a blend from its parts' per-user
standardised scores. ``top_items`` turns any of them into ranked lists that exclude a user's
seen and the unavailable items, one bounded block of users at a time.

A score of ``MASKED`` means "cannot rank": an item the model does not know, or every item for
a user it does not know; such users get an empty list (the publish step's fallbacks fill it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import sparse

from jobs.recs.item_models import ItemModel, interaction_matrix
from jobs.recs.topn import EXCLUDED_BELOW, MASKED, excluded_columns
from jobs.recs.train import FactorModel


class Scorer(Protocol):
    item_ids: np.ndarray

    def scores(self, users: Sequence[str]) -> np.ndarray:
        """float32 (len(users), len(item_ids)); ``MASKED`` where the model cannot rank."""


class FactorScorer:
    """``b_u + b_i + p_u . q_i`` (Surprise's estimate less the global mean, which orders nothing)."""

    def __init__(self, model: FactorModel, item_ids: np.ndarray):
        self.item_ids = item_ids
        self._users = pd.Index(model.user_ids)
        columns = pd.Index(model.item_ids).get_indexer(item_ids)
        self._known_items = columns >= 0
        self._item_factors = np.zeros((len(item_ids), model.item_factors.shape[1]), dtype=np.float32)
        self._item_factors[self._known_items] = model.item_factors[columns[self._known_items]]
        self._item_bias = np.zeros(len(item_ids), dtype=np.float32)
        self._item_bias[self._known_items] = model.item_bias[columns[self._known_items]]
        self._user_factors = model.user_factors.astype(np.float32)
        self._user_bias = model.user_bias.astype(np.float32)

    def scores(self, users: Sequence[str]) -> np.ndarray:
        rows = self._users.get_indexer(list(users))
        out = np.full((len(rows), len(self.item_ids)), MASKED, dtype=np.float32)
        known = rows >= 0
        if known.any():
            block = self._user_factors[rows[known]] @ self._item_factors.T
            block += self._item_bias[None, :] + self._user_bias[rows[known], None]
            block[:, ~self._known_items] = MASKED
            out[known] = block
        return out


class ItemScorer:
    """A user's interaction row (from ``history``) times the model's item x item weights."""

    def __init__(self, model: ItemModel, history: pd.DataFrame, item_ids: np.ndarray):
        self.item_ids = item_ids
        self._columns = pd.Index(item_ids).get_indexer(model.item_ids)
        if (self._columns < 0).any():
            raise ValueError("the item universe must hold every item of the model")
        users = np.array(sorted(history.loc[history["rating"] > 0, "user_id"].unique()), dtype=object)
        self._users = pd.Index(users)
        power = float(model.params.get("history_power", 0.0))
        self._rows = interaction_matrix(history, users, model.item_ids, power)
        self._weights = model.weights

    def scores(self, users: Sequence[str]) -> np.ndarray:
        rows = self._users.get_indexer(list(users))
        out = np.full((len(rows), len(self.item_ids)), MASKED, dtype=np.float32)
        known = rows >= 0
        if known.any():
            block = self._rows[rows[known]] @ self._weights
            block = block.toarray() if sparse.issparse(block) else np.asarray(block)
            placed = np.full((int(known.sum()), len(self.item_ids)), MASKED, dtype=np.float32)
            placed[:, self._columns] = block
            out[known] = placed
        return out


class BlendScorer:
    """Weighted sum of the parts' scores, each standardised per user over the items it can rank.

    Standardising puts SVD's rating-scale estimates and an item model's summed similarities on
    one scale. An item a part cannot rank counts as that part's lowest score for the user; a
    user a part does not know gets nothing from it; a user no part knows stays masked.
    """

    def __init__(self, parts: Sequence[Scorer], weights: Sequence[float]):
        self.item_ids = parts[0].item_ids
        self._parts = list(parts)
        self._weights = [float(w) for w in weights]

    def scores(self, users: Sequence[str]) -> np.ndarray:
        total = np.zeros((len(users), len(self.item_ids)), dtype=np.float32)
        known_user = np.zeros(len(users), dtype=bool)
        for part, weight in zip(self._parts, self._weights, strict=True):
            raw = part.scores(users)
            valid = raw > EXCLUDED_BELOW
            counts = valid.sum(axis=1)
            has = counts > 0
            known_user |= has
            values = np.where(valid, raw, 0.0).astype(np.float64)
            mean = values.sum(axis=1) / np.maximum(counts, 1)
            spread = np.sqrt(np.where(valid, (values - mean[:, None]) ** 2, 0.0).sum(axis=1) / np.maximum(counts, 1))
            z = (values - mean[:, None]) / np.where(spread > 0, spread, 1.0)[:, None]
            lowest = np.where(valid, z, np.inf).min(axis=1, initial=np.inf)
            z = np.where(valid, z, np.where(np.isfinite(lowest), lowest, 0.0)[:, None])
            total += (weight * np.where(has[:, None], z, 0.0)).astype(np.float32)
        total[~known_user] = MASKED
        return total


def top_columns(scores: np.ndarray, take: int) -> np.ndarray:
    """Columns of the ``take`` best scores of each row, in no particular order."""
    if take >= scores.shape[1]:
        return np.broadcast_to(np.arange(scores.shape[1]), scores.shape).copy()
    return np.argpartition(scores, scores.shape[1] - take, axis=1)[:, -take:]


def top_items(
    scorer: Scorer,
    users: Sequence[str],
    excluded: Mapping[str, Iterable[str]],
    unavailable: set[str],
    k: int,
    block_size: int = 256,
) -> dict[str, list[tuple[str, float]]]:
    """The ``k`` best (item, score) pairs of each user, in score order (ties by item order).

    Excluded and unavailable items never appear; users the scorer cannot rank get ``[]``.
    """
    item_ids = scorer.item_ids
    users = list(users)
    n_items = len(item_ids)
    take = min(k, n_items)
    if take <= 0:
        return {user: [] for user in users}
    user_ids = np.array(users, dtype=object)
    user_ptr, excluded_cols = excluded_columns(user_ids, item_ids, excluded)
    blocked = pd.Index(item_ids).get_indexer(list(unavailable))
    blocked = blocked[blocked >= 0]
    result: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(users), block_size):
        rows = np.arange(start, min(start + block_size, len(users)))
        scores = scorer.scores(user_ids[rows])
        scores[:, blocked] = MASKED
        counts = user_ptr[rows + 1] - user_ptr[rows]
        if counts.any():
            spans = np.repeat(user_ptr[rows] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            scores[np.repeat(np.arange(len(rows)), counts), excluded_cols[spans]] = MASKED
        columns = top_columns(scores, take)
        values = np.take_along_axis(scores, columns, axis=1)
        order = np.lexsort((columns, -values), axis=1)
        columns = np.take_along_axis(columns, order, axis=1)
        values = np.take_along_axis(values, order, axis=1)
        names = item_ids[columns]
        for position, row in enumerate(rows):
            keep = values[position] > EXCLUDED_BELOW
            result[users[row]] = list(
                zip(names[position][keep].tolist(), values[position][keep].astype(float).tolist(), strict=True)
            )
    return result
