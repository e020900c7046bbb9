"""How well profiles, segments and recommendations recover the generator's planted tastes.

Generates a data set with planted taste groups, runs it through the real pipeline functions
(Spark cleaning transforms, profiles, K-means segments, implicit ratings, the trainers, top-N
and the evaluation metrics) and measures, against the planted truth:

- **affinity recovery**: for users with at least ``min_events`` clean events, the share whose
  top affinity category is their planted primary category;
- **segment recovery**: the adjusted Rand index of the K-means segments against the planted
  groups (0 = chance, 1 = identical partitions);
- **taste share**: the share of published-style top-N items (exclusions, category cap and
  fallbacks included) that fall in the user's two planted categories, next to chance (the
  share of the catalogue in those categories);
- **ranking quality** of ``svd`` (rating-trained), ``svd_ranking`` (with sampled negatives, the
  pipeline's default), ``als`` (Spark implicit ALS) and ``popularity`` on a per-user
  chronological hold-out.

``python -m evaluation.planted_recovery [--users 400] [--items 240] [--days 14] [--groups 4] [--seed 42]``
prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession

from devenv.toolchain import ensure_java
from jobs.core.config import Settings
from jobs.core.spark import get_spark
from jobs.ingest.landing import landing_files, read_landing
from jobs.ingest.reference import read_items, read_users
from jobs.ingest.rules import LineRules, clean_rows
from jobs.profiles.build import build_user_profiles
from jobs.profiles.segments import adjusted_rand_index, fit_segments
from jobs.recs.als import AlsParams, train_als
from jobs.recs.evaluate import evaluate_factor_model, evaluate_popularity
from jobs.recs.ratings import chronological_split, implicit_ratings, with_sampled_negatives
from jobs.recs.topn import assemble_top_n, score_top_candidates
from jobs.recs.train import FactorModel, SvdParams, factor_model, train_svd
from simulation.synthetic import GeneratorConfig, generate


@dataclass(frozen=True)
class PlantedRun:
    """What the pipeline built from one generated data set, as pandas frames."""

    truth: pd.DataFrame  # user_id, primary, favourites, group, is_bot
    items: pd.DataFrame  # item_id, category, in_stock
    event_counts: pd.Series  # clean events per user
    profiles: pd.DataFrame  # user_id, top_categories
    segments: pd.DataFrame  # user_id, segment
    k: int
    ratings: pd.DataFrame  # user_id, item_id, rating, evidence, bought, last_ts


def read_truth(landing_dir: Path) -> pd.DataFrame:
    tastes = json.loads((landing_dir / "truth" / "user_tastes.json").read_text())
    return pd.DataFrame(
        {
            "user_id": [t["user_id"] for t in tastes],
            "primary": [t["favourite_categories"][0] for t in tastes],
            "favourites": [set(t["favourite_categories"]) for t in tastes],
            "group": [t.get("group") for t in tastes],
            "is_bot": [t["is_bot"] for t in tastes],
        }
    )


def clean_landing(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> DataFrame:
    """The cleaning rules on the landing hours in [start, end) of ``settings.landing_dir``, writing nothing."""
    raw = read_landing(spark, landing_files(settings.landing_dir, start, end))
    return clean_rows(raw, LineRules.from_settings(settings)).clean


def run_pipeline(
    spark: SparkSession, settings: Settings, config: GeneratorConfig, k_min: int, k_max: int
) -> PlantedRun:
    """Generate ``config`` under ``settings.landing_dir`` and build profiles, segments and ratings."""
    summary = generate(config, settings.landing_dir)
    start = datetime.fromisoformat(summary["window_start"])
    as_of = datetime.fromisoformat(summary["window_end"])
    events = clean_landing(spark, settings, start, as_of).cache()
    items = read_items(spark, settings).cache()
    profiles = build_user_profiles(events, items, read_users(spark, settings), as_of, settings.half_life_days).cache()
    # Unpersisted on every way out: a later read of the same snapshot path in this process would
    # otherwise be answered from these cached frames, i.e. from an older snapshot.
    try:
        categories = sorted(r.category for r in items.select("category").distinct().collect())
        segments = fit_segments(profiles, categories, k_min, k_max, config.seed)
        run = PlantedRun(
            truth=read_truth(settings.landing_dir),
            items=items.select("item_id", "category", "in_stock").toPandas(),
            event_counts=events.groupBy("user_id").count().toPandas().set_index("user_id")["count"],
            profiles=profiles.select("user_id", "top_categories").toPandas(),
            segments=segments.assignments.toPandas(),
            k=segments.k,
            ratings=implicit_ratings(events, as_of, settings.half_life_days),
        )
        segments.assignments.unpersist()
    finally:
        for frame in (events, items, profiles):
            frame.unpersist()
    return run


def affinity_recovery(run: PlantedRun, min_events: int) -> dict:
    """Share of users with >= ``min_events`` clean events whose top affinity is the planted primary."""
    frame = run.profiles.merge(run.truth, on="user_id")
    frame = frame[frame["user_id"].map(run.event_counts).fillna(0) >= min_events]
    hits = frame["top_categories"].map(lambda top: top[0]) == frame["primary"]
    return {"users": len(frame), "share": float(hits.mean()) if len(frame) else 0.0}


def segment_recovery(run: PlantedRun) -> dict:
    """Adjusted Rand index of the segments against the planted groups (users present in both)."""
    frame = run.segments.merge(run.truth[["user_id", "group"]], on="user_id")
    return {"users": len(frame), "k": run.k, "ari": adjusted_rand_index(frame["segment"], frame["group"])}


def taste_share(lists: Mapping[str, Sequence[str]], run: PlantedRun) -> dict:
    """Share of listed items in each user's planted categories, and the chance share.

    Chance is the share a uniformly random pick from the catalogue would have: the catalogue
    share of the user's planted categories, averaged over the same recommendations.
    """
    category_of = dict(zip(run.items["item_id"], run.items["category"], strict=True))
    catalogue_share = run.items["category"].value_counts(normalize=True).to_dict()
    favourites = dict(zip(run.truth["user_id"], run.truth["favourites"], strict=True))
    hits, chance, total = 0, 0.0, 0
    for user, items in lists.items():
        liked = favourites.get(user, set())
        hits += sum(category_of.get(item) in liked for item in items)
        chance += len(items) * sum(catalogue_share.get(c, 0.0) for c in liked)
        total += len(items)
    return {"items": total, "share": hits / total if total else 0.0, "chance": chance / total if total else 0.0}


def top_n_lists(run: PlantedRun, model: FactorModel, n: int, max_per_category: int) -> dict[str, list[str]]:
    """Top-N per non-bot user as the publish step builds it (bought and out-of-stock excluded)."""
    users = sorted(run.truth.loc[~run.truth["is_bot"], "user_id"])
    bought = run.ratings[run.ratings["bought"]].groupby("user_id")["item_id"].agg(set).to_dict()
    unavailable = set(run.items.loc[~run.items["in_stock"], "item_id"])
    category_of = dict(zip(run.items["item_id"], run.items["category"], strict=True))
    popular = run.ratings.groupby("item_id")["user_id"].nunique().sort_values(ascending=False, kind="stable")
    global_popular = [item for item in popular.index if item not in unavailable]
    candidates = score_top_candidates(model, bought, unavailable, n * 4)
    recommendations = assemble_top_n(
        users, candidates, {}, {}, global_popular, bought, category_of, {}, {}, n, max_per_category
    )
    lists: dict[str, list[str]] = {}
    for r in recommendations:
        lists.setdefault(r.user_id, []).append(r.item_id)
    return lists


def compare_models(spark: SparkSession, run: PlantedRun, settings: Settings) -> dict[str, dict]:
    """svd, svd_ranking, als and popularity on a per-user chronological hold-out of the ratings."""
    train, test = chronological_split(run.ratings)
    catalogue = sorted(run.items["item_id"])
    category_of = dict(zip(run.items["item_id"], run.items["category"], strict=True))
    k = settings.eval_k
    svd = SvdParams(settings.svd_factors, settings.svd_epochs, settings.svd_lr, settings.svd_reg, settings.seed, 0.0)
    ranking = replace(svd, negative_ratio=settings.svd_negative_ratio)
    als = AlsParams(settings.als_rank, settings.als_iterations, settings.als_reg, settings.als_alpha, settings.seed)
    trainers = {
        "svd": lambda: factor_model(train_svd(train, svd)),
        "svd_ranking": lambda: factor_model(
            train_svd(with_sampled_negatives(train, catalogue, ranking.negative_ratio, settings.seed), ranking)
        ),
        "als": lambda: train_als(spark, train, als),
    }
    results = {}
    for name, trainer in trainers.items():
        started = time.monotonic()
        results[name] = evaluate_factor_model(trainer(), train, test, k, len(catalogue), category_of)
        results[name]["seconds"] = round(time.monotonic() - started, 2)
    results["popularity"] = evaluate_popularity(train, test, k, len(catalogue), category_of)
    return {name: {m: round(v, 4) if isinstance(v, float) else v for m, v in r.items()} for name, r in results.items()}


def measure(spark: SparkSession, settings: Settings, config: GeneratorConfig, min_events: int = 20) -> dict:
    run = run_pipeline(spark, settings, config, settings.kmeans_k_min, settings.kmeans_k_max)
    ranking = replace(
        SvdParams(), n_factors=settings.svd_factors, n_epochs=settings.svd_epochs, random_state=settings.seed
    )
    catalogue = sorted(run.items["item_id"])
    model = factor_model(
        train_svd(with_sampled_negatives(run.ratings, catalogue, settings.svd_negative_ratio, settings.seed), ranking)
    )
    lists = top_n_lists(run, model, settings.top_n, settings.max_per_category)
    return {
        "data": {"users": config.users, "items": config.items, "days": config.days, "groups": config.taste_groups},
        "affinity_recovery": affinity_recovery(run, min_events),
        "segments": segment_recovery(run),
        "top_n_taste_share": taste_share(lists, run),
        "models": compare_models(spark, run, settings),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--items", type=int, default=240)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    config = GeneratorConfig(
        users=args.users, items=args.items, days=args.days, seed=args.seed, taste_groups=args.groups
    )
    ensure_java()
    with tempfile.TemporaryDirectory(prefix="planted-") as folder:
        settings = replace(Settings.from_env(), landing_dir=Path(folder), seed=args.seed)
        print(json.dumps(measure(get_spark(settings), settings, config)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
