"""Uplift targeting against real PostgreSQL: the day's estimate from treatment and control
user-days per cell, and the gate that draws each user-day against its cell's share."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from jobs.notify.plan import plan_notifications
from jobs.notify.uplift import ensure_estimates
from tests.support.notify_data import AT, USERS, add_items, add_users, ledger, publish

DAY = datetime(2026, 11, 25, tzinfo=UTC)
BUYERS = USERS[:20]  # bought on their own three days before DAY


@pytest.fixture
def published(empty_db):
    add_users(empty_db, USERS)
    add_items(empty_db)
    publish(empty_db, USERS)
    with empty_db.begin() as conn:
        for n, user in enumerate(BUYERS):
            _feedback(conn, f"own{n}", user, "purchase", DAY - timedelta(days=3))
    return empty_db


def _feedback(conn, event_id, user, event_type, ts, notification_id=None):
    conn.execute(
        text(
            "INSERT INTO push.notification_feedback (event_id, notification_id, user_id, event_type, revenue, ts)"
            " VALUES (:e, :n, :u, :t, 10, :ts)"
        ),
        {"e": event_id, "n": notification_id, "u": user, "t": event_type, "ts": ts},
    )


def _cells(engine, at):
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text("SELECT user_id, push.uplift_cell(user_id, :at, interval '24 hours') FROM push.users"), {"at": at}
            ).all()
        )


def test_a_purchase_right_after_a_click_does_not_make_a_buyer_and_only_the_past_counts(published):
    with published.begin() as conn:
        _feedback(conn, "c1", "u030", "notification_click", DAY - timedelta(days=2), "m1")
        _feedback(conn, "p1", "u030", "purchase", DAY - timedelta(days=2) + timedelta(hours=1))
        _feedback(conn, "p2", "u031", "purchase", DAY - timedelta(days=2), "m2")  # carries the message id
        _feedback(conn, "p3", "u032", "purchase", DAY + timedelta(hours=1))  # after the moment
        _feedback(conn, "p4", "u033", "purchase", DAY - timedelta(days=29))  # before the 28 days
        _feedback(conn, "c2", "u034", "notification_click", DAY - timedelta(days=3))
        _feedback(conn, "p5", "u034", "purchase", DAY - timedelta(days=2))  # 24 h after the click: outside the window
    cells = _cells(published, DAY)
    assert {u for u, c in cells.items() if c == "recent_buyer"} == set(BUYERS) | {"u034"}
    assert set(cells.values()) == {"recent_buyer", "no_recent_purchase"}


def _plant_day(conn, day, user, arm, converted, decision="sent", policy_arm="full", moment_hours=12, share=None):
    run_key = f"plan-{day:%Y%m%d}"
    conn.execute(
        text(
            "INSERT INTO push.notification_runs (run_key, logical_time, horizon_hours, users, decisions)"
            " VALUES (:k, :t, 24, 0, '{}') ON CONFLICT DO NOTHING"
        ),
        {"k": run_key, "t": day},
    )
    moment = day + timedelta(hours=moment_hours)
    conn.execute(
        text(
            "INSERT INTO push.notification_decisions (run_key, user_id, candidate_key, source, expected_value,"
            " decision, idempotency_key, decided_at, scheduled_at, policy_arm, uplift_probability)"
            " VALUES (:k, :u, 'rec:i1', 'recommendation', 0.1, :d, :k || :u, :t, :m, :a, :p)"
        ),
        {
            "k": run_key,
            "u": user,
            "d": "holdout" if arm == "control" else decision,
            "t": day,
            "m": moment,
            "a": policy_arm,
            "p": share,
        },
    )
    conn.execute(
        text(
            "INSERT INTO push.decision_outcomes (run_key, user_id, arm, scheduled_at, converted)"
            " VALUES (:k, :u, :arm, :m, :c)"
        ),
        {"k": run_key, "u": user, "arm": arm, "m": moment, "c": converted},
    )


def test_the_days_estimate_counts_complete_user_days_per_cell_once(published, policy_settings):
    """Held-out days are the control; messaged days of the full policy (and the no_uplift arm)
    the treatment; days the gate skipped, days of other arms and days whose outcome is not
    complete yet are left out. The estimate is stored once: a later call changes nothing."""
    day1, day2, day0 = DAY - timedelta(days=2), DAY - timedelta(days=1), DAY - timedelta(days=40)
    with published.begin() as conn:
        _plant_day(conn, day1, "u000", "treatment", True)  # buyer cell (bought 3 days before DAY)
        _plant_day(conn, day1, "u001", "control", False)
        _plant_day(conn, day1, "u002", "treatment", False, decision="skipped_uplift")  # left out
        _plant_day(conn, day1, "u003", "treatment", True, policy_arm="random_hour")  # left out
        _plant_day(conn, day1, "u020", "treatment", True, policy_arm="no_uplift")
        _plant_day(conn, day1, "u021", "treatment", False)
        _plant_day(conn, day1, "u022", "control", True)
        _plant_day(conn, day1, "u023", "control", False)
        _plant_day(conn, day2, "u024", "treatment", True, moment_hours=1)  # outcome complete at DAY + 1 h: out
        _plant_day(conn, day0, "u025", "treatment", True)  # before the window
    settings = replace(policy_settings, uplift_min_units=1, uplift_floor=0.1)
    computed = {e.counts.cell: e for e in ensure_estimates(published, settings, DAY.date())}
    buyers, others = computed["recent_buyer"].counts, computed["no_recent_purchase"].counts
    # u000 on day1 was a buyer already (bought three days before DAY, two before day1).
    assert (buyers.treatment_units, buyers.treatment_conversions, buyers.control_units) == (1, 1, 1)
    assert (others.treatment_units, others.treatment_conversions) == (2, 1)
    assert (others.control_units, others.control_conversions) == (2, 1)
    assert computed["no_recent_purchase"].effect == pytest.approx(0.0)
    with published.connect() as conn:
        stored = conn.execute(
            text("SELECT cell, treatment_units, control_units, send_probability FROM push.uplift_estimates ORDER BY 1")
        ).all()
    assert [(c, n1, n0) for c, n1, n0, _ in stored] == [("no_recent_purchase", 2, 2), ("recent_buyer", 1, 1)]
    assert all(0.1 <= p <= 1 for *_, p in stored)
    with published.begin() as conn:
        _plant_day(conn, day1, "u026", "control", True)
    assert ensure_estimates(published, settings, DAY.date()) is None
    with published.connect() as conn:
        assert conn.execute(text("SELECT sum(control_units) FROM push.uplift_estimates")).scalar_one() == 3


def _set_estimate(engine, day, cell, probability):
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.uplift_estimates VALUES (:d, :c, 1000, 50, 1000, 50, 0, 0.01, :p)"
                " ON CONFLICT (as_of, cell) DO UPDATE SET send_probability = EXCLUDED.send_probability"
            ),
            {"d": day, "c": cell, "p": probability},
        )


def test_the_gate_skips_the_drawn_share_of_a_cell_the_same_way_all_day_and_records_the_share(
    published, policy_settings
):
    _set_estimate(published, DAY.date(), "recent_buyer", 0.3)
    _set_estimate(published, DAY.date(), "no_recent_purchase", 1.0)
    plan_notifications(policy_settings, AT)
    with published.connect() as conn:
        rows = conn.execute(text("SELECT user_id, decision, uplift_probability FROM push.notification_decisions")).all()
        drawn = dict(
            conn.execute(
                text("SELECT user_id, push.holdout_bucket(user_id || ':' || '2026-11-25', :salt) FROM push.users"),
                {"salt": policy_settings.uplift_salt},
            ).all()
        )
    skipped = {r.user_id for r in rows if r.decision == "skipped_uplift"}
    assert skipped == {u for u in BUYERS if drawn[u] >= 3000}
    assert 0 < len(skipped) < len(BUYERS)
    assert {round(r.uplift_probability, 6) for r in rows if r.user_id in BUYERS} == {0.3}
    assert {round(r.uplift_probability, 6) for r in rows if r.user_id not in BUYERS} == {1.0}
    assert not skipped & {r.user_id for r in ledger(published)}
    assert {r.user_id for r in ledger(published)} == set(USERS) - skipped
    # A later run of the same day draws the same: the skipped users are skipped again.
    plan_notifications(policy_settings, AT + timedelta(hours=5), horizon_hours=24)
    with published.connect() as conn:
        again = set(
            conn.execute(
                text(
                    "SELECT user_id FROM push.notification_decisions WHERE decided_at = :at AND decision = 'skipped_uplift'"
                ),
                {"at": AT + timedelta(hours=5)},
            ).scalars()
        )
    assert again == skipped


def test_the_control_group_the_no_uplift_arm_and_a_gate_turned_off_are_never_skipped(published, policy_settings):
    _set_estimate(published, DAY.date(), "recent_buyer", 0.01)
    _set_estimate(published, DAY.date(), "no_recent_purchase", 0.01)
    arms = replace(policy_settings, holdout_percent=30.0, policy_arms={"no_uplift": 40.0})
    plan_notifications(arms, AT)
    with published.connect() as conn:
        by_arm = conn.execute(
            text(
                "SELECT policy_arm, decision, count(*), bool_and(uplift_probability IS NULL)"
                " FROM push.notification_decisions GROUP BY 1, 2"
            )
        ).all()
    decided = {(arm, decision): (n, no_share) for arm, decision, n, no_share in by_arm}
    assert ("no_uplift", "skipped_uplift") not in decided
    assert decided[("no_uplift", "sent")][1]  # no share recorded: the gate did not apply
    assert all(no_share for (_, decision), (_, no_share) in decided.items() if decision == "holdout")
    assert decided[("full", "skipped_uplift")][0] > 0
    off = replace(policy_settings, uplift_targeting=False)
    plan_notifications(off, AT + timedelta(hours=1))
    with published.connect() as conn:
        later = dict(
            conn.execute(
                text("SELECT decision, count(*) FROM push.notification_decisions WHERE decided_at = :at GROUP BY 1"),
                {"at": AT + timedelta(hours=1)},
            ).all()
        )
    assert "skipped_uplift" not in later


def test_the_gate_log_has_one_row_per_user_day_with_its_share_and_leaves_the_control_group_out(published):
    from jobs.notify.offpolicy import estimate_send_rule, load_gate_log

    day1, day2 = DAY - timedelta(days=2), DAY - timedelta(days=1)
    with published.begin() as conn:
        _plant_day(conn, day1, "u000", "treatment", True, share=0.25)
        _plant_day(conn, day1, "u001", "treatment", False, decision="skipped_uplift", share=0.25)
        _plant_day(conn, day1, "u002", "control", True)
        _plant_day(conn, day1, "u020", "treatment", True, policy_arm="no_uplift")
        _plant_day(conn, day2, "u000", "treatment", False, decision="skipped_uplift", share=0.25)
        _plant_day(conn, day2, "u021", "treatment", False, share=1.0)
    log = load_gate_log(published, ["full"], until=DAY)
    rows = {(r.user_id, r.day.date()): (r.send_probability, r.passed, r.converted) for r in log.itertuples()}
    assert rows == {
        ("u000", day1.date()): (0.25, True, True),
        ("u001", day1.date()): (0.25, False, False),
        ("u000", day2.date()): (0.25, False, False),
        ("u021", day2.date()): (1.0, True, False),
    }
    assert len(load_gate_log(published, ["full"], until=day2)) == 2
    plain = load_gate_log(published, ["no_uplift"])
    assert list(zip(plain.user_id, plain.send_probability, plain.passed, strict=True)) == [("u020", 1.0, True)]
    # Sending every day: the passed day of u000 stands for four, u021's for one, of four days.
    always = estimate_send_rule(log, "send_always")
    assert always.ips == pytest.approx((1 / 0.25) / 4)
    assert always.snips == pytest.approx(4 / (4 + 1))
