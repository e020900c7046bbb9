"""Feedback on real PostgreSQL: attribution, control arms, send-time estimates, adaptive caps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import text

from jobs.core.db import copy_rows
from jobs.notify.feedback import FEEDBACK_COLUMNS, refresh_derived, store_feedback
from jobs.notify.plan import plan_notifications
from tests.support.notify_data import add_items, add_profiles, add_users, publish

T0 = datetime(2026, 11, 10, 19, tzinfo=UTC)


def add_sent(engine, rows):
    """rows: (key, user_id, scheduled_at[, run_key])."""
    with engine.begin() as conn:
        copy_rows(
            conn,
            "push.notification_ledger",
            ["idempotency_key", "run_key", "user_id", "channel", "source", "scheduled_at", "payload", "status"],
            [(r[0], r[3] if len(r) > 3 else "run", r[1], "push", "recommendation", r[2], "{}", "sent") for r in rows],
        )


def feedback(settings, rows):
    """rows: (event_id, notification_id, user_id, event_type, revenue, ts)."""
    frame = pd.DataFrame(
        [(e, n, u, t, None, r, ts) for e, n, u, t, r, ts in rows], columns=list(FEEDBACK_COLUMNS)
    ).astype(object)
    return store_feedback(settings, frame)


def test_attribution_by_id_and_by_click_window(empty_db, settings):
    add_users(empty_db, ["a", "b"])
    add_sent(empty_db, [("m1", "a", T0), ("m2", "b", T0)])
    stored = feedback(
        settings,
        [
            ("e1", "m1", "a", "notification_open", None, T0 + timedelta(hours=1)),
            ("e2", "m1", "a", "notification_click", None, T0 + timedelta(hours=1, minutes=1)),
            ("e3", None, "a", "purchase", 30.0, T0 + timedelta(hours=3)),  # within 24 h of the click
            ("e4", None, "a", "purchase", 99.0, T0 + timedelta(hours=30)),  # too late
            ("e5", "m2", "b", "purchase", 12.5, T0 + timedelta(hours=40)),  # carries the id
        ],
    )
    assert stored == 5
    assert feedback(settings, [("e1", "m1", "a", "notification_open", None, T0)]) == 0  # idempotent by event id
    refresh_derived(settings, T0 + timedelta(days=3))
    with empty_db.connect() as conn:
        rows = {
            r.idempotency_key: r
            for r in conn.execute(text("SELECT * FROM push.message_outcomes ORDER BY idempotency_key"))
        }
    assert rows["m1"].opened_at == T0 + timedelta(hours=1)
    assert rows["m1"].clicked_at == T0 + timedelta(hours=1, minutes=1)
    assert rows["m1"].converted_at == T0 + timedelta(hours=3)
    assert rows["m1"].revenue == 30.0
    assert rows["m2"].clicked_at is None
    assert rows["m2"].revenue == 12.5


def test_send_time_estimates_learn_a_users_hour_and_share_it_with_the_segment(empty_db, settings):
    users = [f"s{n}" for n in range(6)]
    add_users(empty_db, users, timezone="America/New_York")
    add_profiles(empty_db, [(u, 1, 9) for u in users])
    # s0..s4 got a message at 09:00 and at 19:00 New York time every day for two weeks; they
    # click the evening ones only. s5 never got anything.
    sent, clicks = [], []
    for day in range(14):
        for u in users[:5]:
            morning = datetime(2026, 11, 2 + day, 14, tzinfo=UTC)  # 09:00 EST
            evening = datetime(2026, 11, 3 + day, 0, tzinfo=UTC)  # 19:00 EST
            sent += [(f"{u}-m{day}", u, morning), (f"{u}-e{day}", u, evening)]
            clicks.append(
                (f"c-{u}-{day}", f"{u}-e{day}", u, "notification_click", None, evening + timedelta(minutes=5))
            )
    add_sent(empty_db, sent)
    feedback(settings, clicks)
    summary = refresh_derived(settings, datetime(2026, 11, 20, tzinfo=UTC))
    assert summary["send_time_estimates"] == 7 * len(users)
    with empty_db.connect() as conn:
        estimates = conn.execute(
            text("SELECT user_id, weekday, best_hour, basis, rate FROM push.send_time_estimates")
        ).all()
    assert {(e.best_hour, e.basis) for e in estimates if e.user_id != "s5"} == {(19, "user")}
    assert {(e.best_hour, e.basis) for e in estimates if e.user_id == "s5"} == {(19, "segment")}
    assert all(0 < e.rate < 1 for e in estimates)


def test_hourly_runs_pick_users_whose_best_hour_is_now(empty_db, settings):
    add_users(empty_db, ["ny"], timezone="America/New_York")
    add_items(empty_db)
    publish(empty_db, ["ny"])
    with empty_db.begin() as conn:
        copy_rows(
            conn,
            "push.send_time_estimates",
            ["user_id", "weekday", "best_hour", "rate", "basis"],
            [("ny", weekday, 19, 0.05, "user") for weekday in range(7)],
        )
    quiet_free = replace(settings, holdout_percent=0.0, quiet_hours_start="00:00", quiet_hours_end="00:00")
    # 2026-11-25 23:00 UTC = 18:00 EST, 2026-11-26 00:00 UTC = 19:00 EST.
    before = plan_notifications(quiet_free, datetime(2026, 11, 25, 23, tzinfo=UTC))
    at_best = plan_notifications(quiet_free, datetime(2026, 11, 26, 0, tzinfo=UTC))
    assert before["users"] == 0
    assert at_best["users"] == 1
    assert at_best["decisions"]["sent"] == 1
    # A daily plan made at 01:00 UTC (20:00 EST) schedules the message at the next 19:00 local.
    with empty_db.begin() as conn:
        conn.execute(
            text("TRUNCATE push.notification_ledger, push.notification_decisions, push.notification_runs CASCADE")
        )
    plan_notifications(quiet_free, datetime(2026, 11, 25, 1, tzinfo=UTC), horizon_hours=24)
    with empty_db.connect() as conn:
        scheduled = conn.execute(text("SELECT scheduled_at FROM push.notification_ledger")).scalar_one()
    assert scheduled == datetime(2026, 11, 26, 0, tzinfo=UTC)


def test_ignored_messages_lower_the_cap_and_engagement_restores_it(empty_db, settings):
    add_users(empty_db, ["f"])
    add_sent(empty_db, [(f"m{n}", "f", T0 + timedelta(days=n)) for n in range(4)])
    tuned = replace(settings, fatigue_after=3)
    refresh_derived(tuned, T0 + timedelta(days=6))
    with empty_db.connect() as conn:
        state = conn.execute(text("SELECT ignored_streak, fatigued FROM push.notify_user_state")).one()
    assert tuple(state) == (4, True)
    feedback(settings, [("o1", "m3", "f", "notification_open", None, T0 + timedelta(days=3, hours=1))])
    refresh_derived(tuned, T0 + timedelta(days=6))
    with empty_db.connect() as conn:
        state = conn.execute(text("SELECT ignored_streak, fatigued, last_engaged_at FROM push.notify_user_state")).one()
    assert tuple(state) == (0, False, T0 + timedelta(days=3))


def test_control_and_treatment_arms_are_intent_to_treat(empty_db, settings):
    users = [f"c{n:03d}" for n in range(60)]
    add_users(empty_db, users)
    add_items(empty_db)
    publish(empty_db, users)
    at = datetime(2026, 11, 25, 12, tzinfo=UTC)
    policy_settings = replace(settings, holdout_percent=30.0, quiet_hours_start="00:00", quiet_hours_end="00:00")
    summary = plan_notifications(policy_settings, at)
    with empty_db.connect() as conn:
        held = set(
            conn.execute(
                text("SELECT DISTINCT user_id FROM push.notification_decisions WHERE decision = 'holdout'")
            ).scalars()
        )
    buyers = sorted(held)[:3] + sorted(set(users) - held)[:10]
    feedback(settings, [(f"p-{u}", None, u, "purchase", 10.0, at + timedelta(hours=2)) for u in buyers])
    refresh_derived(settings, at + timedelta(days=2))
    with empty_db.connect() as conn:
        arms = dict(
            conn.execute(text("SELECT arm || ':' || converted, count(*) FROM push.decision_outcomes GROUP BY 1")).all()
        )
    assert summary["users"] == 60
    assert arms == {
        "control:true": 3,
        "control:false": len(held) - 3,
        "treatment:true": 10,
        "treatment:false": 60 - len(held) - 10,
    }


def test_a_purchase_goes_to_the_last_clicked_message(empty_db, settings):
    add_users(empty_db, ["a"])
    add_sent(empty_db, [("m1", "a", T0), ("m2", "a", T0 + timedelta(hours=1))])
    feedback(
        settings,
        [
            ("c1", "m1", "a", "notification_click", None, T0 + timedelta(minutes=10)),
            ("c2", "m2", "a", "notification_click", None, T0 + timedelta(hours=1, minutes=10)),
            ("p1", None, "a", "purchase", 100.0, T0 + timedelta(hours=2)),
        ],
    )
    refresh_derived(settings, T0 + timedelta(days=3))
    with empty_db.connect() as conn:
        revenue = dict(conn.execute(text("SELECT idempotency_key, revenue FROM push.message_outcomes")).all())
    assert revenue == {"m1": 0.0, "m2": 100.0}
