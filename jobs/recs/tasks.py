"""What the DAG tasks of recommendation call: settings and a logical date in, a JSON-able summary out."""

from __future__ import annotations

from datetime import datetime

from jobs.core.config import Settings
from jobs.core.spark import get_spark
from jobs.recs import job
from jobs.recs.job import publish_recommendations

__all__ = ["publish_recommendations", "refresh_recommendations", "train_and_evaluate"]


def train_and_evaluate(settings: Settings, as_of: datetime) -> dict:
    """Train the model zoo on the lookback window, evaluate it on the held-out days, gate it."""
    return job.train_and_evaluate(get_spark(settings), settings, as_of)


def refresh_recommendations(settings: Settings, at: datetime) -> dict:
    """Fold the events since the live model's training into the lists of the users who acted."""
    from jobs.recs import refresh

    return refresh.refresh_recommendations(get_spark(settings), settings, at)
