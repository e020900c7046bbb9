"""Feedback: notification opens, clicks and purchases flow back into the policy.

From the clean events of a window, opens and clicks (which carry the notification id, i.e. the
message's idempotency key) and all purchases are stored in ``push.notification_feedback``
(idempotent by event id). Three refreshes then derive, with the configured attribution window:

- ``push.message_outcomes`` and ``push.decision_outcomes`` (per message; per run and user in
  the treatment or control arm) for reports and lift;
- ``push.send_time_estimates``: each user's best local hour per weekday (Beta-Binomial
  shrinkage toward the segment, then the global rate);
- ``push.notify_user_state``: ignored streaks and the fatigue flag (adaptive frequency).

The next model reads the same clean events, feedback included, so it learns from them too.

CLI: ``python -m jobs.notify.feedback --start 2026-11-25T00:00:00Z --end 2026-11-25T01:00:00Z``.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import datetime, timedelta

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import copy_frame, load_query, make_engine
from jobs.core.spark import get_spark
from jobs.core.timeutil import parse_utc, utc_columns
from jobs.ingest.lake import read_clean
from jobs.notify.policy import DEFAULT_RATE

log = logging.getLogger(__name__)

FEEDBACK_COLUMNS = ("event_id", "notification_id", "user_id", "event_type", "item_id", "revenue", "ts")


def feedback_events(events: DataFrame) -> DataFrame:
    """Opens and clicks of notifications (with their id) and every purchase (with its revenue)."""
    is_notification = (
        F.col("event_type").isin("notification_open", "notification_click") & F.col("notification_id").isNotNull()
    )
    return events.where(is_notification | (F.col("event_type") == "purchase")).select(
        "event_id",
        "notification_id",
        "user_id",
        "event_type",
        "item_id",
        (F.coalesce(F.col("price"), F.lit(0.0)) * F.coalesce(F.col("quantity"), F.lit(1))).alias("revenue"),
        "ts",
    )


def store_feedback(settings: Settings, frame: pd.DataFrame) -> int:
    """Insert feedback rows not stored yet (by event id); return how many were new."""
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE feedback_stage (LIKE push.notification_feedback) ON COMMIT DROP"))
        copy_frame(conn, "feedback_stage", frame[list(FEEDBACK_COLUMNS)])
        return conn.execute(
            text(
                "INSERT INTO push.notification_feedback SELECT * FROM feedback_stage ON CONFLICT (event_id) DO NOTHING"
            )
        ).rowcount


def refresh_derived(settings: Settings, as_of: datetime) -> dict:
    """Rebuild outcomes (last ``lookback_days``), send-time estimates and fatigue as of ``as_of``."""
    attribution = timedelta(hours=settings.attribution_hours)
    since = as_of - timedelta(days=settings.lookback_days)
    engine = make_engine(settings.database_url)
    with engine.begin() as conn:
        conn.execute(
            text(load_query("notify/refresh_message_outcomes")),
            {"since": since, "as_of": as_of, "attribution": attribution},
        )
        conn.execute(
            text(load_query("notify/refresh_send_time_estimates")),
            {
                "as_of": as_of,
                "attribution": attribution,
                "user_strength": settings.sto_user_prior_strength,
                "segment_strength": settings.sto_segment_prior_strength,
                "default_rate": DEFAULT_RATE,
            },
        )
        conn.execute(
            text(load_query("notify/refresh_fatigue")),
            {"as_of": as_of, "attribution": attribution, "fatigue_after": settings.fatigue_after},
        )
        counts = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM push.message_outcomes WHERE sent_at >= :since AND sent_at < :as_of),"
                " (SELECT count(*) FROM push.send_time_estimates),"
                " (SELECT count(*) FROM push.notify_user_state WHERE fatigued)"
            ),
            {"since": since, "as_of": as_of},
        ).one()
    return {"message_outcomes": counts[0], "send_time_estimates": counts[1], "fatigued_users": counts[2]}


def run_feedback(spark: SparkSession, settings: Settings, start: datetime, end: datetime) -> dict:
    """Collect the feedback of the landing hours [start, end), then refresh what derives from it."""
    frame = utc_columns(feedback_events(read_clean(spark, settings, start, end)).toPandas(), ("ts",))
    new_rows = store_feedback(settings, frame) if len(frame) else 0
    summary = {"feedback_events": len(frame), "new_feedback_events": new_rows, **refresh_derived(settings, end)}
    log.info("feedback: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=parse_utc, required=True, help="first landing hour (UTC)")
    parser.add_argument("--end", type=parse_utc, required=True, help="end of the window (exclusive)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    print(json.dumps(run_feedback(get_spark(settings), settings, args.start, args.end)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
