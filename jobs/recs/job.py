"""Daily recommendation stages: tune + train + evaluate + gate, then publish top-N atomically.

``train_and_evaluate`` builds implicit ratings, cuts a per-user chronological hold-out, and
hands the training part alone to the model zoo (``jobs.recs.zoo``: Surprise SVD with sampled
negatives, or Spark ALS; EASE; item-kNN on Spark; the blend of the best two), which tunes each
family and chooses one by NDCG@k on a validation split of its own. Every candidate is then
fitted on the training part and evaluated on the hold-out next to a popularity baseline; the
promotion gate judges the chosen one, and the run is recorded in ``push.model_runs`` (params
with the selection record, window, metrics of every candidate, artifact). The chosen model is
refitted on all the window's ratings for publishing. ``publish_recommendations`` scores every
user with the promoted model (or, before any model was ever promoted, ranks by popularity) and
swaps the new set in with one transaction (COPY into a staging table, attached as the run's
partition of ``push.recommendations``); each row's ``source`` names the model that ranked it.
Run ids are derived from the logical date, so re-running a date replaces its own rows.

CLI: ``python -m jobs.recs.job train|publish --as-of 2026-11-25T00:00:00Z``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import copy_text, copy_text_field, fetch_frame, make_engine
from jobs.core.spark import get_spark
from jobs.core.timeutil import parse_utc
from jobs.ingest.lake import lookback_events
from jobs.recs.als import AlsParams
from jobs.recs.attributes import AttributeTable, encode_attributes
from jobs.recs.coldstart import (
    HybridItemScorer,
    fit_attribute_columns,
    fit_demographic_prior,
    load_item_cold,
    new_item_picks,
    save_item_cold,
    tune_new_items,
    tune_new_users,
)
from jobs.recs.evaluate import evaluate_popularity
from jobs.recs.intent import tune_intent
from jobs.recs.item_models import EaseParams, ItemKnnParams, fit_ease
from jobs.recs.ratings import (
    IntentWeights,
    chronological_split,
    of_pairs,
    pair_evidence,
    ratings_from_evidence,
    with_sampled_negatives,
)
from jobs.recs.topn import Recommendation, assemble_top_n
from jobs.recs.train import SvdParams, tune_svd
from jobs.recs.zoo import (
    BLEND,
    FittedModel,
    ZooConfig,
    evaluate_fitted,
    fit_candidates,
    fit_spec,
    item_universe,
    load_fitted,
    ranked_lists,
    select_models,
    store_fitted,
)

log = logging.getLogger(__name__)
TRAINERS = ("svd", "als")
TUNING = ("ndcg", "config", "grid")
# ``push.model_runs.algorithm`` of runs trained before the model zoo, and the source they publish.
LEGACY_SOURCES = {"surprise_svd": "svd", "spark_als": "als"}


def run_id_for(as_of: datetime) -> str:
    return f"svd-{as_of:%Y%m%dT%H%M}"


def svd_params(settings: Settings) -> SvdParams:
    return SvdParams(
        settings.svd_factors,
        settings.svd_epochs,
        settings.svd_lr,
        settings.svd_reg,
        settings.seed,
        settings.svd_negative_ratio,
        settings.svd_popularity_exponent,
    )


def als_params(settings: Settings) -> AlsParams:
    return AlsParams(settings.als_rank, settings.als_iterations, settings.als_reg, settings.als_alpha, settings.seed)


def zoo_config(
    settings: Settings, train: pd.DataFrame, catalogue: list[str], history_power: float = 0.0
) -> tuple[ZooConfig, dict]:
    """What the zoo tries, from configuration (SVD parameters by GridSearchCV on ``train`` if asked);
    item models read users' rows with ``history_power`` (see ``jobs.recs.intent``)."""
    if settings.recs_trainer not in TRAINERS:
        raise ValueError(f"PUSH_RECS_TRAINER must be one of {list(TRAINERS)}, got {settings.recs_trainer!r}")
    if settings.svd_tuning not in TUNING:
        raise ValueError(f"PUSH_SVD_TUNING must be one of {list(TUNING)}, got {settings.svd_tuning!r}")
    known = {"svd", "ease", "item_knn", BLEND}
    unknown = set(settings.recs_models) - known
    if unknown:
        raise ValueError(f"PUSH_RECS_MODELS: unknown {sorted(unknown)}; choose from {sorted(known)}")
    families = tuple(
        settings.recs_trainer if family == "svd" else family for family in settings.recs_models if family != BLEND
    )
    params = svd_params(settings)
    record: dict = {}
    if settings.svd_tuning == "grid" and "svd" in families:
        negatives = with_sampled_negatives(
            train, catalogue, params.negative_ratio, params.random_state, params.popularity_exponent
        )
        params, record["grid_search"] = tune_svd(negatives, params, settings.svd_grid, settings.svd_grid_folds)
    config = ZooConfig(
        families=families,
        blend=BLEND in settings.recs_models,
        tune=settings.svd_tuning == "ndcg",
        svd=params,
        als=als_params(settings),
        ease=EaseParams(settings.ease_lambda_scale, settings.ease_max_items, history_power),
        item_knn=replace(ItemKnnParams(), neighbours=settings.knn_neighbours, history_power=history_power),
        k=settings.eval_k,
        seed=settings.seed,
        tuning_users=settings.tuning_users,
    )
    return config, record


