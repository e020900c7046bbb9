"""What the DAG task of reporting calls."""

from __future__ import annotations

from datetime import datetime

from jobs.core.config import Settings
from jobs.report.job import report_path_for, write_report

__all__ = ["write_daily_report"]


def write_daily_report(settings: Settings, as_of: datetime) -> str:
    """The evaluation report of everything up to ``as_of``; returns its path."""
    return str(write_report(settings, report_path_for(settings, as_of), until=as_of))
