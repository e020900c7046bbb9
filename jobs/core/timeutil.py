"""Time helpers. All pipeline times are timezone-aware UTC datetimes handed in by Airflow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta


def parse_utc(value: str) -> datetime:
    """Parse ISO-8601; a value without an offset is taken as UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def as_utc(value: datetime) -> datetime:
    """Convert Airflow's pendulum datetimes (or naive UTC) to plain UTC datetimes."""
    plain = datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=value.tzinfo,
    )
    return plain.replace(tzinfo=UTC) if plain.tzinfo is None else plain.astimezone(UTC)


def hours_between(start: datetime, end: datetime) -> Iterator[datetime]:
    """Whole hours h with start <= h < end, start floored to the hour."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    while hour < end:
        yield hour
        hour += timedelta(hours=1)


def hour_bounds(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """Widen [start, end) to whole hours: start floored, end ceiled."""
    floor = start.replace(minute=0, second=0, microsecond=0)
    ceil = end.replace(minute=0, second=0, microsecond=0)
    if ceil < end:
        ceil += timedelta(hours=1)
    return floor, ceil


def utc_columns(frame, columns):
    """Mark pandas timestamp columns as UTC (Spark collects UTC timestamps as naive datetimes).

    COPY then writes explicit offsets, so the database never reads them in its own timezone.
    """
    import pandas as pd  # here, so that importing this module stays light (DAG parsing)

    for column in columns:
        frame[column] = pd.to_datetime(frame[column]).dt.tz_localize("UTC")
    return frame
