"""Daily profile and segment rebuild: clean events of the lookback window -> Postgres.

Searches count toward category affinity with a weight chosen on the window's last fifth
(``jobs.profiles.search``). Writes ``push.user_profiles`` and ``push.segments`` for one ``as_of`` date, replacing what an
earlier run for that date wrote. Two steps, so that each can be timed on its own
(``benchmarks.stages``): ``build_profiles`` computes and caches the profiles, and
``segment_and_store`` fits the segments and writes both tables.

CLI: ``python -m jobs.profiles.job --as-of 2026-11-25T00:00:00Z``.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import DataFrame, SparkSession
from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import copy_frame, make_engine
from jobs.core.spark import get_spark
from jobs.core.timeutil import parse_utc
from jobs.ingest.lake import lookback_events
from jobs.ingest.reference import read_items, read_users
from jobs.profiles.build import build_user_profiles
from jobs.profiles.search import query_shares, search_affinity, tune_search_weight
from jobs.profiles.segments import describe_segments, fit_segments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveProfiles:
    """Profiles of the users active in the lookback window, cached with the frames they came from."""

    items: DataFrame
    events: DataFrame
    profiles: DataFrame
    users: int
    search: dict

    def unpersist(self) -> None:
        for frame in (self.items, self.events, self.profiles):
            frame.unpersist()


def build_profiles(spark: SparkSession, settings: Settings, as_of: datetime) -> ActiveProfiles:
    """Profiles for ``as_of``, computed and cached (nothing stored yet). Raises when too few to segment."""
    items = read_items(spark, settings).cache()
    events = lookback_events(spark, settings, as_of).where(f"ts < '{as_of.isoformat()}'").cache()
    window_start = as_of - timedelta(days=settings.lookback_days)
    half_life = settings.half_life_days
    shares = query_shares(spark, events, items)
    weight, search = tune_search_weight(events, items, shares, window_start, as_of, half_life)
    searches = search_affinity(events, shares, as_of, half_life) if weight > 0 else None
    profiles = build_user_profiles(events, items, read_users(spark, settings), as_of, half_life, searches, weight)
    profiles = profiles.cache()
    active = ActiveProfiles(items, events, profiles, profiles.count(), search)
    if active.users < settings.kmeans_k_min + 1:
        # Nothing may stay cached on the way out: a later read of the same snapshot path in this
        # process would be answered from the cached frame, i.e. from an older snapshot.
        active.unpersist()
        raise RuntimeError(f"only {active.users} active users in the lookback window: too few to segment")
    return active


def segment_and_store(settings: Settings, as_of: datetime, active: ActiveProfiles) -> dict:
    """Fit the segments, then replace the date's profiles and segments in one transaction; return a summary."""
    try:
        items, profiles = active.items, active.profiles
        categories = sorted(r.category for r in items.select("category").distinct().collect())
        segments = fit_segments(profiles, categories, settings.kmeans_k_min, settings.kmeans_k_max, settings.seed)
        summaries = describe_segments(profiles, categories, segments.assignments, segments.silhouette).toPandas()
        frame = profiles.join(segments.assignments, "user_id").toPandas()
        summaries.insert(0, "as_of", as_of.date())
        with make_engine(settings.database_url).begin() as conn:
            params = {"d": as_of.date()}
            conn.execute(text("DELETE FROM push.user_profiles WHERE as_of = :d"), params)
            conn.execute(text("DELETE FROM push.segments WHERE as_of = :d"), params)
            copy_frame(conn, "push.user_profiles", frame)
            copy_frame(conn, "push.segments", summaries)
    finally:
        active.unpersist()  # on every way out, for the reason given in build_profiles
    summary = {
        "as_of": str(as_of.date()),
        "profiles": active.users,
        "k": segments.k,
        "silhouette": segments.silhouette,
        "silhouettes": segments.silhouettes,
        "search": active.search,
    }
    log.info("profiles: %s", summary)
    return summary


def run_profiles(spark: SparkSession, settings: Settings, as_of: datetime) -> dict:
    """Build profiles and segments for ``as_of`` and store them; return a summary."""
    return segment_and_store(settings, as_of, build_profiles(spark, settings, as_of))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as-of", type=parse_utc, required=True, help="end of the data window (exclusive)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    print(json.dumps(run_profiles(get_spark(settings), settings, args.as_of)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
