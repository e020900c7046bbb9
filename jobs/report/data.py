"""Read the evaluation report's inputs from PostgreSQL: one query file per frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, text

from jobs.core.db import load_query

# The per-run plot shows at most this many planning runs (the latest ones).
RECENT_NOTIFICATION_RUNS = 30


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, as frames (empty frames where there is nothing yet)."""

    model_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    data_quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    segments: pd.DataFrame = field(default_factory=pd.DataFrame)
    notifications_daily: pd.DataFrame = field(default_factory=pd.DataFrame)
    send_hours: pd.DataFrame = field(default_factory=pd.DataFrame)
    notification_runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    notification_totals: pd.DataFrame = field(default_factory=pd.DataFrame)
    policy_arms: pd.DataFrame = field(default_factory=pd.DataFrame)
    variant_daily: pd.DataFrame = field(default_factory=pd.DataFrame)
    campaign_variants: pd.DataFrame = field(default_factory=pd.DataFrame)


def report_frame(conn, name: str, params: dict) -> pd.DataFrame:
    result = conn.execute(text(load_query(f"report/{name}")), params)
    return pd.DataFrame(result.mappings().all(), columns=list(result.keys()))


def load_report_data(engine: Engine, until: datetime | None = None) -> ReportData:
    """The report's frames as of ``until`` (a run's logical time; ``None`` for everything)."""
    params = {"until": until, "limit": RECENT_NOTIFICATION_RUNS}
    with engine.connect() as conn:
        return ReportData(
            model_runs=report_frame(conn, "report_model_runs", params),
            data_quality=report_frame(conn, "report_data_quality", params),
            segments=report_frame(conn, "report_segments", params),
            notifications_daily=report_frame(conn, "report_notifications_daily", params),
            send_hours=report_frame(conn, "report_send_hours", params),
            notification_runs=report_frame(conn, "report_notification_runs", params),
            notification_totals=report_frame(conn, "report_notification_totals", params),
            policy_arms=report_frame(conn, "report_policy_arms", params),
            variant_daily=report_frame(conn, "report_variant_daily", params),
            campaign_variants=report_frame(conn, "report_campaign_variants", params),
        )
