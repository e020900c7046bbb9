"""The embedded cluster's two durability modes (tests and demo: off; benchmarks: production's)."""

from __future__ import annotations

import shutil

import psycopg2

from jobs.core.localdb import EmbeddedPostgres
from tests.conftest import _test_root

SETTINGS = ("fsync", "synchronous_commit", "full_page_writes")


def _durability(url: str) -> dict[str, str]:
    conn = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        shown = {}
        with conn.cursor() as cur:
            for name in SETTINGS:
                cur.execute(f"SHOW {name}")
                shown[name] = cur.fetchone()[0]
        return shown
    finally:
        conn.close()


def test_durability_follows_the_mode_and_a_mismatched_cluster_restarts():
    state_dir = _test_root() / "pg-durability"
    fast = EmbeddedPostgres(state_dir, durable=False)
    try:
        url = fast.start()
        assert _durability(url) == dict.fromkeys(SETTINGS, "off")

        durable = EmbeddedPostgres(state_dir, durable=True)
        durable_url = durable.start()
        assert _durability(durable_url) == dict.fromkeys(SETTINGS, "on")
        # Already running in the mode asked for: reused, not restarted.
        assert durable.start() == durable_url
    finally:
        fast.destroy()
        shutil.rmtree(state_dir, ignore_errors=True)
