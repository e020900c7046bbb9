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

**New items, new users, today's events** (with ``--recommend-out``; ``jobs.recs.coldstart``):

- ``--items FILE``: CSV with a header, ``item_id`` then attribute columns (``|`` separates the
  values of a multi-valued cell; numeric columns are binned). Items of FILE that PATH never
  mentions are new: they are ranked by item-to-item columns predicted from their attributes.
- ``--users FILE``: CSV with a header, ``user_id`` then attribute columns. Every user of FILE
  gets a list; one with no line in PATH gets the demographic prior (similar users' items,
  mixed with popularity).
- ``--candidates FILE``: one item id a line; every list holds only these items.
- ``--recent FILE``: events after PATH, in PATH's format. The model is not refitted: users'
  vectors are folded in, their lists reflect these events and exclude their items.

Every weight these use is chosen on a validation split of PATH alone.

The last line of output is one JSON object: ``{split: {model: {metric: value}}}`` (evaluation)
or the chosen model, its validation record, training seconds and fold-in seconds (lists).

``python -m evaluation.ratings PATH [--recommend-out LISTS] [--validation random|chrono]
[--items FILE] [--users FILE] [--candidates FILE] [--recent FILE]
[--sep TAB|COMMA|COLONS] [--k 10] [--seed 42] [--spark] [--als]``
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession

