"""What the DAG tasks of profiling call: settings and a logical time in, a JSON-able summary out."""

from __future__ import annotations

from datetime import datetime

from jobs.core.config import Settings
from jobs.core.spark import get_spark
from jobs.profiles.intent import run_recent_intent
from jobs.profiles.job import run_profiles

__all__ = ["build_profiles", "run_recent_intent"]


def build_profiles(settings: Settings, as_of: datetime) -> dict:
    """Profiles and K-means segments of the users active in the lookback window."""
    return run_profiles(get_spark(settings), settings, as_of)
