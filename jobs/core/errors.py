"""Errors shared across stages, and the one line a failed task ends its log with."""

from __future__ import annotations

import re


class PermanentDataError(RuntimeError):
    """Bad data that a retry cannot fix: the orchestrator fails the task at once instead of retrying."""


_FIRST_LINE_LIMIT = 600


def explain_failure(error: BaseException | None) -> str:
    """What went wrong and what to do, in one line, for the end of a failed task's log.

    Known kinds (the database cannot be reached, a Spark job failed, bad data the pipeline
    refused) get their cause and a remedy; anything else its type and first line. Matched by
    class name, so this module imports nothing heavy.
    """
    if error is None:
        return "no exception was recorded: see the task log above"
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & {"OperationalError", "InterfaceError"} and _looks_like_connection_failure(error):
        return (
            f"the pipeline database cannot be reached or dropped the connection ({_first_line(error)}): "
            "start it if it is down (`make db` for the embedded one) or check PUSH_DATABASE_URL / "
            "AIRFLOW_CONN_PUSH_DB; the task is safe to re-run (its retry does)"
        )
    if "Py4JJavaError" in names or "PySparkException" in names:
        return (
            f"a Spark job failed ({_spark_cause(error)}): if the cause is memory, raise PUSH_SPARK_DRIVER_MEMORY; "
            "the task is safe to re-run"
        )
    # Bad data the pipeline refused (PermanentDataError) says in its message what to do.
    return f"{type(error).__name__}: {_first_line(error)}"


def _looks_like_connection_failure(error: BaseException) -> bool:
    text = str(error).lower()
    return any(
        marker in text
        for marker in (
            "could not connect",
            "connection refused",
            "server closed",
            "timeout expired",
            "no such file",
            "terminating connection",  # the server is shutting down or restarting
            "the database system is",  # ... starting up, shutting down, in recovery mode
            "connection already closed",
        )
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    # SQLAlchemy appends the statement and a link: the driver's message is the first line.
    line = next((part.strip() for part in text.splitlines() if part.strip()), type(error).__name__)
    line = re.sub(r"^\(\w+(\.\w+)*\)\s*", "", line)
    return line[:_FIRST_LINE_LIMIT]


def _spark_cause(error: BaseException) -> str:
    java = getattr(error, "java_exception", None)
    if java is None:
        return _first_line(error)
    cause = java
    while cause.getCause() is not None:
        cause = cause.getCause()
    message = f"{java.getClass().getSimpleName()}: {java.getMessage()}"
    if cause is not java:
        message += f"; caused by {cause.toString()}"
    return " ".join(message.split())[:_FIRST_LINE_LIMIT]
