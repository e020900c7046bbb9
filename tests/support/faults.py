"""Fault injection for the fault matrix: kill -9 at a chosen moment, and wait for the rollback.

``FAULT_TRIALS`` sets how many times each fault is repeated (``make fault-matrix`` uses 20;
the default suite a few, to stay quick).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

from sqlalchemy import text


def trials(default: int) -> int:
    """How many times to repeat a fault: ``FAULT_TRIALS`` when set, else ``default``."""
    return int(os.environ.get("FAULT_TRIALS") or default)


def kill_when(child: subprocess.Popen, ready: Callable[[], bool], delay: float = 0.0, timeout: float = 180) -> bool:
    """SIGKILL ``child`` ``delay`` seconds after ``ready()`` first holds; False if it ended before."""
    deadline = time.monotonic() + timeout
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if ready():
                time.sleep(delay)
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if child.poll() is None and time.monotonic() >= deadline:
            child.kill()
        child.wait()
    return child.returncode == -signal.SIGKILL


def wait_for_other_sessions_to_end(engine, timeout: float = 30) -> None:
    """Wait until no other session of this database is inside a statement or a transaction.

    The server rolls a killed client's transaction back once it notices the lost connection;
    a retry started before that would find the killed run's rows still locked.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            busy = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                    " AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')"
                )
            ).scalar_one()
        if busy == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"other sessions still busy after {timeout}s")
