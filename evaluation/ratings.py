"""Evaluate the recommendation code on public rating data, or write its lists for others to score.

Input: a ``user item rating timestamp`` file (tab, comma or ``::`` separated, optional header).
Every rated item counts as an interaction (implicit feedback, as in the Microsoft Recommenders
benchmarks); lists exclude each user's training items.

**Third-party protocol** (``--recommend-out LISTS``): the file is the training data and nothing
else. The model zoo (``jobs.recs.zoo``: Surprise SVD with sampled negatives, EASE, item-kNN
with ``--spark``, and their blend) is tuned and chosen by NDCG@k on a validation split cut from
it (``--validation random``, per user, or ``chrono``, each user's latest quarter), the chosen
model is refitted on the whole file, and the top-k of every user is written one
``user<TAB>item<TAB>rank`` line each. Score the lists with your own test set and metric code:
the project never sees it.

**Two-split evaluation** (default): the file is split per user 75/25 twice, ``random``
(seeded, stratified by user) and ``chrono`` (each user's latest quarter held out); each
split's training part goes through exactly the path above (validation cut from the training
part only, of the split's own kind), and every candidate is scored on the held-out part next
to ``popularity`` and plain rating-trained Surprise SVD (``surprise_svd``, Surprise's defaults;
its RMSE is Surprise's own). ``selected`` is the zoo's choice, whose lists are the ones
``--recommend-out`` writes for the same training part.

The last line of output is one JSON object: ``{split: {model: {metric: value}}}`` (evaluation)
or the chosen model, its validation record and its tuning and fit seconds (lists).

``python -m evaluation.ratings PATH [--recommend-out LISTS] [--validation random|chrono]
[--sep TAB|COMMA|COLONS] [--k 10] [--seed 42] [--spark] [--als]``
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from functools import partial
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession

from jobs.recs.evaluate import (
    beyond_accuracy,
    evaluate_factor_model,
    evaluate_popularity,
    items_by_user,
    ranking_metrics,
)
from jobs.recs.ratings import chronological_split, random_split
from jobs.recs.train import SvdParams, factor_model, train_svd
from jobs.recs.zoo import (
    FittedModel,
    ZooConfig,
    evaluate_fitted,
    fit_candidates,
    item_universe,
    ranked_lists,
    select_models,
)

SEPARATORS = {"TAB": "\t", "COMMA": ",", "COLONS": "::"}
COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
# Surprise's SVD defaults, so that "surprise_svd" is Surprise's own SVD.
SURPRISE_DEFAULTS = {"n_factors": 100, "n_epochs": 20, "lr_all": 0.005, "reg_all": 0.02}
TEST_SHARE = 0.25

log = logging.getLogger(__name__)


def detect_separator(path: Path) -> str:
    first = path.open(encoding="utf-8", errors="replace").readline()
    for name in ("COLONS", "TAB", "COMMA"):
        if SEPARATORS[name] in first:
            return name
    raise ValueError(f"cannot tell the separator of {path}: pass --sep TAB, COMMA or COLONS")


def read_ratings(path: Path, sep: str) -> tuple[pd.DataFrame, int]:
    """The ratings with string ids, and how many malformed rows were skipped (never silently)."""
    frame = pd.read_csv(
        path,
        sep=SEPARATORS[sep],
        header=None,
        names=COLUMNS,
        usecols=range(4),
        dtype=str,
        engine="python" if sep == "COLONS" else "c",
        skip_blank_lines=True,
    )
    rating = pd.to_numeric(frame["rating"], errors="coerce")
    timestamp = pd.to_numeric(frame["timestamp"], errors="coerce")
    valid = rating.notna() & timestamp.notna() & frame["user_id"].notna() & frame["item_id"].notna()
    skipped = int((~valid).sum())  # a header line lands here too
    clean = pd.DataFrame(
        {"user_id": frame["user_id"], "item_id": frame["item_id"], "rating": rating, "timestamp": timestamp}
    )[valid]
    clean = clean.drop_duplicates(["user_id", "item_id"], keep="last").reset_index(drop=True)
    return clean, skipped


def zoo_config(k: int, seed: int, validation: str, spark: bool, als: bool) -> ZooConfig:
    """The zoo for rating files: SVD and EASE always, item-kNN with Spark, ALS on request."""
    families = ("svd", "ease") + (("item_knn",) if spark else ()) + (("als",) if als else ())
    split = validation_split(validation, seed)
    svd = SvdParams(random_state=seed)
    return ZooConfig(families=families, k=k, seed=seed, svd=svd, validation_split=split)


def validation_split(kind: str, seed: int):
    """How a validation split is cut from a training part: per-user random or chronological."""
    if kind == "random":
        return partial(random_split, test_share=TEST_SHARE, min_items=2, seed=seed + 1)
    if kind == "chrono":
        return partial(chronological_split, test_share=TEST_SHARE, min_items=2, time_column="timestamp")
    raise ValueError(f"--validation must be random or chrono, got {kind!r}")


def recommend(
    train: pd.DataFrame, config: ZooConfig, spark: SparkSession | None = None
) -> tuple[dict[str, list[str]], FittedModel, dict, dict[str, FittedModel]]:
    """Top-k of every training user from the zoo's choice, tuned on ``train`` alone.

    Returns the lists, the chosen fitted model, a record (selection, seconds) and every
    candidate fitted on ``train`` (for evaluation).
    """
    catalogue = sorted(train["item_id"].unique())
    selection = select_models(train, catalogue, config, spark)
    started = time.monotonic()
    fitted = fit_candidates(selection, train, catalogue, spark)
    fit_seconds = time.monotonic() - started
    chosen = fitted[selection.chosen]
    users = sorted(train["user_id"].unique())
    lists = ranked_lists(chosen, train, item_universe(train, catalogue), users, items_by_user(train), set(), config.k)
    tuning = selection.record["tuning_seconds"]
    record = {
        "model": chosen.spec.label,
        "spec": chosen.spec.to_dict(),
        "selection": selection.record,
        "tuning_seconds": tuning,
        "fit_seconds": round(fit_seconds, 2),
        "chosen_fit_seconds": round(chosen.seconds, 2),
        "tuning_over_fit": round(tuning / max(fit_seconds, 1e-9), 2),
    }
    return {user: [item for item, _ in lists[user]] for user in users}, chosen, record, fitted


def write_lists(lists: dict[str, list[str]], path: Path) -> int:
    """``user<TAB>item<TAB>rank`` lines, users in order, ranks from 1; returns the line count."""
    lines = [f"{user}\t{item}\t{rank}\n" for user, top in lists.items() for rank, item in enumerate(top, start=1)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def evaluate_split(
    train: pd.DataFrame, test: pd.DataFrame, config: ZooConfig, spark: SparkSession | None = None
) -> dict[str, dict]:
    """Every zoo candidate, the zoo's choice, popularity and plain Surprise SVD on ``test``.

    Everything up to the lists is computed from ``train``; ``test`` is read only for metrics.
    """
    catalogue = sorted(train["item_id"].unique())
    k = config.k
    results: dict[str, dict] = {}
    lists, _, record, fitted = recommend(train, config, spark)
    relevant = items_by_user(test)
    for model in fitted.values():
        started = time.monotonic()
        results[model.spec.label] = evaluate_fitted(model, train, test, k, catalogue)
        results[model.spec.label]["seconds"] = round(model.seconds + time.monotonic() - started, 2)
    evaluated = {user: lists.get(user, []) for user, truth in relevant.items() if truth}
    results["selected"] = ranking_metrics(lists, relevant, k, len(catalogue)) | beyond_accuracy(evaluated, train)
    results["selected"] |= {key: record[key] for key in ("model", "tuning_seconds", "fit_seconds", "tuning_over_fit")}

    started = time.monotonic()
    scale = (float(train["rating"].min()), float(train["rating"].max()))
    plain = SvdParams(**SURPRISE_DEFAULTS, random_state=config.seed, negative_ratio=0.0)
    model = factor_model(train_svd(train, plain, rating_scale=scale))
    results["surprise_svd"] = evaluate_factor_model(model, train, test, k, len(catalogue))
    results["surprise_svd"]["seconds"] = round(time.monotonic() - started, 2)

    started = time.monotonic()
    results["popularity"] = evaluate_popularity(train, test, k, len(catalogue))
    results["popularity"]["seconds"] = round(time.monotonic() - started, 2)
    return {
        name: {key: (round(v, 6) if isinstance(v, float) else v) for key, v in m.items()} for name, m in results.items()
    }


def load_file(path: Path, sep: str | None) -> pd.DataFrame:
    sep = sep or detect_separator(path)
    ratings, skipped = read_ratings(path, sep)
    if ratings.empty:
        raise ValueError(f"no valid 'user item rating timestamp' rows in {path}")
    print(
        f"{len(ratings)} ratings, {ratings['user_id'].nunique()} users, {ratings['item_id'].nunique()} items;"
        f" {skipped} rows skipped as malformed or header",
        file=sys.stderr,
    )
    return ratings


def evaluate_file(
    path: Path, sep: str | None, k: int, seed: int, spark: SparkSession | None = None, als: bool = False
) -> dict:
    ratings = load_file(path, sep)
    splits = {
        "random": random_split(ratings, TEST_SHARE, min_items=2, seed=seed),
        "chrono": chronological_split(ratings, TEST_SHARE, min_items=2, time_column="timestamp"),
    }
    return {
        name: evaluate_split(train, test, zoo_config(k, seed, name, spark is not None, als), spark)
        for name, (train, test) in splits.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--recommend-out", type=Path, help="write every user's top-k of PATH (the training file)")
    parser.add_argument("--validation", choices=["random", "chrono"], default="random", help="with --recommend-out")
    parser.add_argument("--sep", type=str.upper, choices=sorted(SEPARATORS), help="default: detected")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--spark", action="store_true", help="also try item-kNN on Spark (starts Spark)")
    parser.add_argument("--als", action="store_true", help="also try Spark MLlib implicit ALS (starts Spark)")
    args = parser.parse_args(argv)
    spark = None
    if args.spark or args.als:
        from devenv.toolchain import ensure_java
        from jobs.core.spark import get_spark

        ensure_java()
        spark = get_spark()
    if args.recommend_out is None:
        print(json.dumps(evaluate_file(args.path, args.sep, args.k, args.seed, spark, args.als)))
        return 0
    train = load_file(args.path, args.sep)
    config = zoo_config(args.k, args.seed, args.validation, args.spark, args.als)
    started = time.monotonic()
    lists, _, record, _ = recommend(train, config, spark)
    lines = write_lists(lists, args.recommend_out)
    record |= {"users": len(lists), "lines": lines, "k": args.k, "seconds": round(time.monotonic() - started, 2)}
    print(f"{lines} lines for {len(lists)} users in {args.recommend_out}", file=sys.stderr)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
