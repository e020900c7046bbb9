"""What the DAG tasks of ingestion call: settings and a window in, a JSON-able summary out."""

from __future__ import annotations

from datetime import datetime

from jobs.core.config import Settings
from jobs.core.spark import get_spark
from jobs.ingest.clean import clean_window
from jobs.ingest.reference import load_reference
from jobs.ingest.validate import validate_clean_window

__all__ = ["clean", "load_reference", "validate"]


def clean(settings: Settings, start: datetime, end: datetime) -> dict[str, int]:
    """Clean the landing hours in [start, end); the accounting identity's terms."""
    return clean_window(get_spark(settings), settings, start, end).counts()


def validate(settings: Settings, start: datetime, end: datetime) -> dict:
    """Run the quality gate's suites on the window; raises on a failed expectation."""
    outcomes = validate_clean_window(settings, start, end)
    return {o.suite: {"evaluated": o.evaluated, "docs": str(o.docs_path)} for o in outcomes}
