"""Surprise SVD training, always seeded, and its factors as dense arrays for fast scoring."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from surprise import SVD, Dataset, Reader, dump

from jobs.recs.ratings import NEGATIVE_RATING, RATING_MAX


@dataclass(frozen=True)
class SvdParams:
    n_factors: int = 32
    n_epochs: int = 30
    lr_all: float = 0.01
    reg_all: float = 0.05
    random_state: int = 42
    # Sampled unseen items per positive (0 = plain rating-trained SVD).
    negative_ratio: float = 1.0


@dataclass
class FactorModel:
    """Dense view of a trained SVD: ids in the order of the factor rows."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    global_mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    rating_scale: tuple[float, float] = (NEGATIVE_RATING, RATING_MAX)

    def user_index(self) -> dict[str, int]:
        return {uid: n for n, uid in enumerate(self.user_ids)}

    def item_index(self) -> dict[str, int]:
        return {iid: n for n, iid in enumerate(self.item_ids)}

    def predict_pairs(self, users: pd.Series, items: pd.Series) -> np.ndarray:
        """Surprise's estimate for each pair (unknown user/item contribute nothing), clipped."""
        u_index, i_index = self.user_index(), self.item_index()
        u = users.map(u_index).to_numpy(dtype=float)
        i = items.map(i_index).to_numpy(dtype=float)
        known_u, known_i = ~np.isnan(u), ~np.isnan(i)
        est = np.full(len(users), self.global_mean)
        est[known_u] += self.user_bias[u[known_u].astype(int)]
        est[known_i] += self.item_bias[i[known_i].astype(int)]
        both = known_u & known_i
        ub, ib = u[both].astype(int), i[both].astype(int)
        est[both] += np.einsum("ij,ij->i", self.user_factors[ub], self.item_factors[ib])
        return np.clip(est, *self.rating_scale)


def train_svd(
    ratings: pd.DataFrame, params: SvdParams, rating_scale: tuple[float, float] = (NEGATIVE_RATING, RATING_MAX)
) -> SVD:
    """Fit SVD on (user_id, item_id, rating); ratings may include sampled negatives.

    ``rating_scale`` is Surprise's clipping range for estimates (as in ``Reader``).
    """
    reader = Reader(rating_scale=rating_scale)
    data = Dataset.load_from_df(ratings[["user_id", "item_id", "rating"]], reader)
    algo = SVD(
        n_factors=params.n_factors,
        n_epochs=params.n_epochs,
        lr_all=params.lr_all,
        reg_all=params.reg_all,
        random_state=params.random_state,
    )
    algo.fit(data.build_full_trainset())
    return algo


def factor_model(algo: SVD) -> FactorModel:
    trainset = algo.trainset
    return FactorModel(
        user_ids=np.array([trainset.to_raw_uid(n) for n in range(trainset.n_users)], dtype=object),
        item_ids=np.array([trainset.to_raw_iid(n) for n in range(trainset.n_items)], dtype=object),
        global_mean=float(trainset.global_mean),
        user_bias=np.asarray(algo.bu, dtype=float),
        item_bias=np.asarray(algo.bi, dtype=float),
        user_factors=np.asarray(algo.pu, dtype=float),
        item_factors=np.asarray(algo.qi, dtype=float),
        rating_scale=tuple(trainset.rating_scale),
    )


def save_model(algo: SVD, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    dump.dump(str(path), algo=algo)
    return path


def load_model(path: Path) -> SVD:
    _, algo = dump.load(str(path))
    return algo
