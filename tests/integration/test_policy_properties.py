"""Property-based checks of the policy on real PostgreSQL, and its SQL building blocks.

Hypothesis draws sequences of planning runs, clock advances (across DST changes in several
timezones), opt-outs and opt-ins and new triggers; whatever the sequence, no outbox row may
break a cap, the minimum gap, the quiet hours or an opt-out committed before its run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from jobs.core.db import copy_rows, truncate_pipeline_tables
from jobs.notify.plan import plan_notifications

TIMEZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Shanghai", "Australia/Sydney")
# Around the end of DST in Europe/US (late Oct/early Nov) and its start in Australia (early Oct).
STARTS = (
    datetime(2026, 10, 24, 20, tzinfo=UTC),
    datetime(2026, 10, 31, 18, tzinfo=UTC),
    datetime(2026, 10, 3, 10, tzinfo=UTC),
)
USERS = ("p0", "p1", "p2")


def test_holdout_bucket_is_stable_uniform_and_salted(engine):
    with engine.connect() as conn:
        share, again, other_salt = conn.execute(
            text(
                "SELECT avg((push.holdout_bucket('u' || n, 's') < 500)::int),"
                " bool_and(push.holdout_bucket('u' || n, 's') = push.holdout_bucket('u' || n, 's')),"
                " avg((push.holdout_bucket('u' || n, 's') = push.holdout_bucket('u' || n, 't'))::int)"
                " FROM generate_series(1, 20000) n"
            )
        ).one()
    assert 0.045 < float(share) < 0.055
    assert again
    assert float(other_salt) < 0.01


def test_idempotency_key_is_deterministic_and_distinguishes_slots(engine):
    with engine.connect() as conn:
        keys = conn.execute(
            text(
                "SELECT push.idempotency_key('u1', 'rec:i1', '2026-11-25'), push.idempotency_key('u1', 'rec:i1',"
                " '2026-11-25'), push.idempotency_key('u1', 'rec:i1', '2026-11-26'),"
                " push.idempotency_key('u2', 'rec:i1', '2026-11-25')"
            )
        ).one()
    assert keys[0] == keys[1]
    assert len({keys[0], keys[2], keys[3]}) == 3
    assert len(keys[0]) == 32


def _in_quiet_hours(at: datetime, tz: str) -> bool:
    local = at.astimezone(ZoneInfo(tz))
    return local.hour >= 22 or local.hour < 8


step = st.one_of(
    st.tuples(st.just("advance"), st.integers(min_value=5, max_value=20 * 60)),
    st.tuples(st.just("consent"), st.sampled_from(USERS), st.booleans()),
    st.tuples(st.just("trigger"), st.sampled_from(USERS)),
    st.tuples(st.just("plan"), st.integers(min_value=1, max_value=24)),
    st.tuples(st.just("plan"), st.integers(min_value=1, max_value=2)),
)


# A fixed set of 60 sequences, so that a CI run is reproducible; to explore further, drop
# derandomize and raise max_examples (400 random sequences passed that way).
@hypothesis_settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(step, min_size=8, max_size=30),
    zones=st.tuples(*[st.sampled_from(TIMEZONES)] * len(USERS)),
    start=st.sampled_from(STARTS),
    daily_cap=st.integers(min_value=1, max_value=3),
    weekly_cap=st.integers(min_value=1, max_value=5),
    min_gap=st.sampled_from([0, 30, 120]),
)
def test_no_sequence_breaks_caps_gaps_quiet_hours_or_opt_outs(
    engine, settings, steps, zones, start, daily_cap, weekly_cap, min_gap
):
    truncate_pipeline_tables(engine)
    policy_settings = replace(
        settings,
        holdout_percent=0.0,
        daily_cap=daily_cap,
        weekly_cap=weekly_cap,
        min_gap_minutes=min_gap,
        quiet_hours_start="22:00",
        quiet_hours_end="08:00",
        message_expiry_hours=48,
        channel_daily_caps={},
    )
    with engine.begin() as conn:
        copy_rows(
            conn,
            "push.users",
            ["user_id", "timezone", "locale", "push_token", "consent_push"],
            [(u, tz, "en", f"tok-{u}", True) for u, tz in zip(USERS, zones, strict=True)],
        )
        copy_rows(
            conn,
            "push.items",
            ["item_id", "title", "category", "brand", "price"],
            [(f"i{n}", "Item", "shoes", "b", 10 + n) for n in range(1, 4)],
        )
        conn.execute(
            text(
                "INSERT INTO push.model_runs VALUES ('r1', '2026-10-01', 'test', '{}', '2026-10-01', '2026-10-01',"
                " '{}', '{}', '/dev/null', true, 'promoted')"
            )
        )
        copy_rows(
            conn,
            "push.recommendations",
            ["run_id", "user_id", "rank", "item_id", "score", "source", "reason"],
            [("r1", u, rank, f"i{rank}", 1.0 / rank, "svd", "test") for u in USERS for rank in range(1, 4)],
        )
        conn.execute(text("INSERT INTO push.published_recommendations VALUES (true, 'r1', '2026-10-01')"))
    now = start
    consent = dict.fromkeys(USERS, True)
    consent_at_run: dict[str, dict[str, bool]] = {}
    for n, action in enumerate(steps):
        if action[0] == "advance":
            now += timedelta(minutes=action[1])
        elif action[0] == "consent":
            _, user, value = action
            consent[user] = value
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE push.users SET consent_push = :v WHERE user_id = :u"), {"v": value, "u": user}
                )
        elif action[0] == "trigger":
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO push.triggers (trigger_key, user_id, trigger_type, item_id, detected_at, fire_at,"
                        " expires_at) VALUES (:k, :u, 'cart_abandonment', 'i1', :at, :at, :exp)"
                    ),
                    {"k": f"t{n}", "u": action[1], "at": now, "exp": now + timedelta(hours=30)},
                )
        else:
            summary = plan_notifications(policy_settings, now, horizon_hours=action[1], run_key=f"run{n}")
            consent_at_run[summary["run_key"]] = dict(consent)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT user_id, run_key, scheduled_at FROM push.notification_ledger ORDER BY user_id, scheduled_at")
        ).all()
    by_user: dict[str, list[datetime]] = {}
    for row in rows:
        assert consent_at_run[row.run_key][row.user_id], "queued for a user who had opted out"
        zone = dict(zip(USERS, zones, strict=True))[row.user_id]
        assert not _in_quiet_hours(row.scheduled_at, zone), "scheduled inside quiet hours"
        by_user.setdefault(row.user_id, []).append(row.scheduled_at)
    for times in by_user.values():
        for i, t in enumerate(times):
            in_day = [u for u in times if t - timedelta(hours=24) < u <= t]
            in_week = [u for u in times if t - timedelta(days=7) < u <= t]
            assert len(in_day) <= daily_cap
            assert len(in_week) <= weekly_cap
            if i and min_gap:
                assert t - times[i - 1] >= timedelta(minutes=min_gap)
