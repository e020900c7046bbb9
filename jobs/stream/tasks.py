"""What the DAG tasks of the stream's supervision call."""

from __future__ import annotations

from jobs.stream.supervisor import check_health, ensure_running

__all__ = ["check_health", "ensure_running"]
