"""Notification policy against real PostgreSQL: caps under racing planners, consent, retries."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from jobs.core.db import copy_rows
from jobs.notify.channels import FileSink
from jobs.notify.plan import plan_notifications
from jobs.notify.relay import relay_pending

USERS = [f"u{n:03d}" for n in range(40)]
AT = datetime(2026, 11, 25, 23, tzinfo=UTC)


@pytest.fixture
def published(empty_db):
    """40 users (all consenting to push), 5 items and a live recommendation set."""
    with empty_db.begin() as conn:
        copy_rows(
            conn,
            "push.users",
            ["user_id", "timezone", "locale", "consent_push", "consent_email"],
            [(u, "UTC", "en", True, True) for u in USERS],
        )
        copy_rows(
            conn,
            "push.items",
            ["item_id", "title", "category", "brand", "price", "in_stock"],
            [(f"i{n}", f"Item {n}", "shoes", "b", 10.0 + n, True) for n in range(5)],
        )
        conn.execute(
            text(
                "INSERT INTO push.model_runs VALUES ('r1', '2026-11-25', 'test', '{}', '2026-11-01', '2026-11-25',"
                " '{}', '{}', '/dev/null', true, 'promoted')"
            )
        )
        copy_rows(
            conn,
            "push.recommendations",
            ["run_id", "user_id", "rank", "item_id", "score", "source", "reason"],
            [("r1", u, rank, f"i{rank}", 1.0 / rank, "svd", "test") for u in USERS for rank in range(1, 4)],
        )
        conn.execute(text("INSERT INTO push.published_recommendations VALUES (true, 'r1', '2026-11-25')"))
    return empty_db


@pytest.fixture
def policy_settings(settings):
    return replace(settings, holdout_percent=0.0, daily_cap=1)


def _ledger(engine):
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT user_id, idempotency_key, run_key FROM push.notification_ledger ORDER BY 2")
        ).all()


def test_two_racing_planners_never_exceed_the_cap(published, policy_settings):
    # Two slots 2 hours apart: different idempotency keys, so only the cap stands between them.
    times = [AT, datetime(2026, 11, 26, 1, tzinfo=UTC)]
    barrier = threading.Barrier(len(times))
    errors = []

    def plan(at):
        try:
            barrier.wait()
            plan_notifications(policy_settings, at)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=plan, args=(at,)) for at in times]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    per_user = {}
    for row in _ledger(published):
        per_user[row.user_id] = per_user.get(row.user_id, 0) + 1
    assert per_user == dict.fromkeys(USERS, 1)
    with published.connect() as conn:
        decisions = dict(
            conn.execute(text("SELECT decision, count(*) FROM push.notification_decisions GROUP BY 1")).all()
        )
    # 2 planners x 40 users x 3 candidates: one send per user, everything else capped.
    assert decisions == {"sent": 40, "capped_daily": 200}


def test_retry_of_the_same_slot_sends_nothing_new(published, policy_settings):
    first = plan_notifications(policy_settings, AT)
    ledger = _ledger(published)
    second = plan_notifications(policy_settings, AT)
    assert first == second
    assert _ledger(published) == ledger
    # A later run in the same slot sees the earlier messages as duplicates, not new sends.
    later = plan_notifications(policy_settings, datetime(2026, 11, 25, 23, 30, tzinfo=UTC))
    assert later["decisions"] == {"capped_daily": 80, "duplicate": 40}
    assert _ledger(published) == ledger


def test_opt_out_committed_before_planning_is_honoured(published, policy_settings):
    with published.begin() as conn:
        conn.execute(text("UPDATE push.users SET consent_push = false, consent_email = false WHERE user_id = 'u007'"))
    plan_notifications(policy_settings, AT)
    with published.connect() as conn:
        decisions = (
            conn.execute(text("SELECT DISTINCT decision FROM push.notification_decisions WHERE user_id = 'u007'"))
            .scalars()
            .all()
        )
    assert decisions == ["suppressed_consent"]
    assert "u007" not in {row.user_id for row in _ledger(published)}


def test_control_group_gets_nothing_and_is_recorded(published, settings):
    plan_notifications(replace(settings, holdout_percent=50.0), AT)
    with published.connect() as conn:
        holdout = set(
            conn.execute(text("SELECT user_id FROM push.notification_decisions WHERE decision = 'holdout'")).scalars()
        )
    assert 5 < len(holdout) < 35
    assert not holdout & {row.user_id for row in _ledger(published)}


class _FailingChannel:
    name = "broken"

    def send(self, message):
        raise ConnectionError("gateway down")


def test_failed_sends_are_retried_then_dead_lettered(published, policy_settings, tmp_path):
    plan_notifications(policy_settings, AT)
    broken = {"push": _FailingChannel()}
    assert relay_pending(policy_settings, broken, max_attempts=2) == {"failed": 40}
    assert relay_pending(policy_settings, broken, max_attempts=2) == {"dead": 40}
    assert relay_pending(policy_settings, broken, max_attempts=2) == {}
    with published.connect() as conn:
        rows = conn.execute(text("SELECT status, attempts, last_error FROM push.notification_ledger")).all()
    assert {(r.status, r.attempts) for r in rows} == {("dead", 2)}
    assert all("gateway down" in r.last_error for r in rows)


def test_relay_delivers_each_message_once(published, policy_settings, tmp_path):
    plan_notifications(policy_settings, AT)
    sink = {"push": FileSink(tmp_path)}
    assert relay_pending(policy_settings, sink) == {"sent": 40}
    assert relay_pending(policy_settings, sink) == {}
    assert len(list(tmp_path.rglob("*.json"))) == 40


def test_opt_out_between_planning_and_relay_cancels_the_message(published, policy_settings, tmp_path):
    plan_notifications(policy_settings, AT)
    with published.begin() as conn:
        conn.execute(text("UPDATE push.users SET consent_push = false WHERE user_id = 'u003'"))
    assert relay_pending(policy_settings, {"push": FileSink(tmp_path)}) == {"sent": 39, "cancelled": 1}
    with published.connect() as conn:
        assert (
            conn.execute(text("SELECT status FROM push.notification_ledger WHERE user_id = 'u003'")).scalar_one()
            == "cancelled"
        )
    assert len(list(tmp_path.rglob("*.json"))) == 39
