"""Property-based checks of the policy on real PostgreSQL, and its SQL building blocks.

Hypothesis draws sequences of planning runs, clock advances (across DST changes in several
timezones), opt-outs and opt-ins and new triggers; whatever the sequence, no outbox row may
break a cap, the minimum gap, the quiet hours or an opt-out committed before its run.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from jobs.core.db import copy_rows, truncate_pipeline_tables
from jobs.notify.plan import plan_notifications
from tests.support.notify_data import PROFILE_COLUMNS, add_users, publish_rows

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


# A fixed set of 60 draws per test, so that a CI run is reproducible; to explore further, drop
# derandomize and raise max_examples (400 random sequences, and 500 random greedy cases, passed
# that way).
REPRODUCIBLE = hypothesis_settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@REPRODUCIBLE
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
        publish_rows(conn, [(u, rank, f"i{rank}") for u in USERS for rank in range(1, 4)], as_of="2026-10-01")
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


# --- the closed-form cap arithmetic against the greedy it stands for -----------------------------

GREEDY_USERS = ("g0", "g1", "g2", "g3")
GREEDY_AT = datetime(2026, 11, 25, 6, tzinfo=UTC)
CATEGORY_OF = ("shoes", "books")  # item n is in CATEGORY_OF[n % 2]
INF = 2**31 - 1
GREEDY_CHANNELS = ("push", "email", "sms")  # the consents drawn, in the channel order

greedy_user = st.fixed_dictionaries(
    {
        "consents": st.tuples(st.booleans(), st.booleans(), st.booleans()),  # push, email, sms
        "fatigued": st.booleans(),
        "hour": st.integers(min_value=0, max_value=23),
        "tastes": st.permutations(CATEGORY_OF),
        "recs": st.lists(st.integers(min_value=0, max_value=7), min_size=1, max_size=4, unique=True),
        "triggers": st.lists(st.integers(min_value=0, max_value=7), max_size=2),
        # (minutes from the run's logical time, channel, campaign number or None, status)
        "history": st.lists(
            st.tuples(
                st.integers(min_value=-9 * 1440, max_value=3 * 1440),
                st.sampled_from(GREEDY_CHANNELS),
                st.sampled_from((None, 0, 1)),
                st.sampled_from(("sent", "pending", "dead")),
            ),
            max_size=6,
        ),
    }
)
greedy_campaign = st.tuples(
    st.sampled_from(CATEGORY_OF),
    st.sets(st.sampled_from(GREEDY_CHANNELS), min_size=1),
    st.booleans(),  # transactional
    st.integers(min_value=0, max_value=5),  # priority
)


def _greedy(candidates, history, moment, policy_settings, fatigued, consents):
    """Decide one user's candidates one at a time, best first, as docs/notification-policy.md states the rules."""
    day, week = timedelta(hours=24), timedelta(days=7)
    gap = timedelta(minutes=policy_settings.min_gap_minutes)
    campaign_window = timedelta(days=policy_settings.campaign_cap_days)
    counted = [h for h in history if h["status"] in ("pending", "sent")]
    # The rolling windows that contain the moment end at the moment or at a message after it.
    ends = [moment] + [h["t"] for h in counted if h["t"] >= moment]

    def fullest(span, horizon, channel=None):
        return max(
            sum(1 for h in counted if e - span < h["t"] <= e and channel in (None, h["channel"]))
            for e in ends
            if e < moment + horizon
        )

    day_cap, week_cap = policy_settings.daily_cap, policy_settings.weekly_cap
    if fatigued:
        day_cap = min(day_cap, policy_settings.fatigue_daily_cap)
        week_cap = min(week_cap, policy_settings.fatigue_weekly_cap)
    day_used, week_used = fullest(day, day), fullest(week, week)
    gap_blocked = any(moment - gap < h["t"] < moment + gap for h in counted)
    taken, taken_on = 0, dict.fromkeys(GREEDY_CHANNELS, 0)
    decided = {}
    for c in sorted(candidates, key=lambda c: (not c["transactional"], -c["expected_value"], c["candidate_key"])):
        allowed = c["allowed"] or GREEDY_CHANNELS
        channel = next((ch for ch, ok in zip(GREEDY_CHANNELS, consents, strict=True) if ok and ch in allowed), None)
        if channel is None:
            decided[c["candidate_key"]] = ("suppressed_consent", None)
            continue
        if c["transactional"]:
            decision = "sent"
        elif gap_blocked or (gap > timedelta(0) and taken > 0):
            decision = "capped_min_gap"
        elif day_used + taken >= day_cap:
            decision = "capped_daily"
        elif week_used + taken >= week_cap:
            decision = "capped_weekly"
        elif fullest(day, day, channel) + taken_on[channel] >= policy_settings.channel_daily_caps.get(channel, INF):
            decision = "capped_channel"
        elif c["campaign_id"] is not None and policy_settings.campaign_cap <= sum(
            1 for h in counted if h["campaign"] == c["campaign_id"] and abs(h["t"] - moment) < campaign_window
        ):
            decision = "capped_campaign"
        else:
            decision = "sent"
        if decision == "sent" and (not c["transactional"] or policy_settings.transactional_counts):
            taken += 1
            taken_on[channel] += 1
        decided[c["candidate_key"]] = (decision, channel)
    return decided