def intent_of(params: Mapping | None) -> IntentWeights:
    """The intent weights a model run chose (the defaults for runs from before they were tuned)."""
    return IntentWeights.from_dict((params or {}).get("intent", {}).get("weights"))


def ratings_path(settings: Settings, run_id: str):
    return settings.models_dir / run_id / "ratings.parquet"


def _new_items_path(settings: Settings, run_id: str):
    return settings.models_dir / run_id / "new-items.npz"


# The catalogue's attributes the new-item model learns from (price is cut into bands).
ITEM_ATTRIBUTES = ("category", "brand", "price")


def catalogue_attributes(items: pd.DataFrame) -> AttributeTable:
    columns = ["item_id", *[c for c in ITEM_ATTRIBUTES if c in items.columns]]
    frame = items[columns].astype(object).where(items[columns].notna(), "").astype(str)
    return encode_attributes(frame, "item_id")


def fit_new_item_model(
    train: pd.DataFrame, ratings: pd.DataFrame, attributes: AttributeTable, config: ZooConfig, path
) -> dict:
    """The new-item model: weights chosen on ``train`` (warm items playing new ones), fitted on ``ratings``.

    EASE provides the columns the attributes are regressed on when the catalogue fits its size
    limit; above it, the content profile (no base) is used.
    """
    item_count = ratings.loc[ratings["rating"] > 0, "item_id"].nunique()
    ease = config.ease if item_count <= config.ease.max_items else None
    params, record = tune_new_items(train, attributes, ease, config.k, config.seed)
    base = fit_ease(ratings, ease) if ease is not None else None
    positives = ratings[ratings["rating"] > 0]
    history_ids = base.item_ids if base is not None else np.array(sorted(positives["item_id"].unique()), dtype=object)
    cold = fit_attribute_columns(base, history_ids, positives["item_id"].value_counts(), attributes, params)
    save_item_cold(cold, base, path)
    record.pop("trials", None)
    return record


