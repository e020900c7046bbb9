"""The model zoo: fit any candidate, tune it on a validation split by NDCG@k, choose, store, reload.

Candidates: Surprise SVD on implicit ratings plus sampled negatives (uniform or
popularity-weighted), Spark MLlib implicit ALS, EASE (closed-form item-to-item, catalogues that
fit in memory), item-kNN on co-occurrence (computed with Spark, any catalogue size) and a blend
of the two best of them (per-user standardised scores, weight chosen on validation).

Honesty rule: ``select_models`` sees the training part only. It cuts its own validation split
from it (``ZooConfig.validation_split``), fits every grid point on the validation-train part,
ranks by NDCG@k on the validation-test part, and returns the chosen specs; the caller then
fits them on the whole training part and evaluates them on a hold-out the selection never saw.
Every fit is seeded, so the same training part always gives the same models.

Time budget: the grids are small and fixed (about five fits per family on the validation
part, one Spark pass for every kNN size, scoring-only blends), and tuning runs on at most
``tuning_users`` users (a seeded sample), so it costs a few fits whatever the data size; the
caller records tuning seconds next to one fit's seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from jobs.recs.als import AlsParams, train_als
from jobs.recs.coldstart import fold_in_factors
from jobs.recs.evaluate import beyond_accuracy, items_by_user, ranking_metrics, rmse_mae
from jobs.recs.item_models import (
    EaseParams,
    ItemKnnParams,
    ItemModel,
    fit_ease,
    fit_item_knn,
    keep_neighbours,
    load_item_model,
    save_item_model,
)
from jobs.recs.ratings import chronological_split, with_sampled_negatives
from jobs.recs.scoring import BlendScorer, FactorScorer, ItemScorer, Scorer, top_items
from jobs.recs.topn import score_top_candidates
from jobs.recs.train import (
    FactorModel,
    SvdParams,
    factor_model,
    load_factor_model,
    save_factor_model,
    save_model,
    train_svd,
)

FAMILIES = ("svd", "als", "ease", "item_knn")
BLEND = "blend"
# Negative sampling schemes tried for SVD: (negatives per positive, popularity exponent).
SVD_SAMPLING = ((1.0, 0.0), (4.0, 0.0), (4.0, 0.5), (4.0, 1.0))
EASE_LAMBDA_SCALES = (1.0, 3.0, 10.0, 30.0)
KNN_NEIGHBOURS = (25, 50, 100, 200)
BLEND_WEIGHTS = (0.2, 0.35, 0.5)


@dataclass(frozen=True)
class ModelSpec:
    """A family and its parameters; a blend's parameters are its parts' specs and weights."""

    family: str
    params: dict = field(default_factory=dict)
    parts: tuple[ModelSpec, ...] = ()
    weights: tuple[float, ...] = ()

    @property
    def label(self) -> str:
        """Names the model in ``push.model_runs.algorithm`` and the published ``source``."""
        if self.family == BLEND:
            return "blend:" + "+".join(part.family for part in self.parts)
        return self.family

    @property
    def key(self) -> str:
        """A stable text identity (specs hold dicts, so they are not hashable)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_dict(self) -> dict:
        out = {"family": self.family, "params": self.params}
        if self.parts:
            out |= {"parts": [part.to_dict() for part in self.parts], "weights": list(self.weights)}
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> ModelSpec:
        parts = tuple(cls.from_dict(part) for part in data.get("parts", []))
        return cls(data["family"], dict(data.get("params", {})), parts, tuple(data.get("weights", [])))


@dataclass
class FittedModel:
    spec: ModelSpec
    model: FactorModel | ItemModel | None = None
    parts: list[FittedModel] = field(default_factory=list)
    # What is stored: a Surprise SVD is dumped whole so it reloads as Surprise's own object.
    artifact: object = None
    seconds: float = 0.0

    def scorer(self, history: pd.DataFrame, item_ids: np.ndarray) -> Scorer:
        """Scores over ``item_ids``; item models read the users' rows from ``history``."""
        if self.spec.family == BLEND:
            return BlendScorer([part.scorer(history, item_ids) for part in self.parts], self.spec.weights)
        if isinstance(self.model, FactorModel):
            return FactorScorer(self.model, item_ids)
        return ItemScorer(self.model, history, item_ids)


