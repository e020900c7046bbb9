"""Benchmark: new items, new users and fold-in, through the third-party command's own path.

A rating world with planted tastes (``simulation.attributed``: genres drive tastes, demographics
hint them, some users shift their interests late in their history) is cut three ways, the way an
outsider would check the command on public data; every list comes from
``evaluation.ratings.recommend_in_context`` on the training part, and the held-out part is read
only for the metrics (P@k, NDCG@k; every held-out item relevant):

- **new items**: 20 % of the items withheld from training entirely; lists over those items only
  (``--items``, ``--candidates``). Yardsticks: random order, attribute popularity.
- **new users**: 20 % of the users withheld; lists for them from their attributes (``--users``).
  Yardstick: popularity.
- **fold-in**: a global time cut at the median; each user's first 5 later events given as
  ``--recent``, the rest are the truth. ``stale`` (the model as trained), ``folded`` (recent
  events folded in), ``retrained`` (the model refitted on training plus recent events), with
  training and fold-in seconds.

``python -m benchmarks.coldstart [--users 600 --items 400 --seed 7]`` (``make bench-coldstart``).
The same protocols run on your own files instead of the generated world with
``--ratings R --item-attributes ITEMS.csv --user-attributes USERS.csv`` (the command's formats).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from benchmarks.figures import Report, record
from evaluation.ratings import Context, load_file, recommend_in_context, zoo_config
from jobs.recs.attributes import encode_attributes, read_attribute_file
from jobs.recs.coldstart import ItemColdParams, fit_attribute_columns
from jobs.recs.evaluate import items_by_user, ranking_metrics
from simulation.attributed import WorldConfig, make_world

RECENT_EVENTS = 5


def _score(lists: dict, test: pd.DataFrame, k: int, universe: int) -> dict:
    metrics = ranking_metrics(lists, items_by_user(test), k, universe)
    return {"p": round(metrics[f"precision@{k}"], 4), "ndcg": round(metrics[f"ndcg@{k}"], 4)}


def _attribute_popularity(train: pd.DataFrame, attributes, candidates: np.ndarray, k: int) -> list[str]:
    """The yardstick: candidates by their popularity predicted from attributes alone (the same for all)."""
    counts = train["item_id"].value_counts()
    history = np.array(sorted(counts.index), dtype=object)
    cold = fit_attribute_columns(None, history, counts, attributes, ItemColdParams())
    predicted = np.asarray(attributes.rows(candidates)[:, cold.features] @ cold.popularity).ravel()
    return [candidates[n] for n in np.argsort(-predicted, kind="stable")[:k]]


def new_items(world, k: int, seed: int, report: Report) -> dict:
    rng = np.random.default_rng(seed)
    item_ids = sorted(world.items["item_id"])
    withheld = set(rng.choice(item_ids, size=len(item_ids) // 5, replace=False))
    train = world.ratings[~world.ratings["item_id"].isin(withheld)]
    test = world.ratings[world.ratings["item_id"].isin(withheld) & world.ratings["user_id"].isin(set(train["user_id"]))]
    candidates = sorted(withheld)
    attributes = encode_attributes(world.items, "item_id")
    context = Context(items=attributes, candidates=candidates)
    lists, record_ = recommend_in_context(train, zoo_config(k, seed, "random", False, False), context)
    shuffled = {u: list(rng.permutation(candidates)[:k]) for u in test["user_id"].unique()}
    popular = _attribute_popularity(train, attributes, np.array(candidates, dtype=object), k)
    chosen = record_["new_items"]["chosen"]
    by_weight = {t["popularity_weight"]: t["ndcg"] for t in record_["new_items"]["trials"]
                 if t["lambda_scale"] == chosen["lambda_scale"]}  # fmt: skip
    out = {
        "random": _score(shuffled, test, k, len(candidates)),
        "attribute_popularity": _score(dict.fromkeys(test["user_id"].unique(), popular), test, k, len(candidates)),
        "hybrid": _score(lists, test, k, len(candidates)),
        "validation_ndcg_attribute_popularity": by_weight[1.0],
        "validation_ndcg_columns_only": by_weight[0.0],
        "chosen": chosen,
    }
    report("new items: random", out["random"])
    report("new items: attribute popularity", out["attribute_popularity"])
    report("new items: attribute columns + popularity", out["hybrid"], note=f"chosen {chosen}")
    return out


def new_users(world, k: int, seed: int, report: Report) -> dict:
    rng = np.random.default_rng(seed + 1)
    user_ids = sorted(world.users["user_id"])
    withheld = set(rng.choice(user_ids, size=len(user_ids) // 5, replace=False))
    train = world.ratings[~world.ratings["user_id"].isin(withheld)]
    test = world.ratings[world.ratings["user_id"].isin(withheld) & world.ratings["item_id"].isin(set(train["item_id"]))]
    attributes = encode_attributes(world.users, "user_id")
    lists, record_ = recommend_in_context(train, zoo_config(k, seed, "random", False, False), Context(users=attributes))
    universe = train["item_id"].nunique()
    counts = train["item_id"].value_counts()
    popular = sorted(counts.index, key=lambda item: (-counts[item], item))[:k]
    out = {
        "listed_users": sum(1 for user in world.users["user_id"] if user in lists),
        "all_users": len(world.users),
        "popularity": _score(dict.fromkeys(withheld, popular), test, k, universe),
        "demographic": _score(lists, test, k, universe),
        "chosen": record_["new_users"]["chosen"],
    }
    report("new users: popularity", out["popularity"])
    report("new users: demographic prior", out["demographic"], note=f"chosen {out['chosen']}")
    return out


def fold_in(world, k: int, seed: int, report: Report) -> dict:
    ratings = world.ratings.sort_values(["timestamp", "user_id", "item_id"])
    cut = ratings["timestamp"].median()
    train, later = ratings[ratings["timestamp"] <= cut], ratings[ratings["timestamp"] > cut]
    later = later[later["user_id"].isin(set(train["user_id"]))]
    recent = later.groupby("user_id", sort=False).head(RECENT_EVENTS)
    truth = later.drop(recent.index)
    universe = train["item_id"].nunique()
    config = zoo_config(k, seed, "chrono", False, False)
    stale, stale_record = recommend_in_context(train, config, Context())
    folded, folded_record = recommend_in_context(train, config, Context(recent=recent))
    started = time.monotonic()
    retrained, _ = recommend_in_context(pd.concat([train, recent]), config, Context())
    retrain_seconds = time.monotonic() - started
    users = truth["user_id"].nunique()
    out = {
        "model": stale_record["model"],
        "stale": _score(stale, truth, k, universe),
        "folded": _score(folded, truth, k, universe),
        "retrained": _score(retrained, truth, k, universe),
        "training_seconds": folded_record["training_seconds"],
        "fold_in_seconds": folded_record["fold_in_seconds"],
        "retrain_seconds": round(retrain_seconds, 2),
        "fold_in_ms_per_user": round(1000 * folded_record["fold_in_seconds"] / max(recent["user_id"].nunique(), 1), 3),
        "users_evaluated": users,
    }
    for name in ("stale", "folded", "retrained"):
        report(f"fold-in: {name}", out[name])
    report("fold-in seconds", out["fold_in_seconds"], "s", f"vs retraining {out['retrain_seconds']} s")
    return out


def files_world(ratings: Path, items: Path, users: Path) -> SimpleNamespace:
    """The protocols' input from the command's file formats (a rating file, two attribute CSVs)."""
    return SimpleNamespace(
        ratings=load_file(ratings, None),
        items=read_attribute_file(items, "item_id"),
        users=read_attribute_file(users, "user_id"),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ratings", type=Path, help="a 'user item rating timestamp' file instead of the world")
    parser.add_argument("--item-attributes", type=Path, help="with --ratings: item_id, attribute columns")
    parser.add_argument("--user-attributes", type=Path, help="with --ratings: user_id, attribute columns")
    args = parser.parse_args(argv)
    if args.ratings:
        if not (args.item_attributes and args.user_attributes):
            parser.error("--ratings needs --item-attributes and --user-attributes")
        world = files_world(args.ratings, args.item_attributes, args.user_attributes)
        source = str(args.ratings)
    else:
        world = make_world(WorldConfig(users=args.users, items=args.items, seed=args.seed))
        source = "generated"
    report = Report()
    report("ratings", len(world.ratings))
    result = {
        "data": source,
        "users": int(world.ratings["user_id"].nunique()),
        "items": int(world.ratings["item_id"].nunique()),
        "ratings": len(world.ratings),
        "new_items": new_items(world, args.k, args.seed, report),
        "new_users": new_users(world, args.k, args.seed, report),
        "fold_in": fold_in(world, args.k, args.seed, report),
    }
    record("coldstart", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
