"""Errors shared across stages."""


class PermanentDataError(RuntimeError):
    """Bad data that a retry cannot fix: the orchestrator fails the task at once instead of retrying."""
