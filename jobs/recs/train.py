"""Surprise SVD training, always seeded, and its factors as dense arrays for fast scoring."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from surprise import SVD, Dataset, Reader, dump
from surprise.model_selection import GridSearchCV, KFold

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
    # Negatives drawn proportional to (item popularity + 1) ** exponent (0 = uniform).
    popularity_exponent: float = 0.0


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
    # False for models that score preference rather than predict ratings (implicit ALS):
    # RMSE/MAE are then not reported.
    predicts_ratings: bool = True

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


# SvdParams fields GridSearchCV may tune, and whether each is an integer.
TUNABLE = {"n_factors": True, "n_epochs": True, "lr_all": False, "reg_all": False}


def tune_svd(
    ratings: pd.DataFrame,
    params: SvdParams,
    grid: Mapping[str, Sequence[float]],
    folds: int = 3,
    rating_scale: tuple[float, float] = (NEGATIVE_RATING, RATING_MAX),
) -> tuple[SvdParams, dict]:
    """``params`` with the grid's best values by cross-validated RMSE (Surprise's GridSearchCV).

    Folds are shuffled with ``params.random_state`` and every candidate SVD is seeded with it, so
    the choice is reproducible. Returns the tuned parameters and a summary for the model run.
    """
    unknown = set(grid) - set(TUNABLE)
    if unknown:
        raise ValueError(f"cannot tune {sorted(unknown)}: tunable SVD parameters are {sorted(TUNABLE)}")
    param_grid = {name: [int(v) if TUNABLE[name] else float(v) for v in values] for name, values in grid.items()}
    fixed = {name: getattr(params, name) for name in TUNABLE if name not in param_grid}
    data = Dataset.load_from_df(ratings[["user_id", "item_id", "rating"]], Reader(rating_scale=rating_scale))
    search = GridSearchCV(
        SVD,
        {**param_grid, **{name: [value] for name, value in fixed.items()}, "random_state": [params.random_state]},
        measures=["rmse"],
        cv=KFold(n_splits=folds, random_state=params.random_state, shuffle=True),
        n_jobs=1,
    )
    search.fit(data)
    best = {name: search.best_params["rmse"][name] for name in param_grid}
    summary = {"grid": param_grid, "folds": folds, "best": best, "cv_rmse": round(float(search.best_score["rmse"]), 6)}
    return replace(params, **best), summary


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


def save_factor_model(model: FactorModel, path: Path) -> Path:
    """Store factors as ``.npz`` (the ALS artifact; an SVD is stored with Surprise's dump)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        user_ids=model.user_ids.astype(str),
        item_ids=model.item_ids.astype(str),
        global_mean=model.global_mean,
        user_bias=model.user_bias,
        item_bias=model.item_bias,
        user_factors=model.user_factors,
        item_factors=model.item_factors,
        rating_scale=np.asarray(model.rating_scale, dtype=float),
        predicts_ratings=model.predicts_ratings,
    )
    return path


def load_factor_model(path: str | Path) -> FactorModel:
    """The factors of a stored model artifact, whichever trainer wrote it."""
    path = Path(path)
    if path.suffix != ".npz":
        return factor_model(load_model(path))
    with np.load(path) as stored:
        return FactorModel(
            user_ids=stored["user_ids"].astype(object),
            item_ids=stored["item_ids"].astype(object),
            global_mean=float(stored["global_mean"]),
            user_bias=stored["user_bias"],
            item_bias=stored["item_bias"],
            user_factors=stored["user_factors"],
            item_factors=stored["item_factors"],
            rating_scale=tuple(float(v) for v in stored["rating_scale"]),
            predicts_ratings=bool(stored["predicts_ratings"]),
        )


def save_model(algo: SVD, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    dump.dump(str(path), algo=algo)
    return path


def load_model(path: Path) -> SVD:
    _, algo = dump.load(str(path))
    return algo