def evaluate_candidates(
    train: pd.DataFrame,
    test: pd.DataFrame,
    config: ZooConfig,
    catalogue: list[str],
    category_of: dict[str, str] | None = None,
    spark: SparkSession | None = None,
) -> tuple[dict, dict, dict, dict[str, FittedModel]]:
    """Select on ``train`` alone, then score every candidate and popularity on ``test``.

    Returns (metrics of the chosen model with every candidate's under ``candidates``, the
    popularity baseline's metrics, a record of the selection and its seconds, the candidates
    fitted on ``train``). ``test`` is read only after every model is fitted.
    """
    k = config.k
    selection = select_models(train, catalogue, config, spark)
    started = time.monotonic()
    fitted = fit_candidates(selection, train, catalogue, spark)
    fit_seconds = time.monotonic() - started
    candidates = {
        model.spec.label: evaluate_fitted(model, train, test, k, catalogue, category_of) for model in fitted.values()
    }
    chosen = fitted[selection.chosen]
    metrics = candidates[chosen.spec.label] | {"model": chosen.spec.label, "candidates": candidates}
    baseline = evaluate_popularity(train, test, k, len(catalogue), category_of)
    record = {
        "model": chosen.spec.to_dict(),
        "selection": selection.record,
        "fit_seconds": round(fit_seconds, 2),
        "chosen_spec": selection.candidates[selection.chosen],
    }
    return metrics, baseline, record, fitted


def gate(candidate: dict, baseline: dict, current: dict | None, k: int, tolerance: float) -> tuple[bool, str]:
    """Promote unless NDCG@k is worse than the popularity baseline's or the live model's beyond ``tolerance``.

    Both comparisons are relative (``tolerance`` 0.05 = up to 5 % lower passes). The baseline is
    measured on the same hold-out as the candidate; the live model's figure is the one recorded
    when it was promoted (``current``). A refused model leaves the live recommendations as they
    are; with no model promoted before it (``current`` is None), the date publishes popularity
    recommendations instead (see ``publish_recommendations``), so every user still has exactly N.
    """
    key = f"ndcg@{k}"
    floor = 1.0 - tolerance
    if candidate[key] + 1e-12 < baseline[key] * floor:
        below = f"{key} {candidate[key]:.4f} < popularity {baseline[key]:.4f} - {tolerance:.0%}"
        if current is None:
            return False, f"refused: {below}; no model promoted yet, popularity recommendations published instead"
        return False, f"kept live model: {below}"
    versus_baseline = f"{key} {candidate[key]:.4f} vs popularity {baseline[key]:.4f}"
    if current is None:
        return True, f"promoted: no live model; {versus_baseline}"
    if candidate[key] + 1e-12 < current[key] * floor:
        return False, f"kept live model: {key} {candidate[key]:.4f} < live {current[key]:.4f} - {tolerance:.0%}"
    return True, f"promoted: {versus_baseline}, live {current[key]:.4f}"


