"""Recent intent: per user, the items viewed (or clicked) or carted in the last hour and the last
24 hours and not bought since.

Two routes to the same answer:

- :func:`recent_intent` recomputes it in Spark from the events of the longest window;
- :func:`refresh_recent_intent`, the hourly refresh, derives it in PostgreSQL from
  ``push.recent_interactions`` (each user's latest view, cart and purchase time per item), which
  the hourly run already advances with that hour's events (merged with ``greatest``), so the
  refresh reads no event history. Run in time order, both give identical rows (tested hour by
  hour); a purchase recorded after ``until`` (a run replayed for an earlier hour) is the one
  case where the refresh, which only keeps the latest times, is stricter.

CLI: ``python -m jobs.profiles.intent --at 2026-11-25T10:00:00Z``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from sqlalchemy import Connection, text

from jobs.core.config import Settings
from jobs.core.db import load_query, make_engine
from jobs.core.timeutil import parse_utc
from jobs.profiles.interactions import recent_interactions

log = logging.getLogger(__name__)

INTENT_WINDOWS_HOURS = (1, 24)


def recent_intent(events: DataFrame, until: datetime, windows_hours: Sequence[int] = INTENT_WINDOWS_HOURS) -> DataFrame:
    """(user_id, window_hours, item_id, last_viewed_at, last_carted_at) from ``events`` before ``until``."""
    since = until - timedelta(hours=max(windows_hours))
    latest = recent_interactions(events.where((F.col("ts") >= F.lit(since)) & (F.col("ts") < F.lit(until))))
    frames = []
    for hours in windows_hours:
        start = F.lit(until - timedelta(hours=hours))
        viewed = F.when(F.col("last_viewed_at") >= start, F.col("last_viewed_at"))
        carted = F.when(F.col("last_carted_at") >= start, F.col("last_carted_at"))
        frames.append(
            latest.select(
                "user_id",
                F.lit(hours).alias("window_hours"),
                "item_id",
                viewed.alias("last_viewed_at"),
                carted.alias("last_carted_at"),
                "last_purchased_at",
            )
        )
    interest = F.greatest("last_viewed_at", "last_carted_at")
    union = frames[0]
    for frame in frames[1:]:
        union = union.unionByName(frame)
    return union.where(
        interest.isNotNull() & (F.col("last_purchased_at").isNull() | (F.col("last_purchased_at") < interest))
    ).drop("last_purchased_at")


def refresh_recent_intent(
    conn: Connection, until: datetime, windows_hours: Sequence[int] = INTENT_WINDOWS_HOURS
) -> dict[int, int]:
    """Replace ``push.recent_intent`` with the intent at ``until``; return rows per window."""
    conn.execute(text("DELETE FROM push.recent_intent"))
    conn.execute(text(load_query("profiles/refresh_recent_intent")), {"until": until, "windows": list(windows_hours)})
    rows = conn.execute(text("SELECT window_hours, count(*) FROM push.recent_intent GROUP BY 1 ORDER BY 1")).all()
    return {int(hours): int(count) for hours, count in rows}


def run_recent_intent(settings: Settings, until: datetime) -> dict:
    """The hourly task: refresh the snapshot in one transaction (readers see old or new)."""
    with make_engine(settings.database_url).begin() as conn:
        by_window = refresh_recent_intent(conn, until)
    summary = {"until": until.isoformat(), "rows_by_window_hours": by_window}
    log.info("recent intent: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--at", type=parse_utc, required=True, help="end of the windows (UTC)")
    args = parser.parse_args(argv)
    print(json.dumps(run_recent_intent(Settings.from_env(), args.at)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
