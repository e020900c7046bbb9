"""Today's events in the live lists without retraining: the hourly fold-in.

The live model (the run ``push.published_recommendations`` points at) was trained on events up
to its ``train_end``. Every hour, ``refresh_recommendations`` reads the clean events since then,
turns them into implicit ratings the way training does (with the run's intent weights), merges
them with the run's stored ratings, folds the users who acted into the model (``zoo.fold_in``:
factor models re-solve their vectors with the item factors fixed; item-to-item models read the
updated rows), and rebuilds
those users' lists with the daily path (``job.build_lists``), excluding what they bought or put
in their cart since. Their rows in the live run are replaced in one transaction, under the
publish lock, so readers see a user's old list or the new one. Other users' rows are untouched.

The streaming job calls ``refresh_user_lists`` for the users of each micro-batch, so a session
changes the lists within seconds; it reads the latest view, cart and purchase per pair kept in
PostgreSQL, and the next hourly refresh recounts from the lake.

Re-running an hour gives the same rows (the same events, a seeded fold-in). A run for an hour
at or before the live model's ``train_end`` changes nothing: those events are already trained on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import copy_text, fetch_frame, make_engine
from jobs.ingest.lake import read_clean
from jobs.recs.job import (
    PUBLISHED_COLUMNS,
    build_lists,
    catalogue,
    copy_text_rows,
    intent_of,
    ratings_path,
    segments_of,
)
from jobs.recs.ratings import (
    DWELL_EXPONENTS,
    EVIDENCE_TYPES,
    IntentWeights,
    dwell_column,
    implicit_ratings,
    ratings_from_evidence,
)
from jobs.recs.topn import Recommendation
from jobs.recs.zoo import FittedModel, fold_in, load_fitted

log = logging.getLogger(__name__)


def merge_ratings(stored: pd.DataFrame, recent: pd.DataFrame) -> pd.DataFrame:
    """The run's ratings plus the recent ones: per pair the stronger rating, summed evidence."""
    if recent.empty:
        return stored
    both = pd.concat([stored, recent[stored.columns]], ignore_index=True)
    merged = both.groupby(["user_id", "item_id"], as_index=False, sort=True).agg(
        rating=("rating", "max"), evidence=("evidence", "sum"), bought=("bought", "max"), last_ts=("last_ts", "max")
    )
    return merged[stored.columns]


_LIVE_RUN = (
    "SELECT m.run_id, m.algorithm, m.artifact_path, m.train_end, m.as_of, m.promoted, m.params"
    " FROM push.published_recommendations p JOIN push.model_runs m USING (run_id)"
)


def refresh_recommendations(spark: SparkSession, settings: Settings, at: datetime) -> dict:
    started = time.monotonic()
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        live = conn.execute(text(_LIVE_RUN)).one_or_none()
    if live is None or not live.promoted:
        return {"refreshed_users": 0, "why": "no promoted model is live"}
    since = live.train_end
    if at <= since:
        return {"run_id": live.run_id, "refreshed_users": 0, "why": f"no events after the model's {since}"}
    # The landing hours since training: what the model has not seen (late events included).
    # Cached: the ratings and the carts both read these hours, the lake once.
    events = read_clean(spark, settings, since, at).where(F.col("ts") < F.lit(at)).cache()
    try:
        recent = implicit_ratings(events, at, settings.half_life_days, intent_of(live.params))
        carted_rows = (
            events.where((F.col("event_type") == "add_to_cart") & F.col("item_id").isNotNull())
            .select("user_id", "item_id")
            .distinct()
            .toPandas()
        )
    finally:
        events.unpersist()
    with engine.connect() as conn:
        known = set(fetch_frame(conn, "SELECT user_id FROM push.users")["user_id"])
        items = catalogue(conn)
        segments = segments_of(conn, live.as_of)
    users = sorted(set(recent["user_id"]) & known)
    if not users:
        return {"run_id": live.run_id, "refreshed_users": 0, "why": "no known user acted since the model"}
    ratings = merge_ratings(pd.read_parquet(ratings_path(settings, live.run_id)), recent)
    fitted = fold_in(load_fitted(live.artifact_path), ratings, users, settings.seed)
    fold_seconds = time.monotonic() - started
    carted = carted_rows.groupby("user_id")["item_id"].agg(set).to_dict()
    lists = build_lists(settings, live.run_id, fitted, live.algorithm, ratings, items, segments, users, carted)
    replace_user_lists(engine, live.run_id, users, lists)
    summary = {
        "run_id": live.run_id,
        "since": since.isoformat(),
        "refreshed_users": len(users),
        "recent_pairs": len(recent),
        "rows": len(lists),
    }
    log.info("refreshed: %s in %.2f s (fold-in and reading %.2f s)", summary, time.monotonic() - started, fold_seconds)
    return summary


@dataclass
class LiveModel:
    """The live run as the stream's refresh needs it, loaded once per run (not per batch)."""

    run_id: str
    algorithm: str
    artifact_path: str
    train_end: datetime
    intent: IntentWeights
    fitted: FittedModel
    ratings: pd.DataFrame
    segments: pd.DataFrame