def train_and_evaluate(spark: SparkSession, settings: Settings, as_of: datetime) -> dict:
    run_id = run_id_for(as_of)
    window_start = as_of - timedelta(days=settings.lookback_days)
    events = lookback_events(spark, settings, as_of).where(f"ts < '{as_of.isoformat()}'")
    evidence = pair_evidence(events, as_of, settings.half_life_days)
    if evidence.empty:
        raise RuntimeError(f"no interactions between {window_start} and {as_of}: nothing to train on")
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        items = fetch_frame(conn, "SELECT item_id, category, brand, price FROM push.items ORDER BY item_id")
        current = conn.execute(
            text("SELECT metrics FROM push.model_runs WHERE promoted AND as_of < :d ORDER BY as_of DESC LIMIT 1"),
            {"d": as_of.date()},
        ).scalar_one_or_none()
    catalogue = items["item_id"].tolist()
    category_of = dict(zip(items["item_id"], items["category"], strict=True))
    # The hold-out cuts pairs by time alone, so it is the same whatever the intent weights.
    train_pairs, _ = chronological_split(ratings_from_evidence(evidence))
    intent, history_power, intent_record = tune_intent(
        of_pairs(evidence, train_pairs),
        EaseParams(settings.ease_lambda_scale, settings.ease_max_items),
        replace(ItemKnnParams(), neighbours=settings.knn_neighbours),
        settings.eval_k,
        settings.seed,
        settings.tuning_users,
        catalogue,
    )
    ratings = ratings_from_evidence(evidence, intent)
    train, test = chronological_split(ratings)
    config, params_record = zoo_config(settings, train, catalogue, history_power)
    params_record["intent"] = intent_record
    metrics, baseline, selected, _ = evaluate_candidates(train, test, config, catalogue, category_of, spark)
    spec = selected.pop("chosen_spec")
    params_record |= selected
    promoted, decision = gate(metrics, baseline, current, settings.eval_k, settings.promotion_tolerance)
    popularity_fallback = not promoted and current is None
    started = time.monotonic()
    final = fit_spec(spec, ratings, catalogue, spark)
    params_record["final_fit_seconds"] = round(time.monotonic() - started, 2)
    artifact = store_fitted(final, settings.models_dir / run_id)
    profiled = _profiled_users(engine)
    if not profiled.empty:
        # Numbers only: the validation record never holds a user's demographics.
        _, params_record["new_users"] = tune_new_users(train, user_attributes(profiled), config.k, config.seed)
    if settings.new_item_slots > 0:
        started = time.monotonic()
        params_record["new_items"] = fit_new_item_model(
            train, ratings, catalogue_attributes(items), config, _new_items_path(settings, run_id)
        )
        params_record["new_items"]["fit_seconds"] = round(time.monotonic() - started, 2)
    # Seconds go to the log, not to the table: a re-run of the date must leave the row identical.
    timings = _pop_seconds(params_record)
    ratings.to_parquet(ratings_path(settings, run_id), index=False)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.model_runs (run_id, as_of, algorithm, params, train_start, train_end, metrics,"
                " baseline_metrics, artifact_path, promoted, decision, popularity_fallback) VALUES (:run_id, :as_of,"
                " :algo, CAST(:params AS jsonb), :start, :end, CAST(:metrics AS jsonb), CAST(:baseline AS jsonb),"
                " :artifact, :promoted, :decision, :fallback) ON CONFLICT (run_id) DO UPDATE SET params = EXCLUDED.params,"
                " train_start = EXCLUDED.train_start, train_end = EXCLUDED.train_end, metrics = EXCLUDED.metrics,"
                " baseline_metrics = EXCLUDED.baseline_metrics, artifact_path = EXCLUDED.artifact_path,"
                " promoted = EXCLUDED.promoted, decision = EXCLUDED.decision,"
                " popularity_fallback = EXCLUDED.popularity_fallback"
            ),
            {
                "run_id": run_id,
                "as_of": as_of.date(),
                "algo": spec.label,
                "params": json.dumps(params_record),
                "start": window_start,
                "end": as_of,
                "metrics": json.dumps(_rounded(metrics)),
                "baseline": json.dumps(_rounded(baseline)),
                "artifact": artifact,
                "promoted": promoted,
                "decision": decision,
                "fallback": popularity_fallback,
            },
        )
    summary = {
        "run_id": run_id,
        "algorithm": spec.label,
        "ratings": len(ratings),
        "train": len(train),
        "test": len(test),
        "metrics": _rounded(metrics),
        "baseline": _rounded(baseline),
        "promoted": promoted,
        "popularity_fallback": popularity_fallback,
        "decision": decision,
        "seconds": timings,
    }
    log.info("model run: %s", summary)
    return summary


def _pop_seconds(record: dict, prefix: str = "") -> dict:
    """Remove every ``*seconds`` entry of ``record`` (nested too) and return them flattened."""
    found = {}
    for key in list(record):
        if key.endswith("seconds"):
            found[prefix + key] = record.pop(key)
        elif isinstance(record[key], dict):
            found |= _pop_seconds(record[key], f"{prefix}{key}.")
    return found


def _rounded(metrics: dict) -> dict:
    return {
        k: (round(v, 6) if isinstance(v, float) else _rounded(v) if isinstance(v, dict) else v)
        for k, v in metrics.items()
    }


