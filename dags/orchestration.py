"""Shared pieces of the DAGs: default args, failure callback, assets, the run context.

DAG files import this module (never each other); it imports nothing heavy, so parsing a DAG
does no I/O and starts no Spark. Tasks call the stages only through their ``jobs.<stage>.tasks``
modules (a test of the DAG folder holds them to it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.sdk import Asset

if TYPE_CHECKING:
    from jobs.core.config import Settings

log = logging.getLogger(__name__)

START_DATE = pendulum.datetime(2026, 11, 1, tz="UTC")
TAGS = ["push-notifications"]

# Data products other DAGs can be triggered by.
CLEAN_EVENTS = Asset(name="clean_events", uri="file:///push/lake/clean/events")
RECOMMENDATIONS = Asset(name="published_recommendations", uri="postgres://localhost:5432/push/push/recommendations")


def on_task_failure(context) -> None:
    """Log a one-line alert naming the task, the run and the error; e-mail it when configured.

    E-mail goes to ``PUSH_ALERT_EMAILS`` through the same SMTP provider as the e-mail channel
    (``PUSH_SMTP_URL``). An alert that cannot be sent is logged, never raised: the task has
    failed already and the callback must not hide why.
    """
    ti = context.get("task_instance")
    task_id, dag_id = getattr(ti, "task_id", "?"), getattr(ti, "dag_id", "?")
    try_number = getattr(ti, "try_number", "?")
    summary = f"task {task_id} of {dag_id} failed (run {context.get('run_id')}, try {try_number})"
    from jobs.core.errors import explain_failure

    # The last line of the task's log: what happened and what to do, under any stack trace.
    log.error("ALERT %s: %s", summary, explain_failure(context.get("exception")))
    from jobs.notify.tasks import send_alert_email

    try:
        send_alert_email(
            summary, str(context.get("exception")), key=f"{dag_id}:{context.get('run_id')}:{task_id}:{try_number}"
        )
    except Exception as error:
        log.warning("could not e-mail the alert: %s", error)


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


@dataclass(frozen=True)
class RunContext:
    """What a task needs from Airflow's context, read in one place: the settings, the run's
    logical time (the end of the window it covers), its params and how it was triggered."""

    settings: Settings
    at: datetime
    params: Mapping[str, Any]
    run_type: str

    def window(self, **length: float) -> tuple[datetime, datetime]:
        """The window of the given length (``hours=1``, ``days=...``) that ends at the logical time."""
        return self.at - timedelta(**length), self.at


def run_context() -> RunContext:
    """The current task's :class:`RunContext` (call it inside a task)."""
    from airflow.sdk import get_current_context

    from jobs.core.config import Settings

    context = get_current_context()
    run_type = str(getattr(context["dag_run"], "run_type", ""))
    return RunContext(Settings.from_env(), logical_time(context), dict(context["params"]), run_type)


def logical_time(context):
    """The run's logical time as a plain UTC datetime (asset-triggered runs use run_after)."""
    from jobs.core.timeutil import as_utc

    when = context.get("logical_date") or context["dag_run"].run_after
    return as_utc(when)


def planning_horizon(run: RunContext) -> int:
    """Hours of send moments a notifications run plans: the ``horizon_hours`` param, else 24
    for a run triggered by newly published recommendations and 1 for the hourly slot."""
    explicit = run.params.get("horizon_hours")
    if explicit:
        return int(explicit)
    return 24 if "asset" in run.run_type else 1
