"""Evaluate the recommendation code on a public rating data set.

Reads a ``user item rating timestamp`` file (tab, comma or ``::`` separated, optional header),
splits it per user 75/25 twice - ``random`` (seeded, stratified by user, as in the Microsoft
Recommenders benchmark) and ``chrono`` (each user's latest quarter held out) - and evaluates
on each split, with the same training, top-k and metric code the daily DAG uses:

- ``svd``: Surprise SVD with Surprise's default hyper-parameters on the explicit ratings
  (its RMSE is Surprise's own on that split);
- ``svd_ranking``: the same SVD also trained on seeded sampled negatives (unseen items at 0),
  the variant the pipeline runs because it ranks far better;
- ``popularity``: most-rated items, the baseline;
- ``als`` (only with ``--als``, it starts Spark): Spark MLlib implicit ALS with the pipeline's
  defaults, the ratings taken as confidences.

Top-k lists exclude each user's training items; every held-out item counts as relevant.
The last line of output is one JSON object: ``{split: {model: {metric: value}}}``.

Every model also reports intra-list ``diversity`` and ``novelty`` of its top-k lists.

``python -m jobs.evaluate_ratings PATH [--sep TAB|COMMA|COLONS] [--k 10] [--seed 42] [--als]``
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession

from jobs.recs.als import AlsParams, train_als
from jobs.recs.evaluate import evaluate_factor_model, evaluate_popularity
from jobs.recs.ratings import chronological_split, random_split, with_sampled_negatives
from jobs.recs.train import SvdParams, factor_model, train_svd

SEPARATORS = {"TAB": "\t", "COMMA": ",", "COLONS": "::"}
COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
# Surprise's SVD defaults, so that "svd" is Surprise's own SVD.
SURPRISE_DEFAULTS = {"n_factors": 100, "n_epochs": 20, "lr_all": 0.005, "reg_all": 0.02}

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


def evaluate_split(
    train: pd.DataFrame, test: pd.DataFrame, k: int, seed: int, spark: SparkSession | None = None
) -> dict[str, dict]:
    catalogue = sorted(set(train["item_id"]) | set(test["item_id"]))
    scale = (float(train["rating"].min()), float(train["rating"].max()))
    results: dict[str, dict] = {}

    started = time.monotonic()
    plain = SvdParams(**SURPRISE_DEFAULTS, random_state=seed, negative_ratio=0.0)
    model = factor_model(train_svd(train, plain, rating_scale=scale))
    results["svd"] = evaluate_factor_model(model, train, test, k, len(catalogue))
    results["svd"]["seconds"] = round(time.monotonic() - started, 2)

    started = time.monotonic()
    ranking = SvdParams(**SURPRISE_DEFAULTS, random_state=seed, negative_ratio=1.0)
    with_negatives = with_sampled_negatives(train, catalogue, ranking.negative_ratio, seed, held_out=test)
    model = factor_model(train_svd(with_negatives, ranking, rating_scale=(0.0, scale[1])))
    results["svd_ranking"] = evaluate_factor_model(model, train, test, k, len(catalogue))
    results["svd_ranking"]["seconds"] = round(time.monotonic() - started, 2)

    if spark is not None:
        started = time.monotonic()
        model = train_als(spark, train, AlsParams(seed=seed))
        results["als"] = evaluate_factor_model(model, train, test, k, len(catalogue))
        results["als"]["seconds"] = round(time.monotonic() - started, 2)

    started = time.monotonic()
    results["popularity"] = evaluate_popularity(train, test, k, len(catalogue))
    results["popularity"]["seconds"] = round(time.monotonic() - started, 2)
    return {
        name: {key: (round(v, 6) if isinstance(v, float) else v) for key, v in m.items()} for name, m in results.items()
    }


def evaluate_file(path: Path, sep: str | None, k: int, seed: int, spark: SparkSession | None = None) -> dict:
    sep = sep or detect_separator(path)
    ratings, skipped = read_ratings(path, sep)
    if ratings.empty:
        raise ValueError(f"no valid 'user item rating timestamp' rows in {path}")
    print(
        f"{len(ratings)} ratings, {ratings['user_id'].nunique()} users, {ratings['item_id'].nunique()} items;"
        f" {skipped} rows skipped as malformed or header",
        file=sys.stderr,
    )
    splits = {
        "random": random_split(ratings, 0.25, min_items=2, seed=seed),
        "chrono": chronological_split(ratings, 0.25, min_items=2, time_column="timestamp"),
    }
    return {name: evaluate_split(train, test, k, seed, spark) for name, (train, test) in splits.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--sep", type=str.upper, choices=sorted(SEPARATORS), help="default: detected")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--als", action="store_true", help="also evaluate Spark MLlib implicit ALS (starts Spark)")
    args = parser.parse_args(argv)
    spark = None
    if args.als:
        from jobs.core.spark import get_spark

        spark = get_spark()
    print(json.dumps(evaluate_file(args.path, args.sep, args.k, args.seed, spark)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