def publish_recommendations(settings: Settings, as_of: datetime) -> dict:
    """Score every user with this date's model and swap the set in, if the model was promoted.

    A refused model publishes nothing while an earlier date's model was promoted: that model's
    set stays live. If none was when the run was trained (a first run on little data, say), the
    run's ``popularity_fallback`` is set and the date publishes popularity recommendations
    (segment, then global) so that every user still has N. Publishing follows what training
    recorded, so re-running this task alone gives the same tables; like the gate's comparison
    with the live model, it depends on which earlier dates had been trained before this one.
    """
    run_id = run_id_for(as_of)
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        run = conn.execute(
            text(
                "SELECT promoted, popularity_fallback, artifact_path, algorithm, params FROM push.model_runs"
                " WHERE run_id = :r"
            ),
            {"r": run_id},
        ).one_or_none()
        if run is None:
            raise RuntimeError(f"model run {run_id} not found: run the training task first")
        if not (run.promoted or run.popularity_fallback):
            log.info("model run %s was not promoted; the live recommendations stay as they are", run_id)
            return {"run_id": run_id, "published": False, "users": 0}
        popularity_only = not run.promoted
        users = fetch_frame(conn, "SELECT user_id FROM push.users ORDER BY user_id")["user_id"].tolist()
        items = catalogue(conn)
        segments = segments_of(conn, as_of.date())
    ratings = pd.read_parquet(ratings_path(settings, run_id))
    if popularity_only:
        log.info("model run %s was refused with no model promoted before: publishing popularity", run_id)
    fitted = None if popularity_only else load_fitted(run.artifact_path)

    prior = _demographic_lists(engine, run.params.get("new_users"), ratings, items, users, settings.top_n * 2)
    recommendations = build_lists(settings, run_id, fitted, run.algorithm, ratings, items, segments, users, prior=prior)
    live = write_recommendations(engine, run_id, as_of.date(), recommendations)
    by_source = pd.Series([r.source for r in recommendations]).value_counts().to_dict()
    summary = {
        "run_id": run_id,
        "published": True,
        "model": not popularity_only,
        "live": live,
        "users": len(users),
        "rows": len(recommendations),
        "by_source": by_source,
    }
    log.info("published: %s", summary)
    return summary


def build_lists(
    settings: Settings,
    run_id: str,
    fitted: FittedModel | None,
    algorithm: str,
    ratings: pd.DataFrame,
    items: pd.DataFrame,
    segments: pd.DataFrame,
    users: Sequence[str],
    carted: Mapping[str, set[str]] | None = None,
    prior: Mapping[str, list[str]] | None = None,
) -> list[Recommendation]:
    """Exactly N recommendations for each of ``users`` from ``fitted`` (None: popularity only).

    Bought items (and ``carted`` ones: a refresh's just-carted items) are excluded; out-of-stock
    and unknown items never appear; new arrivals take their places (``_new_item_lists``); then
    segment and global popularity fill up; before them, a new user's ``prior`` (the demographic
    prior's list, for users who consented to profiling).
    """
    ratings = ratings.copy()
    bought = ratings[ratings["bought"]].groupby("user_id")["item_id"].agg(set).to_dict()
    for user, items_carted in (carted or {}).items():
        bought[user] = bought.get(user, set()) | set(items_carted)
    # Out of stock, or unknown to the catalogue (seen in events only): never recommended. The
    # popularity lists below keep catalogue items only, so only the model's items need checking.
    unavailable = set(items.loc[~items["in_stock"], "item_id"])
    universe = item_universe(ratings, items["item_id"])
    unavailable |= set(universe) - set(items["item_id"])
    category_of = dict(zip(items["item_id"], items["category"], strict=True))
    title_of = dict(zip(items["item_id"], items["title"], strict=True))
    segment_of = dict(zip(segments["user_id"], segments["segment"], strict=True))
    available = ratings[~ratings["item_id"].isin(unavailable) & ratings["item_id"].isin(category_of)]
    global_popular = _popular(available) + sorted(
        set(items.loc[items["in_stock"], "item_id"]) - set(available["item_id"])
    )
    with_segment = available.assign(segment=available["user_id"].map(segment_of)).dropna(subset=["segment"])
    segment_popular = {int(s): _popular(group) for s, group in with_segment.groupby("segment")}
    ratings["category"] = ratings["item_id"].map(category_of)
    strongest = ratings.sort_values(["evidence", "item_id"], ascending=[False, True], kind="stable")
    anchors = strongest.groupby(["user_id", "category"], sort=False).head(2)
    reason_items = anchors.groupby(["user_id", "category"], sort=False)["item_id"].agg(list).to_dict()

    candidates = (
        {}
        if fitted is None
        else ranked_lists(fitted, ratings, universe, users, bought, unavailable, settings.top_n * 4)
    )
    fresh = (
        {}
        if fitted is None
        else _new_item_lists(settings, run_id, ratings, items, users, bought, unavailable, category_of)
    )
    return assemble_top_n(
        users,
        candidates,
        segment_of,
        segment_popular,
        global_popular,
        bought,
        category_of,
        reason_items,
        title_of,
        settings.top_n,
        settings.max_per_category,
        model_source=LEGACY_SOURCES.get(algorithm, algorithm),
        new_items=fresh,
        prior_lists=prior,
    )


