"""The notification benchmark at tiny scale, in-process, on the test session's database.

Only the shape and the accounting of its report are checked, never a timing.
"""

from __future__ import annotations

import json

from sqlalchemy import text

from benchmarks import notify as bench_notify
from jobs.notify.policy import REASON_CODES

ENGINE_KEYS = {"label", "at", "batch_size", "run_key", "seconds", "users", "decisions", "decisions_per_second"}


def test_benchmark_reports_consistent_figures(engine, monkeypatch, capsys):
    url = engine.url.render_as_string(hide_password=False)
    # main() sets PUSH_DATABASE_URL for the rest of the process: let monkeypatch undo it.
    monkeypatch.setenv("PUSH_DATABASE_URL", url)
    assert bench_notify.main(["--database-url", url, "--users", "300", "--naive-sample", "50", "--seed", "7"]) == 0

    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert {"scale", "cpu_count", "rows", "engine", "naive", "set_based_24h_cap", "targets", "figures"} <= set(summary)
    assert summary["scale"]["users"] == 300
    assert summary["cpu_count"] >= 1

    candidates = summary["figures"]["candidates"]
    assert candidates > 0
    labels = [run["label"] for run in summary["engine"]]
    assert labels == ["engine_b10000", "engine_b20000", "engine_one_session_b10000", "engine_next_day_b10000"]
    for run in summary["engine"]:
        assert set(run) >= ENGINE_KEYS
        assert run["decisions"] > 0
        assert run["decisions"] == sum(run["by_reason"].values())
        assert run["seconds"] > 0
        assert set(run["by_reason"]) <= set(REASON_CODES)
    # The same logical date decides the collected candidates identically, whatever the batch size
    # and the number of worker sessions (all but campaigns and triggers not yet due at their
    # user's send moment, left to later runs).
    assert summary["engine"][2]["workers"] == 1
    for run in summary["engine"][:3]:
        assert 0.9 * candidates <= run["decisions"] <= candidates
        assert run["by_reason"] == summary["engine"][0]["by_reason"]
    assert summary["figures"]["engine_reruns_same_decisions"] == "true"
    # Every rule family shows up at this scale, so the caps really bind.
    reasons = summary["engine"][0]["by_reason"]
    assert {"sent", "holdout", "suppressed_consent", "capped_min_gap"} <= set(reasons)

    naive = summary["naive"]
    assert naive["decisions"] == 50
    assert sum(naive["by_reason"].values()) == 50
    set_based = summary["set_based_24h_cap"]
    assert set_based["decisions"] == candidates == sum(set_based["by_reason"].values())

    for target in summary["targets"].values():
        assert isinstance(target["met"], bool)
        assert target["measured"] >= 0
    # Every figure in the JSON was printed as a "label value unit" line while measuring.
    printed = {line.split(" ", 1)[0] for line in lines[:-1]}
    assert set(summary["figures"]) <= printed

    # Scratch tables of the yardsticks are gone; the pipeline's tables hold the engine's work.
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regnamespace(:s)"), {"s": bench_notify.SCRATCH_SCHEMA}).scalar_one() is None
        runs = conn.execute(text("SELECT count(*) FROM push.notification_runs")).scalar_one()
    assert runs == 2


def test_python_hashes_match_the_database_functions(engine):
    """The naive loop computes the control group and idempotency keys like the SQL functions."""
    salt = "push-holdout-v1"
    users = [f"u{n:07d}" for n in range(200)]
    with engine.connect() as conn:
        buckets = conn.execute(
            text("SELECT u, push.holdout_bucket(u, :salt) FROM unnest(CAST(:users AS text[])) AS u"),
            {"salt": salt, "users": users},
        ).all()
        key = conn.execute(text("SELECT push.idempotency_key('u1', 'rec:i2', '2026-11-25')")).scalar_one()
    assert all(bench_notify.holdout_bucket(user, salt) == bucket for user, bucket in buckets)
    assert bench_notify.idempotency_key("u1", "rec:i2", "2026-11-25") == key
