"""Publishing recommendations: COPY into a staging table, then one swap (real PostgreSQL).

A publish killed in the middle of its COPY leaves the live set and the table as they were; a
reader polling the live view during publishes sees exactly one run's complete set every time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import text

from jobs.recs.job import write_recommendations
from tests.support.notify_data import ITEMS, recommendations_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model_run(conn, run_id: str, as_of: date) -> None:
    conn.execute(
        text(
            "INSERT INTO push.model_runs VALUES (:r, :d, 'test', '{}', :d, :d, '{}', '{}', '/dev/null', true,"
            " 'promoted') ON CONFLICT DO NOTHING"
        ),
        {"r": run_id, "d": as_of},
    )


@pytest.fixture
def catalogue(empty_db):
    with empty_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.items (item_id, title, category, brand, price, in_stock)"
                " SELECT 'i' || n, 'Item ' || n, 'c', 'b', 10, true FROM generate_series(0, :k - 1) n"
            ),
            {"k": ITEMS},
        )
        for run_id, day in (
            ("run-a", date(2026, 11, 24)),
            ("run-b", date(2026, 11, 25)),
            ("run-c", date(2026, 11, 26)),
        ):
            _model_run(conn, run_id, day)
    return empty_db


def _live(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT run_id, user_id, rank, item_id, score, source, reason FROM analytics.current_recommendations"
                " ORDER BY user_id, rank"
            )
        ).all()


def test_publish_swaps_runs_and_keeps_each_run_versioned(catalogue):
    engine = catalogue
    a, b = recommendations_for("run-a", 50), recommendations_for("run-b", 40)
    # Text that COPY's text format must escape survives the round trip.
    b[0] = replace(b[0], reason="tab\there, back\\slash, new\nline, \r return")
    assert write_recommendations(engine, "run-a", date(2026, 11, 24), a) is True
    assert write_recommendations(engine, "run-b", date(2026, 11, 25), b) is True
    live = _live(engine)
    assert {row.run_id for row in live} == {"run-b"}
    assert [(r.user_id, r.rank, r.item_id, r.score, r.source, r.reason) for r in live] == [
        (r.user_id, r.rank, r.item_id, r.score, r.source, r.reason) for r in b
    ]
    # A re-run of the older date replaces its own rows but never the newer live set.
    assert write_recommendations(engine, "run-a", date(2026, 11, 24), a[:30]) is False
    assert {row.run_id for row in _live(engine)} == {"run-b"}
    with engine.connect() as conn:
        per_run = dict(conn.execute(text("SELECT run_id, count(*) FROM push.recommendations GROUP BY 1")).all())
        leftovers = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = 'push' AND tablename LIKE '%staging'")
        ).scalar_one()
    assert per_run == {"run-a": 30, "run-b": len(b)}
    assert leftovers == 0


KILLED_PUBLISH = """
import sys
from dataclasses import replace
from datetime import date
from jobs.core.db import make_engine
from jobs.recs.job import write_recommendations
from tests.support.notify_data import recommendations_for
write_recommendations(make_engine(sys.argv[1]), "run-c", date(2026, 11, 26), recommendations_for("run-c", int(sys.argv[2])))
"""


def test_a_publish_killed_mid_copy_leaves_the_live_set_unchanged(catalogue):
    engine = catalogue
    write_recommendations(engine, "run-b", date(2026, 11, 25), recommendations_for("run-b", 200))
    before = _live(engine)
    url = engine.url.render_as_string(hide_password=False)
    child = subprocess.Popen([sys.executable, "-c", KILLED_PUBLISH, url, "150000"], cwd=ROOT)
    seen_copy = False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            with engine.connect() as conn:
                seen_copy = conn.execute(
                    text(
                        "SELECT count(*) > 0 FROM pg_stat_activity WHERE state = 'active'"
                        " AND query LIKE 'COPY push.recommendations\\_%staging%'"
                    )
                ).scalar_one()
            if seen_copy:
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert seen_copy, "the publish finished before its COPY was seen"
    assert child.returncode == -signal.SIGKILL
    # The server rolls the dead client's transaction back once it notices the lost connection.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            busy = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY push.recommendations\\_%'")
            ).scalar_one()
        if busy == 0:
            break
        time.sleep(0.05)
    assert _live(engine) == before
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM push.recommendations WHERE run_id = 'run-c'")).scalar_one() == 0
        assert (
            conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'push' AND tablename LIKE '%staging'")
            ).scalar_one()
            == 0
        )
    # The next publish of the same run goes through.
    c = recommendations_for("run-c", 100)
    assert write_recommendations(engine, "run-c", date(2026, 11, 26), c) is True
    assert [(r.run_id, r.user_id, r.rank, r.item_id) for r in _live(engine)] == [
        ("run-c", r.user_id, r.rank, r.item_id) for r in c
    ]


def test_a_concurrent_reader_never_sees_a_mix_of_runs(catalogue):
    engine = catalogue
    sets = {run: recommendations_for(run, users) for run, users in (("run-b", 3000), ("run-c", 2500))}
    expected = {run: sorted((r.user_id, r.rank, r.item_id) for r in rows) for run, rows in sets.items()}
    days = {"run-b": date(2026, 11, 25), "run-c": date(2026, 11, 26)}
    write_recommendations(engine, "run-b", days["run-b"], sets["run-b"])
    observed: list[tuple[str, ...]] = []
    mixed: list[object] = []
    stop = threading.Event()

    def read_in_a_loop():
        with engine.connect() as conn:
            while not stop.is_set():
                rows = conn.execute(
                    text("SELECT run_id, user_id, rank, item_id FROM analytics.current_recommendations")
                ).all()
                conn.commit()
                runs = tuple(sorted({row.run_id for row in rows}))
                observed.append(runs)
                if len(runs) != 1 or sorted((r.user_id, r.rank, r.item_id) for r in rows) != expected[runs[0]]:
                    mixed.append((runs, len(rows)))

    reader = threading.Thread(target=read_in_a_loop)
    reader.start()
    try:
        # Alternate: a new date, a re-run of the live date (same run id, replaced rows), and back.
        for round_ in range(3):
            for run in ("run-c", "run-b"):
                days[run] = date(2026, 12, 1 + 2 * round_ + (run == "run-b"))
                write_recommendations(engine, run, days[run], sets[run])
            write_recommendations(engine, "run-b", days["run-b"], sets["run-b"])
    finally:
        stop.set()
        reader.join()
    assert not mixed
    assert set(observed) == {("run-b",), ("run-c",)}
