"""The embedded cluster's two durability modes (tests and demo: off; benchmarks: production's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import text

from devenv.localdb import UNPRIVILEGED_USER, EmbeddedPostgres
from jobs.core.db import make_engine
from tests.support import scratch_root

SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


def _durability(url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {name: conn.execute(text(f"SHOW {name}")).scalar_one() for name in SETTINGS}
    finally:
        engine.dispose()


def test_durability_follows_the_mode_and_a_mismatched_cluster_restarts():
    state_dir = scratch_root() / "pg-durability"
    fast = EmbeddedPostgres(state_dir, durable=False)
    try:
        url = fast.start()
        # Commits stay synchronous: a crash of the server alone loses no committed transaction.
        assert _durability(url) == {"fsync": "off", "synchronous_commit": "on", "full_page_writes": "off"}

        durable = EmbeddedPostgres(state_dir, durable=True)
        durable_url = durable.start()
        assert _durability(durable_url) == dict.fromkeys(SETTINGS, "on")
        # Already running in the mode asked for: reused, not restarted.
        assert durable.start() == durable_url
    finally:
        fast.destroy()
        shutil.rmtree(state_dir, ignore_errors=True)


def test_a_pid_file_left_by_a_dead_server_neither_breaks_stop_nor_start():
    state_dir = scratch_root() / "pg-stale"
    cluster = EmbeddedPostgres(state_dir)
    try:
        cluster.start()
        pid_file = Path(json.loads(cluster.state_file.read_text())["data_dir"]) / "postmaster.pid"
        left_behind = pid_file.read_text().split("\n", 1)[1]
        cluster.stop()
        # As after a reboot: the server is gone, its pid file is not (naming a process that
        # no longer exists).
        gone = subprocess.Popen(["true"])
        gone.wait()
        pid_file.write_text(f"{gone.pid}\n{left_behind}")
        if os.geteuid() == 0:
            shutil.chown(pid_file, UNPRIVILEGED_USER, UNPRIVILEGED_USER)
        cluster.stop()
        assert _durability(cluster.start())["fsync"] == "off"
    finally:
        cluster.destroy()
        shutil.rmtree(state_dir, ignore_errors=True)