@dataclass(frozen=True)
class ZooConfig:
    """What the zoo may try. ``validation_split`` cuts (fit, check) from a training part."""

    families: tuple[str, ...] = ("svd", "ease", "item_knn")
    blend: bool = True
    tune: bool = True
    svd: SvdParams = field(default_factory=SvdParams)
    als: AlsParams = field(default_factory=AlsParams)
    ease: EaseParams = field(default_factory=EaseParams)
    item_knn: ItemKnnParams = field(default_factory=ItemKnnParams)
    k: int = 10
    seed: int = 42
    tuning_users: int = 20_000
    validation_split: Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]] = chronological_split


def base_spec(family: str, config: ZooConfig) -> ModelSpec:
    params = {"svd": config.svd, "als": config.als, "ease": config.ease, "item_knn": config.item_knn}
    if family not in params:
        raise ValueError(f"unknown model family {family!r}: choose from {FAMILIES}")
    return ModelSpec(family, asdict(params[family]))


def item_universe(ratings: pd.DataFrame, catalogue: Iterable[str]) -> np.ndarray:
    return np.array(sorted(set(catalogue) | set(ratings["item_id"])), dtype=object)


def fit_spec(
    spec: ModelSpec,
    ratings: pd.DataFrame,
    catalogue: Sequence[str],
    spark: SparkSession | None,
    fitted_parts: Mapping[str, FittedModel] | None = None,
) -> FittedModel:
    """Train ``spec`` on ``ratings`` (positives; SVD adds its own seeded negatives from ``catalogue``)."""
    started = time.monotonic()
    if spec.family == BLEND:
        known = fitted_parts or {}
        parts = [known.get(part.key) or fit_spec(part, ratings, catalogue, spark) for part in spec.parts]
        return FittedModel(spec, parts=parts, seconds=sum(part.seconds for part in parts))
    if spec.family == "als" and spark is None:
        raise ValueError(f"{spec.family} needs a SparkSession")
    if spec.family == "svd":
        params = SvdParams(**spec.params)
        negatives = with_sampled_negatives(
            ratings, list(catalogue), params.negative_ratio, params.random_state, params.popularity_exponent
        )
        algo = train_svd(negatives, params)
        model, artifact = factor_model(algo), algo
    elif spec.family == "als":
        model = train_als(spark, ratings, AlsParams(**spec.params))
        artifact = model
    elif spec.family == "ease":
        model = fit_ease(ratings, EaseParams(**spec.params))
        artifact = model
    elif spec.family == "item_knn":
        model = fit_item_knn(spark, ratings, ItemKnnParams(**spec.params))
        artifact = model
    else:
        raise ValueError(f"unknown model family {spec.family!r}")
    return FittedModel(spec, model, artifact=artifact, seconds=time.monotonic() - started)


def ranked_lists(
    fitted: FittedModel,
    history: pd.DataFrame,
    item_ids: np.ndarray,
    users: Sequence[str],
    excluded: Mapping[str, Iterable[str]],
    unavailable: set[str],
    k: int,
) -> dict[str, list[tuple[str, float]]]:
    """Top-k (item, score) of each of ``users``: factor models through the blocked factor pass."""
    if isinstance(fitted.model, FactorModel):
        unknown = set(fitted.model.item_ids) - set(item_ids)
        lists = score_top_candidates(fitted.model, excluded, unavailable | unknown, k, only_users=set(users))
        return {user: lists.get(user, []) for user in users}
    return top_items(fitted.scorer(history, item_ids), users, excluded, unavailable, k)


def evaluate_fitted(
    fitted: FittedModel,
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int,
    catalogue: Sequence[str],
    category_of: Mapping[str, str] | None = None,
) -> dict:
    """Hold-out metrics of a model fitted on ``train``: top-k lists exclude the training items.

    RMSE/MAE only for models that predict ratings (SVD); every model gets the ranking and
    beyond-accuracy metrics of the same lists.
    """
    metrics = {}
    if isinstance(fitted.model, FactorModel) and fitted.model.predicts_ratings:
        metrics = rmse_mae(test["rating"].to_numpy(), fitted.model.predict_pairs(test["user_id"], test["item_id"]))
    relevant = items_by_user(test)
    items = item_universe(train, catalogue)
    ranked = ranked_lists(fitted, train, items, list(relevant), items_by_user(train), set(), k)
    lists = {user: [item for item, _ in top] for user, top in ranked.items()}
    evaluated = {user: lists.get(user, []) for user, truth in relevant.items() if truth}
    return (
        metrics | ranking_metrics(lists, relevant, k, len(catalogue)) | beyond_accuracy(evaluated, train, category_of)
    )