from jobs.recs.attributes import AttributeTable, encode_attributes, read_attribute_file
from jobs.recs.coldstart import (
    HybridItemScorer,
    fit_attribute_columns,
    fit_demographic_prior,
    tune_new_items,
    tune_new_users,
)
from jobs.recs.evaluate import (
    beyond_accuracy,
    evaluate_factor_model,
    evaluate_popularity,
    items_by_user,
    ranking_metrics,
)
from jobs.recs.item_models import EaseParams, fit_ease
from jobs.recs.ratings import chronological_split, random_split
from jobs.recs.scoring import top_items
from jobs.recs.train import SvdParams, factor_model, train_svd
from jobs.recs.zoo import (
    FittedModel,
    Selection,
    ZooConfig,
    evaluate_fitted,
    fit_candidates,
    fold_in,
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


def fit_zoo(
    train: pd.DataFrame, catalogue: list[str], config: ZooConfig, spark: SparkSession | None
) -> tuple[Selection, dict[str, FittedModel], float]:
    """The zoo tuned on ``train`` alone, every candidate fitted on it, and the fitting seconds."""
    selection = select_models(train, catalogue, config, spark)
    started = time.monotonic()
    fitted = fit_candidates(selection, train, catalogue, spark)
    return selection, fitted, time.monotonic() - started


def recommend(
    train: pd.DataFrame, config: ZooConfig, spark: SparkSession | None = None
) -> tuple[dict[str, list[str]], FittedModel, dict, dict[str, FittedModel]]:
    """Top-k of every training user from the zoo's choice, tuned on ``train`` alone.

    Returns the lists, the chosen fitted model, a record (selection, seconds) and every
    candidate fitted on ``train`` (for evaluation).
    """
    catalogue = sorted(train["item_id"].unique())
    selection, fitted, fit_seconds = fit_zoo(train, catalogue, config, spark)
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


@dataclass
class Context:
    """What a caller may add to the training file (every part optional)."""

    items: AttributeTable | None = None
    users: AttributeTable | None = None
    candidates: list[str] | None = None
    recent: pd.DataFrame | None = None


def recommend_in_context(
    train: pd.DataFrame, config: ZooConfig, context: Context, spark: SparkSession | None = None
) -> tuple[dict[str, list[str]], dict]:
    """Top-k lists for every known user, new items and new users included, recent events folded in.

    Training (tuning, fitting, the cold-start weights) reads ``train`` alone; ``context.recent``
    only moves users' states after it, through ``zoo.fold_in``.
    """
    started = time.monotonic()
    k, seed = config.k, config.seed
    catalogue = sorted(train["item_id"].unique())
    selection, fitted, _ = fit_zoo(train, catalogue, config, spark)
    chosen = fitted[selection.chosen]
    record: dict = {"model": chosen.spec.label, "spec": chosen.spec.to_dict(), "selection": selection.record}
    counts = train.loc[train["rating"] > 0, "item_id"].value_counts()
    cold = base = None
    if context.items is not None:
        if "ease" in fitted:
            base = fitted["ease"].model
            ease = EaseParams(**fitted["ease"].spec.params)
        elif len(catalogue) <= config.ease.max_items:
            ease = config.ease
            base = fit_ease(train, ease)
        else:
            ease = None
        item_params, record["new_items"] = tune_new_items(train, context.items, ease, k, seed)
        history_ids = base.item_ids if base is not None else np.array(catalogue, dtype=object)
        cold = fit_attribute_columns(base, history_ids, counts, context.items, item_params)
    if context.users is not None:
        user_params, record["new_users"] = tune_new_users(train, context.users, k, seed)
    record["training_seconds"] = round(time.monotonic() - started, 2)

    started = time.monotonic()
    history = train
    if context.recent is not None and not context.recent.empty:
        history = pd.concat([train, context.recent], ignore_index=True)
        history = history.drop_duplicates(["user_id", "item_id"], keep="last")
        chosen = fold_in(chosen, history, sorted(context.recent["user_id"].unique()), seed)
    record["fold_in_seconds"] = round(time.monotonic() - started, 3)

    known_items = set(catalogue)
    universe = np.array(
        context.candidates
        if context.candidates is not None
        else sorted(known_items | set(context.items.ids if context.items is not None else ())),
        dtype=object,
    )
    new_items = [item for item in universe if item not in known_items]
    seen = items_by_user(history)
    active = sorted(history.loc[history["rating"] > 0, "user_id"].unique())
    if new_items and cold is not None:
        scorer = HybridItemScorer(cold, base, context.items, counts, history, universe)
        ranked = top_items(scorer, active, seen, set(), k)
    else:
        items = np.array(sorted(known_items | set(universe)), dtype=object)
        ranked = ranked_lists(chosen, history, items, active, seen, set(items) - set(universe), k)
    lists = {user: [item for item, _ in top] for user, top in ranked.items()}

    everyone = sorted(set(active) | set(context.users.ids if context.users is not None else ()))
    if context.users is not None:
        described = set(context.users.ids)
        unserved = [user for user in everyone if not lists.get(user) and user in described]
        if unserved:
            prior = fit_demographic_prior(
                train, context.users, universe, user_params["neighbours"], user_params["weight"]
            )
            scores = prior.scores(context.users.rows(unserved))
            for row, user in enumerate(unserved):
                order = np.argsort(-scores[row], kind="stable")
                lists[user] = [item for item in universe[order] if item not in seen.get(user, ())][:k]
    fallback = _popularity_fallback(train, universe, cold, context.items)
    for user in everyone:
        top = lists.get(user, [])
        if len(top) < k:
            taken = set(top) | set(seen.get(user, ()))
            top = top + [item for item in fallback if item not in taken][: k - len(top)]
        lists[user] = top
    record |= {"new_item_count": len(new_items), "new_user_count": len(set(everyone) - set(train["user_id"]))}
    return lists, record


def _popularity_fallback(train, universe, cold, items: AttributeTable | None) -> list[str]:
    """The universe by interactions, new items by their attribute popularity, then by id."""
    counts = train.loc[train["rating"] > 0, "item_id"].value_counts()
    guess = {}
    if cold is not None and items is not None:
        predicted = np.asarray(items.rows(universe)[:, cold.features] @ cold.popularity).ravel()
        guess = dict(zip(universe, predicted, strict=True))
    return sorted(universe, key=lambda item: (-counts.get(item, 0), -guess.get(item, 0.0), item))


def read_context(args: argparse.Namespace) -> Context:
    """The optional files of the command line, read and checked."""
    items = users = candidates = recent = None
    if args.items:
        items = encode_attributes(read_attribute_file(args.items, "item_id"), "item_id")
    if args.users:
        users = encode_attributes(read_attribute_file(args.users, "user_id"), "user_id")
    if args.candidates:
        lines = [line.strip() for line in args.candidates.read_text(encoding="utf-8").splitlines()]
        candidates = list(dict.fromkeys(line for line in lines if line))
        if not candidates:
            raise ValueError(f"{args.candidates} holds no item id")
    if args.recent:
        recent = load_file(args.recent, args.sep)
    return Context(items, users, candidates, recent)


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
    parser.add_argument("--items", type=Path, help="item attributes CSV (item_id, columns...); with --recommend-out")
    parser.add_argument("--users", type=Path, help="user attributes CSV (user_id, columns...); with --recommend-out")
    parser.add_argument("--candidates", type=Path, help="one item id a line: lists hold only these")
    parser.add_argument("--recent", type=Path, help="events after PATH, same format: folded in, not retrained")
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
    context_given = any((args.items, args.users, args.candidates, args.recent))
    if args.recommend_out is None:
        if context_given:
            parser.error("--items, --users, --candidates and --recent go with --recommend-out")
        print(json.dumps(evaluate_file(args.path, args.sep, args.k, args.seed, spark, args.als)))
        return 0
    train = load_file(args.path, args.sep)
    config = zoo_config(args.k, args.seed, args.validation, args.spark, args.als)
    started = time.monotonic()
    if context_given:
        lists, record = recommend_in_context(train, config, read_context(args), spark)
    else:
        lists, _, record, _ = recommend(train, config, spark)
    lines = write_lists(lists, args.recommend_out)
    record |= {"users": len(lists), "lines": lines, "k": args.k, "seconds": round(time.monotonic() - started, 2)}
    print(f"{lines} lines for {len(lists)} users in {args.recommend_out}", file=sys.stderr)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