_loaded: dict[tuple[str, str], LiveModel] = {}


def live_model(engine, settings: Settings) -> LiveModel | None:
    """The promoted live run, from the process's cache while ``push.published_recommendations`` points at it."""
    with engine.connect() as conn:
        live = conn.execute(text(_LIVE_RUN)).one_or_none()
        if live is None or not live.promoted:
            return None
        key = (live.run_id, live.artifact_path)
        if key not in _loaded:
            _loaded.clear()
            _loaded[key] = LiveModel(
                live.run_id,
                live.algorithm,
                live.artifact_path,
                live.train_end,
                intent_of(live.params),
                load_fitted(live.artifact_path),
                pd.read_parquet(ratings_path(settings, live.run_id)),
                segments_of(conn, live.as_of),
            )
    return _loaded[key]


# Each pair's latest view, cart and purchase (what push.recent_interactions keeps), by event type.
_LATEST = {"view": "last_viewed_at", "add_to_cart": "last_carted_at", "purchase": "last_purchased_at"}


def latest_evidence(latest: pd.DataFrame, since: datetime, at: datetime, half_life_days: float) -> pd.DataFrame:
    """Pair evidence (as ``ratings.pair_evidence``) from each pair's latest view, cart and purchase
    in [since, at]: one decayed event of each kind at most, and a view counts at the reference dwell."""
    out = latest[["user_id", "item_id"]].reset_index(drop=True)
    last = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    for kind in EVIDENCE_TYPES:
        out[f"e_{kind}"] = 0.0
    for kind, column in _LATEST.items():
        when = pd.to_datetime(latest[column], utc=True).reset_index(drop=True)
        inside = when.notna() & (when >= since) & (when <= at)
        age_days = ((at - when).dt.total_seconds() / 86400.0).clip(lower=0.0)
        out[f"e_{kind}"] = np.where(inside, 0.5 ** (age_days / half_life_days), 0.0)
        last = last.where(~inside | (last.notna() & (last >= when)), when)
    for exponent in DWELL_EXPONENTS:
        if exponent > 0:
            out[dwell_column(exponent)] = out["e_view"]
    out["bought"] = out["e_purchase"] > 0
    out["last_ts"] = last.dt.tz_convert(None)  # naive UTC, as Spark gives the stored ratings
    return out[last.notna()].reset_index(drop=True)


def refresh_user_lists(settings: Settings, users: Sequence[str], at: datetime) -> dict:
    """The stream's refresh: fold ``users``' activity since the live model's training into their lists.

    Reads each pair's latest view, cart and purchase from ``push.recent_interactions`` (which the
    stream has just advanced) rather than the lake, so a micro-batch costs one query and a
    fold-in per user; the hourly refresh recounts every event from the lake and replaces these
    rows. Items the users carted or bought since training leave their lists at once.
    """
    started = time.monotonic()
    engine = make_engine(settings.database_url)
    live = live_model(engine, settings)
    if live is None or not users:
        return {"refreshed_users": 0}
    since = live.train_end
    with engine.connect() as conn:
        latest = fetch_frame(
            conn,
            "SELECT r.user_id, r.item_id, r.last_viewed_at, r.last_carted_at, r.last_purchased_at"
            " FROM push.recent_interactions r JOIN push.users u USING (user_id) WHERE r.user_id = ANY(:users)"
            " AND greatest(r.last_viewed_at, r.last_carted_at, r.last_purchased_at) >= :since",
            {"users": list(users), "since": since},
        )
        items = catalogue(conn)
    recent = ratings_from_evidence(latest_evidence(latest, since, at, settings.half_life_days), live.intent)
    acting = sorted(set(recent["user_id"]))
    if not acting:
        return {"refreshed_users": 0}
    theirs = live.ratings["user_id"].isin(set(acting))
    ratings = pd.concat([live.ratings[~theirs], merge_ratings(live.ratings[theirs], recent)], ignore_index=True)
    fitted = fold_in(live.fitted, ratings, acting, settings.seed)
    carted = latest[latest["last_carted_at"].notna() & (pd.to_datetime(latest["last_carted_at"], utc=True) >= since)]
    carted_by_user = carted.groupby("user_id")["item_id"].agg(set).to_dict()
    lists = build_lists(
        settings, live.run_id, fitted, live.algorithm, ratings, items, live.segments, acting, carted_by_user
    )
    replace_user_lists(engine, live.run_id, acting, lists)
    return {"refreshed_users": len(acting), "seconds": round(time.monotonic() - started, 3)}


def replace_user_lists(engine, run_id: str, users: Sequence[str], lists: Sequence[Recommendation]) -> None:
    """Replace ``users``' rows of run ``run_id`` in one transaction, under the publish lock."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('push.publish_recommendations'))"))
        conn.execute(
            text("DELETE FROM push.recommendations WHERE run_id = :r AND user_id = ANY(:u)"),
            {"r": run_id, "u": list(users)},
        )
        rendered = copy_text_rows(lists)
        rows = "".join(f"{run_id}\t{line}\n" for line in rendered.splitlines())
        copy_text(conn, "push.recommendations", ["run_id", *PUBLISHED_COLUMNS], [rows])