# Users whose demographics may be used: they consented to profiling and gave at least one.
_PROFILED_USERS = (
    "SELECT user_id, coalesce(age_band, '') AS age_band, coalesce(gender, '') AS gender,"
    " coalesce(region, '') AS region FROM push.users"
    " WHERE consent_profiling AND num_nonnulls(age_band, gender, region) > 0 ORDER BY user_id"
)


def _profiled_users(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        return fetch_frame(conn, _PROFILED_USERS)


def user_attributes(profiled: pd.DataFrame) -> AttributeTable:
    return encode_attributes(profiled[["user_id", "age_band", "gender", "region"]], "user_id")


def _demographic_lists(engine, record: dict | None, ratings, items, users, size: int) -> dict[str, list[str]]:
    """For consenting users with no interaction in the window: similar users' items, mixed with popularity.

    Uses the neighbours and weight the training run chose (``params.new_users``); weight 0 (no
    help found on validation) or no record publishes nothing here, so popularity fills the list.
    """
    chosen = (record or {}).get("chosen") or {}
    if not chosen.get("weight"):
        return {}
    profiled = _profiled_users(engine)
    active = set(ratings["user_id"])
    cold = [user for user in profiled["user_id"] if user not in active and user in set(users)]
    if not cold:
        return {}
    attributes = user_attributes(profiled)
    available = np.array(sorted(items.loc[items["in_stock"], "item_id"]), dtype=object)
    prior = fit_demographic_prior(ratings, attributes, available, int(chosen["neighbours"]), float(chosen["weight"]))
    scores = prior.scores(attributes.rows(cold))
    order = np.argsort(-scores, axis=1, kind="stable")[:, :size]
    return {user: available[order[row]].tolist() for row, user in enumerate(cold)}


def _new_item_lists(settings, run_id, ratings, items, users, bought, unavailable, category_of) -> dict:
    """Items with no interactions in the window that the new-item model puts in users' top N.

    The hybrid scores warm and new items on one scale (``coldstart.HybridItemScorer``); a new
    item takes a place only where it beats all but N - 1 of the user's available items. The
    reason names the category, and the brand when the user bought or viewed it.
    """
    path = _new_items_path(settings, run_id)
    available = items.loc[items["in_stock"] & ~items["item_id"].isin(unavailable), "item_id"]
    new = set(available) - set(ratings["item_id"])
    if settings.new_item_slots <= 0 or not new or not path.exists():
        return {}
    cold, base = load_item_cold(path)
    positives = ratings[ratings["rating"] > 0]
    universe = np.array(sorted(set(available)), dtype=object)
    scorer = HybridItemScorer(
        cold, base, catalogue_attributes(items), positives["item_id"].value_counts(), positives, universe
    )
    seen = ratings.groupby("user_id")["item_id"].agg(set).to_dict()
    active = [user for user in users if user in seen]
    picks = new_item_picks(scorer, active, new, seen, settings.top_n, settings.new_item_slots)
    brand_of = dict(zip(items["item_id"], items["brand"], strict=True))
    liked = ratings.assign(brand=ratings["item_id"].map(brand_of)).groupby("user_id")["brand"].agg(set).to_dict()
    bought_brands = {user: {brand_of.get(item) for item in got} for user, got in bought.items()}
    out = {}
    for user, chosen in picks.items():
        rows = []
        for item, place, score in chosen:
            reason = f"new in {category_of.get(item, 'the shop')}"
            brand = brand_of.get(item)
            if brand and brand in bought_brands.get(user, set()):
                reason += ", a brand you bought"
            elif brand and brand in liked.get(user, set()):
                reason += ", a brand you viewed"
            rows.append((item, place, float(score), reason))
        out[user] = rows
    return out


PUBLISHED_COLUMNS = ["user_id", "rank", "item_id", "score", "source", "reason"]
COPY_CHUNK_ROWS = 50_000


def write_recommendations(engine, run_id: str, published_for: date, recommendations: Sequence[Recommendation]) -> bool:
    """Publish ``recommendations`` as model run ``run_id``: COPY into a staging table, then swap.

    One transaction: ``push.stage_recommendations`` creates the staging table, COPY fills it,
    ``push.swap_in_recommendations`` indexes it and attaches it as the run's partition (a run
    published before has its rows replaced in place instead), and makes the run live unless a
    newer date already is. Readers see the old set or the new one, never an empty or mixed one
    (migration 0016 says why the swap is done this way); a publish killed midway leaves the live
    set and the table as they were. Publishes run one at a time. Returns whether the run is now live.
    """
    with engine.begin() as conn:
        staging = conn.execute(text("SELECT push.stage_recommendations(:r)"), {"r": run_id}).scalar_one()
        chunks = (
            copy_text_rows(recommendations[start : start + COPY_CHUNK_ROWS])
            for start in range(0, len(recommendations), COPY_CHUNK_ROWS)
        )
        copy_text(conn, staging, PUBLISHED_COLUMNS, chunks)
        return conn.execute(
            text("SELECT push.swap_in_recommendations(:r, :d)"), {"r": run_id, "d": published_for}
        ).scalar_one()


def copy_text_rows(recommendations: Sequence[Recommendation]) -> str:
    """Rows in COPY's text format, in the order of ``PUBLISHED_COLUMNS``.

    Rendered without escaping first; only if a text field holds a tab, newline, carriage return
    or backslash (the separators then do not add up) is the chunk rendered again, escaped.
    """
    rendered = "".join(
        [f"{r.user_id}\t{r.rank}\t{r.item_id}\t{r.score!r}\t{r.source}\t{r.reason}\n" for r in recommendations]
    )
    fields = len(PUBLISHED_COLUMNS)
    if (
        rendered.count("\n") == len(recommendations)
        and rendered.count("\t") == len(recommendations) * (fields - 1)
        and "\\" not in rendered
        and "\r" not in rendered
    ):
        return rendered
    e = copy_text_field
    return "".join(
        [
            f"{e(r.user_id)}\t{r.rank}\t{e(r.item_id)}\t{r.score!r}\t{e(r.source)}\t{e(r.reason)}\n"
            for r in recommendations
        ]
    )


def catalogue(conn) -> pd.DataFrame:
    """The catalogue as list building needs it (titles for reasons, brands, stock)."""
    return fetch_frame(conn, "SELECT item_id, title, category, brand, price, in_stock FROM push.items ORDER BY item_id")


def segments_of(conn, as_of: date) -> pd.DataFrame:
    return fetch_frame(conn, "SELECT user_id, segment FROM push.user_profiles WHERE as_of = :d", {"d": as_of})


def _popular(ratings: pd.DataFrame) -> list[str]:
    counts = ratings.groupby("item_id")["user_id"].nunique()
    return sorted(counts.index, key=lambda item: (-counts[item], item))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["train", "publish"])
    parser.add_argument("--as-of", type=parse_utc, required=True)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.stage == "train":
        result = train_and_evaluate(get_spark(settings), settings, args.as_of)
    else:
        result = publish_recommendations(settings, args.as_of)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
