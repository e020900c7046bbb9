"""Publishing recommendations: COPY into a staging table, then one swap (real PostgreSQL).

A publish killed during its COPY or swap leaves one complete live set, never a mix; a
reader polling the live view during publishes sees exactly one run's complete set every time.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import date, timedelta

import pytest
from sqlalchemy import text

from jobs.recs.job import write_recommendations
from tests.support.faults import kill_when, trials, wait_for_other_sessions_to_end
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
write_recommendations(
    make_engine(sys.argv[1]), sys.argv[2], date.fromisoformat(sys.argv[3]), recommendations_for(sys.argv[2], int(sys.argv[4]))
)
"""


def test_a_publish_killed_during_its_copy_or_swap_leaves_one_complete_live_set(catalogue):
    """Fault matrix row: kill -9 during publish (``FAULT_TRIALS`` times, at a random moment
    from the start of the COPY to the end of the swap)."""
    engine = catalogue
    rng = random.Random(7)
    url = engine.url.render_as_string(hide_password=False)
    killed = 0
    for trial in range(trials(3)):
        run_id, day = f"run-k{trial}", date(2026, 11, 26) + timedelta(days=trial)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO push.model_runs VALUES (:r, :d, 'test', '{}', :d, :d, '{}', '{}', '/dev/null', true,"
                    " 'promoted')"
                ),
                {"r": run_id, "d": day},
            )
        before = _live(engine)
        child = subprocess.Popen(
            [sys.executable, "-c", KILLED_PUBLISH, url, run_id, day.isoformat(), "60000"], cwd=ROOT
        )

        def copying() -> bool:
            with engine.connect() as conn:
                return conn.execute(
                    text(
                        "SELECT count(*) > 0 FROM pg_stat_activity WHERE state = 'active'"
                        " AND query LIKE 'COPY push.recommendations\\_%staging%'"
                    )
                ).scalar_one()

        # The first trial kills as soon as the COPY is seen; the others up to 0.5 s later.
        killed += kill_when(child, copying, delay=0.0 if trial == 0 else rng.uniform(0, 0.5))
        wait_for_other_sessions_to_end(engine)
        after = _live(engine)
        complete = [(run_id, r.user_id, r.rank, r.item_id) for r in recommendations_for(run_id, 60000)]
        assert after == before or [(r.run_id, r.user_id, r.rank, r.item_id) for r in after] == complete
        with engine.connect() as conn:
            leftovers = conn.execute(
                text("SELECT count(*) FROM pg_tables WHERE schemaname = 'push' AND tablename LIKE '%staging'")
            ).scalar_one()
        assert leftovers == 0
        # The retry publishes the run whole.
        assert write_recommendations(engine, run_id, day, recommendations_for(run_id, 60000)) is True
        assert [(r.run_id, r.user_id, r.rank, r.item_id) for r in _live(engine)] == complete
    assert killed >= 1, "every publish finished before its kill"
    print(f"publish: {killed} of {trials(3)} publishes killed mid-way")


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
