"""Shared pieces of the DAGs: default args, failure callback, assets, run-time helpers.

DAG files import this module (never each other); it imports
nothing heavy, so parsing a DAG does no I/O and starts no Spark.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pendulum
from airflow.sdk import Asset

log = logging.getLogger(__name__)

START_DATE = pendulum.datetime(2026, 11, 1, tz="UTC")
TAGS = ["push-notifications"]

# Data products other DAGs can be triggered by.
CLEAN_EVENTS = Asset(name="clean_events", uri="file:///push/lake/clean/events")
RECOMMENDATIONS = Asset(name="published_recommendations", uri="postgres://localhost:5432/push/push/recommendations")


def on_task_failure(context) -> None:
    """Log a one-line alert naming the task, the run and the error (hook for email/on-call)."""
    ti = context.get("task_instance")
    log.error(
        "ALERT task %s of %s failed (run %s, try %s): %s",
        getattr(ti, "task_id", "?"),
        getattr(ti, "dag_id", "?"),
        context.get("run_id"),
        getattr(ti, "try_number", "?"),
        context.get("exception"),
    )


DEFAULT_ARGS = {
    "owner": "data-platform",
    "retries": int(os.environ.get("PUSH_TASK_RETRIES", "2")),
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=15),
    "on_failure_callback": on_task_failure,
}


@contextmanager
def fail_fast() -> Iterator[None]:
    """Turn a :class:`PermanentDataError` into a task failure that skips the remaining retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.core.errors import PermanentDataError

    try:
        yield
    except PermanentDataError as error:
        raise AirflowFailException(str(error)) from error


def logical_time(context):
    """The run's logical time as a plain UTC datetime (asset-triggered runs use run_after)."""
    from jobs.core.timeutil import as_utc

    when = context.get("logical_date") or context["dag_run"].run_after
    return as_utc(when)


def planning_horizon(context) -> int:
    """Hours of send moments a notifications run plans: the ``horizon_hours`` param, else 24
    for a run triggered by newly published recommendations and 1 for the hourly slot."""
    explicit = context["params"].get("horizon_hours")
    if explicit:
        return int(explicit)
    run_type = str(getattr(context["dag_run"], "run_type", ""))
    return 24 if "asset" in run_type else 1