def validation_ndcg(fitted: FittedModel, fit_part: pd.DataFrame, check_part: pd.DataFrame, items, k) -> float:
    relevant = items_by_user(check_part)
    lists = ranked_lists(fitted, fit_part, items, list(relevant), items_by_user(fit_part), set(), k)
    named = {user: [item for item, _ in top] for user, top in lists.items()}
    return ranking_metrics(named, relevant, k, len(items))[f"ndcg@{k}"]


@dataclass
class Selection:
    """Best spec per family (and the best blend), the one chosen, and what tuning tried."""

    candidates: dict[str, ModelSpec]
    chosen: str
    record: dict


def select_models(
    train: pd.DataFrame,
    catalogue: Sequence[str],
    config: ZooConfig,
    spark: SparkSession | None = None,
) -> Selection:
    """Tune each family on a validation split of ``train`` and choose the best by NDCG@k.

    With ``config.tune`` off each family keeps its configured parameters; the choice between
    families (and the blend weight) is still made on validation. A single family with tuning
    off needs no validation at all.
    """
    started = time.monotonic()
    families = [family for family in config.families if family in FAMILIES]
    item_count = train.loc[train["rating"] > 0, "item_id"].nunique()
    skipped = {}
    if "ease" in families and item_count > config.ease.max_items:
        families.remove("ease")
        skipped["ease"] = f"{item_count} items > PUSH_EASE_MAX_ITEMS={config.ease.max_items}"
    if not families:
        raise ValueError(f"no model family left to train: {config.families} ({skipped})")
    if len(families) == 1 and not config.tune:
        spec = base_spec(families[0], config)
        return Selection({spec.family: spec}, spec.family, {"validation": None, "skipped": skipped})

    users = np.array(sorted(train["user_id"].unique()), dtype=object)
    if len(users) > config.tuning_users:
        users = np.random.default_rng(config.seed).choice(users, size=config.tuning_users, replace=False)
    sample = train[train["user_id"].isin(set(users))]
    fit_part, check_part = config.validation_split(sample)
    items = item_universe(fit_part, catalogue)
    trials: list[dict] = []
    best: dict[str, tuple[float, ModelSpec, FittedModel]] = {}

    def trial(spec: ModelSpec, fitted: FittedModel | None = None) -> None:
        fitted = fitted or fit_spec(spec, fit_part, catalogue, spark)
        ndcg = validation_ndcg(fitted, fit_part, check_part, items, config.k)
        trials.append({"model": spec.label, "params": _varying(spec), "ndcg": round(ndcg, 6)})
        key = spec.family if spec.family != BLEND else BLEND
        if key not in best or ndcg > best[key][0] + 1e-12:
            best[key] = (ndcg, spec, fitted)

    for family in families:
        base = base_spec(family, config)
        if not config.tune:
            trial(base)
        elif family == "svd":
            for ratio, exponent in SVD_SAMPLING:
                trial(replace(base, params={**base.params, "negative_ratio": ratio, "popularity_exponent": exponent}))
            scheme = best["svd"][1].params
            trial(replace(base, params={**scheme, "lr_all": scheme["lr_all"] * 2, "reg_all": scheme["reg_all"] / 2}))
            trial(replace(base, params={**scheme, "n_factors": max(2, scheme["n_factors"] // 2)}))
        elif family == "ease":
            for scale in EASE_LAMBDA_SCALES:
                trial(replace(base, params={**base.params, "lambda_scale": scale}))
        elif family == "item_knn":
            widest = replace(base, params={**base.params, "neighbours": max(KNN_NEIGHBOURS)})
            fitted = fit_spec(widest, fit_part, catalogue, spark)
            for neighbours in KNN_NEIGHBOURS:
                spec = replace(base, params={**base.params, "neighbours": neighbours})
                trial(spec, FittedModel(spec, keep_neighbours(fitted.model, neighbours), artifact=None))
        else:
            trial(base)
    ranked = sorted((family for family in best), key=lambda family: -best[family][0])
    if config.blend and len(ranked) >= 2:
        first, second = best[ranked[0]], best[ranked[1]]
        for weight in BLEND_WEIGHTS:
            spec = ModelSpec(BLEND, parts=(first[1], second[1]), weights=(round(1 - weight, 4), weight))
            trial(spec, FittedModel(spec, parts=[first[2], second[2]]))
    candidates = {name: spec for name, (_, spec, _) in best.items()}
    chosen = max(best, key=lambda name: (best[name][0], -list(best).index(name)))
    record = {
        "validation": {
            "users": int(check_part["user_id"].nunique()),
            "fit_rows": len(fit_part),
            "check_rows": len(check_part),
            "ndcg": {name: round(value, 6) for name, (value, _, _) in best.items()},
        },
        "trials": trials,
        "skipped": skipped,
        "chosen": candidates[chosen].label,
        "tuning_seconds": round(time.monotonic() - started, 2),
    }
    return Selection(candidates, chosen, record)


def _varying(spec: ModelSpec) -> dict:
    """The parameters a grid varies (the rest are the configured ones)."""
    if spec.family == BLEND:
        return {"parts": [part.label for part in spec.parts], "weights": list(spec.weights)}
    keys = {
        "svd": ("negative_ratio", "popularity_exponent", "n_factors", "lr_all", "reg_all"),
        "ease": ("lambda_scale",),
        "item_knn": ("neighbours",),
    }.get(spec.family, tuple(spec.params))
    return {key: spec.params[key] for key in keys if key in spec.params}


def fit_candidates(
    selection: Selection, ratings: pd.DataFrame, catalogue: Sequence[str], spark: SparkSession | None
) -> dict[str, FittedModel]:
    """Every candidate of ``selection`` fitted on ``ratings``; a blend reuses its fitted parts."""
    fitted: dict[str, FittedModel] = {}
    by_spec: dict[str, FittedModel] = {}
    for name, spec in sorted(selection.candidates.items(), key=lambda pair: pair[0] == BLEND):
        model = fit_spec(spec, ratings, catalogue, spark, by_spec)
        fitted[name] = model
        by_spec[spec.key] = model
    return fitted


# Storage: one directory per run, ``model.json`` naming the spec and the file of each part.


def store_fitted(fitted: FittedModel, directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"spec": fitted.spec.to_dict(), "files": _store_parts(fitted, directory, "model")}
    path = directory / "model.json"
    path.write_text(json.dumps(manifest, indent=1))
    return str(path)


def _store_parts(fitted: FittedModel, directory: Path, stem: str) -> list[str]:
    if fitted.spec.family == BLEND:
        return [name for n, part in enumerate(fitted.parts) for name in _store_parts(part, directory, f"{stem}-{n}")]
    if fitted.spec.family == "svd":
        return [save_model(fitted.artifact, directory / f"{stem}-svd.pkl").name]
    if isinstance(fitted.model, FactorModel):
        return [save_factor_model(fitted.model, directory / f"{stem}-{fitted.spec.family}.npz").name]
    return [save_item_model(fitted.model, directory / f"{stem}-{fitted.spec.family}.npz").name]


def load_fitted(path: str | Path) -> FittedModel:
    """The model ``store_fitted`` wrote (a ``model.json``), or an older run's SVD/ALS artifact file."""
    path = Path(path)
    if path.name != "model.json":
        model = load_factor_model(path)
        family = "svd" if path.suffix == ".pkl" else "als"
        return FittedModel(ModelSpec(family), model)
    manifest = json.loads(path.read_text())
    files = iter(manifest["files"])
    return _load_parts(ModelSpec.from_dict(manifest["spec"]), path.parent, files)


def _load_parts(spec: ModelSpec, directory: Path, files) -> FittedModel:
    if spec.family == BLEND:
        return FittedModel(spec, parts=[_load_parts(part, directory, files) for part in spec.parts])
    name = next(files)
    if spec.family in ("svd", "als"):
        return FittedModel(spec, load_factor_model(directory / name))
    return FittedModel(spec, load_item_model(directory / name, spec.params))


def fold_in(fitted: FittedModel, history: pd.DataFrame, users: Sequence[str], seed: int) -> FittedModel:
    """``fitted`` brought up to ``history`` for ``users`` without retraining.

    Factor models re-solve those users' vectors with the item factors fixed
    (``coldstart.fold_in_factors``); item-to-item models need nothing, since their scores read
    the user's current row from the history they are given; a blend folds in each part.
    """
    if fitted.spec.family == BLEND:
        return replace(fitted, parts=[fold_in(part, history, users, seed) for part in fitted.parts])
    if isinstance(fitted.model, FactorModel):
        params = fitted.spec.params
        model = fold_in_factors(
            fitted.model,
            history,
            users,
            negative_ratio=float(params.get("negative_ratio", 1.0)),
            reg=float(params.get("reg_all", params.get("reg_param", 0.05))),
            seed=seed,
        )
        return replace(fitted, model=model)
    return fitted