@REPRODUCIBLE
# Two cases rare among random draws, spelled out: a candidate capped by its channel must not
# use up the daily budget (the next candidate, on another channel, still goes), and the
# campaign cap binds only when an earlier message of the campaign left the other caps room.
@example(
    users=tuple(
        {
            "consents": (True, True, False),
            "fatigued": False,
            "hour": 9,
            "tastes": ["shoes", "books"],
            "recs": [1],
            "triggers": [0, 2],
            "history": [],
        }
        for _ in GREEDY_USERS
    ),
    campaigns=[("books", {"email"}, False, 0)],
    daily_cap=2,
    weekly_cap=5,
    min_gap=0,
    channel_caps={"push": 1},
    campaign_cap=1,
    campaign_days=7,
    transactional_counts=False,
)
@example(
    users=tuple(
        {
            "consents": (True, False, False),
            "fatigued": False,
            "hour": 9,
            "tastes": ["shoes", "books"],
            "recs": [0, 1],
            "triggers": [],
            "history": [(-3 * 1440, "push", 0, "sent")],
        }
        for _ in GREEDY_USERS
    ),
    campaigns=[("shoes", {"push"}, False, 0)],
    daily_cap=2,
    weekly_cap=5,
    min_gap=0,
    channel_caps={},
    campaign_cap=1,
    campaign_days=7,
    transactional_counts=False,
)
@given(
    users=st.tuples(*[greedy_user] * len(GREEDY_USERS)),
    campaigns=st.lists(greedy_campaign, max_size=2),
    daily_cap=st.integers(min_value=1, max_value=3),
    weekly_cap=st.integers(min_value=1, max_value=6),
    min_gap=st.sampled_from([0, 90]),
    channel_caps=st.dictionaries(st.sampled_from(GREEDY_CHANNELS), st.integers(min_value=1, max_value=2)),
    campaign_cap=st.integers(min_value=1, max_value=2),
    campaign_days=st.sampled_from([1, 7, 10]),
    transactional_counts=st.booleans(),
)
def test_every_decision_equals_the_one_at_a_time_greedy(
    engine,
    settings,
    users,
    campaigns,
    daily_cap,
    weekly_cap,
    min_gap,
    channel_caps,
    campaign_cap,
    campaign_days,
    transactional_counts,
):
    """The policy statement decides all of a user's candidates at once (window functions); it
    must give each candidate the decision, and the channel, of the plain greedy."""
    truncate_pipeline_tables(engine)
    policy_settings = replace(
        settings,
        holdout_percent=0.0,
        quiet_hours_start="00:00",
        quiet_hours_end="00:00",
        daily_cap=daily_cap,
        weekly_cap=weekly_cap,
        min_gap_minutes=min_gap,
        channel_daily_caps=channel_caps,
        campaign_cap=campaign_cap,
        campaign_cap_days=campaign_days,
        transactional_counts=transactional_counts,
        fatigue_daily_cap=1,
        fatigue_weekly_cap=1,
        message_expiry_hours=48,
    )
    campaign_ids = [f"c{n}" for n in range(len(campaigns))]
    history = {
        user: [
            {
                "t": GREEDY_AT + timedelta(minutes=m),
                "channel": ch,
                "status": status,
                "campaign": campaign_ids[c] if c is not None and c < len(campaigns) else None,
            }
            for m, ch, c, status in spec["history"]
        ]
        for user, spec in zip(GREEDY_USERS, users, strict=True)
    }
    for user, spec in zip(GREEDY_USERS, users, strict=True):
        push, email, sms = spec["consents"]
        add_users(engine, [user], push=push, email=email, sms=sms)
    with engine.begin() as conn:
        copy_rows(
            conn,
            "push.items",
            ["item_id", "title", "category", "brand", "price"],
            [(f"i{n}", "Item", CATEGORY_OF[n % 2], "b", 10 + 1.37 * n) for n in range(8)],
        )
        copy_rows(
            conn,
            "push.user_profiles",
            PROFILE_COLUMNS,
            [
                (GREEDY_AT.date(), u, list(spec["tastes"]), ["b"], "{}", 0.5, 1, 1, 1, 1, spec["hour"], 2, 0)
                for u, spec in zip(GREEDY_USERS, users, strict=True)
            ],
        )
        publish_rows(
            conn,
            [
                (u, rank, f"i{item}")
                for u, spec in zip(GREEDY_USERS, users, strict=True)
                for rank, item in enumerate(spec["recs"], 1)
            ],
        )
        copy_rows(
            conn,
            "push.campaigns",
            [
                "campaign_id",
                "name",
                "target_category",
                "valid_from",
                "valid_to",
                "priority",
                "channels",
                "transactional",
            ],
            [
                (
                    cid,
                    cid,
                    category,
                    GREEDY_AT - timedelta(days=1),
                    GREEDY_AT + timedelta(days=3),
                    priority,
                    sorted(channels),
                    transactional,
                )
                for cid, (category, channels, transactional, priority) in zip(campaign_ids, campaigns, strict=True)
            ],
        )
        copy_rows(
            conn,
            "push.triggers",
            ["trigger_key", "user_id", "trigger_type", "item_id", "detected_at", "fire_at", "expires_at"],
            [
                (
                    f"{u}-t{k}",
                    u,
                    "cart_abandonment",
                    f"i{item}",
                    GREEDY_AT - timedelta(hours=2),
                    GREEDY_AT - timedelta(hours=1),
                    GREEDY_AT + timedelta(hours=23),
                )
                for u, spec in zip(GREEDY_USERS, users, strict=True)
                for k, item in enumerate(spec["triggers"])
            ],
        )
        copy_rows(
            conn,
            "push.notification_ledger",
            [
                "idempotency_key",
                "run_key",
                "user_id",
                "channel",
                "source",
                "scheduled_at",
                "payload",
                "status",
                "campaign_id",
            ],
            [
                (f"h-{u}-{n}", "history", u, h["channel"], "recommendation", h["t"], "{}", h["status"], h["campaign"])
                for u, rows in history.items()
                for n, h in enumerate(rows)
            ],
        )
        copy_rows(
            conn,
            "push.notify_user_state",
            ["user_id", "fatigued"],
            [(u, spec["fatigued"]) for u, spec in zip(GREEDY_USERS, users, strict=True)],
        )

    plan_notifications(policy_settings, GREEDY_AT, horizon_hours=24, run_key="greedy")

    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.user_id, d.candidate_key, d.decision, d.channel, d.expected_value, d.transactional,"
                "       d.campaign_id, d.scheduled_at, c.channels AS allowed"
                " FROM push.notification_decisions d LEFT JOIN push.campaigns c USING (campaign_id)"
            )
        ).all()
    assert rows, "no candidate was decided"
    for user, spec in zip(GREEDY_USERS, users, strict=True):
        mine = [row._asdict() for row in rows if row.user_id == user]
        assert len({row["scheduled_at"] for row in mine}) == 1
        expected = _greedy(
            mine, history[user], mine[0]["scheduled_at"], policy_settings, spec["fatigued"], spec["consents"]
        )
        assert {row["candidate_key"]: (row["decision"], row["channel"]) for row in mine} == expected, user
