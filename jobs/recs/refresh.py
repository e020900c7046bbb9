"""Today's events in the live lists without retraining: the hourly fold-in.

The live model (the run ``push.published_recommendations`` points at) was trained on events up
to its ``train_end``. Every hour, ``refresh_recommendations`` reads the clean events since then,
turns them into implicit ratings the way training does, merges them with the run's stored
ratings, folds the users who acted into the model (``zoo.fold_in``: factor models re-solve their
vectors with the item factors fixed; item-to-item models read the updated rows), and rebuilds
those users' lists with the daily path (``job.build_lists``), excluding what they bought or put
in their cart since. Their rows in the live run are replaced in one transaction, under the
publish lock, so readers see a user's old list or the new one. Other users' rows are untouched.

Re-running an hour gives the same rows (the same events, a seeded fold-in). A run for an hour
at or before the live model's ``train_end`` changes nothing: those events are already trained on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import copy_text, fetch_frame, make_engine
from jobs.ingest.lake import read_clean
from jobs.recs.job import PUBLISHED_COLUMNS, build_lists, catalogue, copy_text_rows, ratings_path, segments_of
from jobs.recs.ratings import implicit_ratings
from jobs.recs.topn import Recommendation
from jobs.recs.zoo import fold_in, load_fitted

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


def refresh_recommendations(spark: SparkSession, settings: Settings, at: datetime) -> dict:
    started = time.monotonic()
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        live = conn.execute(
            text(
                "SELECT m.run_id, m.algorithm, m.artifact_path, m.train_end, m.as_of, m.promoted"
                " FROM push.published_recommendations p JOIN push.model_runs m USING (run_id)"
            )
        ).one_or_none()
    if live is None or not live.promoted:
        return {"refreshed_users": 0, "why": "no promoted model is live"}
    since = live.train_end
    if at <= since:
        return {"run_id": live.run_id, "refreshed_users": 0, "why": f"no events after the model's {since}"}
    # The landing hours since training: what the model has not seen (late events included).
    # Cached: the ratings and the carts both read these hours, the lake once.
    events = read_clean(spark, settings, since, at).where(F.col("ts") < F.lit(at)).cache()
    try:
        recent = implicit_ratings(events, at, settings.half_life_days).toPandas()
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
