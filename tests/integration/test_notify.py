"""Notification policy against real PostgreSQL: every rule, its order, idempotency and races."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import text

from jobs.notify import plan as plan_module
from jobs.notify.plan import plan_notifications
from tests.support.notify_data import (
    AT,
    USERS,
    add_items,
    add_profiles,
    add_triggers,
    add_users,
    decisions,
    ledger,
    publish,
)


@pytest.fixture
def published(empty_db):
    """40 users (push and email), 5 items and a live recommendation set of 3 items each."""
    add_users(empty_db, USERS)
    add_items(empty_db)
    publish(empty_db, USERS)
    return empty_db


def test_highest_expected_value_wins_when_the_cap_binds(published, policy_settings):
    summary = plan_notifications(policy_settings, AT)
    assert summary["decisions"] == {"sent": 40, "capped_min_gap": 80}
    # Rank 1 has the highest expected value (price x rate / rank), so it is the one sent.
    assert {row.source for row in ledger(published)} == {"recommendation"}
    with published.connect() as conn:
        items = set(conn.execute(text("SELECT item_id FROM push.notification_ledger")).scalars())
    assert items == {"i1"}


def test_without_min_gap_the_daily_cap_binds(published, policy_settings):
    summary = plan_notifications(replace(policy_settings, min_gap_minutes=0, daily_cap=2), AT)
    assert summary["decisions"] == {"sent": 80, "capped_daily": 40}


def test_retry_of_the_same_run_changes_nothing(published, policy_settings):
    first = plan_notifications(policy_settings, AT)
    before = ledger(published)
    with published.connect() as conn:
        decided = conn.execute(text("SELECT * FROM push.notification_decisions ORDER BY 1, 2, 3")).all()
    second = plan_notifications(policy_settings, AT)
    assert first == second
    assert ledger(published) == before
    with published.connect() as conn:
        assert conn.execute(text("SELECT * FROM push.notification_decisions ORDER BY 1, 2, 3")).all() == decided


def test_a_later_run_the_same_day_sees_duplicates_and_caps(published, policy_settings):
    plan_notifications(policy_settings, AT)
    later = plan_notifications(policy_settings, AT + timedelta(hours=3))
    # The key of (user, item, day) is taken: the sent item is a duplicate, the others capped.
    assert later["decisions"] == {"duplicate": 40, "capped_daily": 80}
    assert len(ledger(published)) == 40


def test_dry_run_decides_but_records_nothing(published, policy_settings):
    summary = plan_notifications(policy_settings, AT, dry_run=True)
    assert summary["decisions"] == {"sent": 40, "capped_min_gap": 80}
    assert ledger(published) == []
    assert decisions(published) == {}


def test_opt_out_committed_before_planning_is_honoured(published, policy_settings):
    with published.begin() as conn:
        conn.execute(text("UPDATE push.users SET consent_push = false, consent_email = false WHERE user_id = 'u007'"))
    plan_notifications(policy_settings, AT)
    assert decisions(published, "user_id = 'u007'") == {"suppressed_consent": 3}
    assert "u007" not in {row.user_id for row in ledger(published)}


def test_channel_needs_consent_and_an_address(published, policy_settings):
    with published.begin() as conn:
        conn.execute(text("UPDATE push.users SET push_token = NULL WHERE user_id = 'u001'"))
        conn.execute(text("UPDATE push.users SET email = NULL, push_token = NULL WHERE user_id = 'u002'"))
    plan_notifications(policy_settings, AT)
    channels = {row.user_id: row.channel for row in ledger(published)}
    assert channels["u000"] == "push"
    assert channels["u001"] == "email"
    assert "u002" not in channels


def test_control_group_is_stable_recorded_and_gets_nothing(published, policy_settings):
    halved = replace(policy_settings, holdout_percent=50.0)
    plan_notifications(halved, AT)
    with published.connect() as conn:
        holdout = set(
            conn.execute(text("SELECT user_id FROM push.notification_decisions WHERE decision = 'holdout'")).scalars()
        )
        again = set(
            conn.execute(
                text("SELECT user_id FROM push.users WHERE push.holdout_bucket(user_id, :salt) < 5000"),
                {"salt": halved.holdout_salt},
            ).scalars()
        )
    assert 5 < len(holdout) < 35
    assert holdout == again
    assert not holdout & {row.user_id for row in ledger(published)}


def test_quiet_hours_defer_to_the_end_of_the_window_in_local_time(empty_db, policy_settings):
    add_users(empty_db, ["ny"], timezone="America/New_York")
    add_users(empty_db, ["sh"], timezone="Asia/Shanghai")
    add_items(empty_db)
    publish(empty_db, ["ny", "sh"])
    quiet = replace(policy_settings, quiet_hours_start="22:00", quiet_hours_end="08:00")
    # 12:00 UTC is 07:00 in New York (quiet until 08:00 = 13:00 UTC) and 20:00 in Shanghai (not quiet).
    summary = plan_notifications(quiet, AT)
    assert summary["decisions"] == {"deferred_quiet_hours": 1, "sent": 1, "capped_min_gap": 4}
    at = {row.user_id: row.scheduled_at for row in ledger(empty_db)}
    assert at["ny"] == datetime(2026, 11, 25, 13, tzinfo=UTC)
    assert at["sh"] == AT


def test_quiet_hours_are_dst_correct(engine):
    # New York leaves DST on 2026-11-01: 08:00 local is 12:00 UTC before and 13:00 UTC after.
    cases = [
        ("2026-10-31T06:00:00+00", "2026-10-31T12:00:00+00"),  # 02:00 EDT, quiet until 08:00 EDT
        ("2026-11-01T06:30:00+00", "2026-11-01T13:00:00+00"),  # 01:30 EDT on the change day -> 08:00 EST
        ("2026-11-01T17:00:00+00", None),  # 12:00 EST, not quiet
        ("2026-03-08T06:30:00+00", "2026-03-08T12:00:00+00"),  # 01:30 EST, DST starts -> 08:00 EDT
    ]
    with engine.connect() as conn:
        for due, expected in cases:
            got = conn.execute(
                text("SELECT push.quiet_hours_end(CAST(:due AS timestamptz), 'America/New_York', '22:00', '08:00')"),
                {"due": due},
            ).scalar_one()
            want = None if expected is None else datetime.fromisoformat(expected)
            assert got == want, due


def test_deferred_past_expiry_is_not_queued(empty_db, policy_settings):
    add_users(empty_db, ["ny"], timezone="America/New_York")
    add_items(empty_db)
    publish(empty_db, ["ny"])
    quiet = replace(policy_settings, quiet_hours_start="22:00", quiet_hours_end="08:00", message_expiry_hours=0)
    # Expiry 0 h: the message is worthless by the end of the quiet window.
    summary = plan_notifications(quiet, AT)
    assert summary["decisions"] == {"expired_quiet_hours": 3}
    assert ledger(empty_db) == []


def test_weekly_cap_and_fatigue(published, policy_settings):
    weekly = replace(policy_settings, weekly_cap=2, min_gap_minutes=0)
    with published.begin() as conn:
        conn.execute(text("INSERT INTO push.notify_user_state (user_id, fatigued) VALUES ('u005', true)"))
    plan_notifications(weekly, AT)
    plan_notifications(weekly, AT + timedelta(days=1))
    third = plan_notifications(weekly, AT + timedelta(days=2))
    # Day 3: two sends already this week for everyone -> capped_weekly; the fatigued user was
    # already capped on day 2 (fatigue weekly cap 1).
    assert third["decisions"]["capped_weekly"] == 3 * 40
    per_user = {}
    for row in ledger(published):
        per_user[row.user_id] = per_user.get(row.user_id, 0) + 1
    assert per_user["u005"] == 1
    assert set(per_user.values()) == {1, 2}


def test_transactional_messages_are_exempt_and_optionally_counted(published, policy_settings):
    with published.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.campaigns (campaign_id, name, target_items, discount_text, valid_from, valid_to,"
                " priority, channels, transactional) VALUES ('order', 'Order update', ARRAY['i1'], NULL,"
                " '2026-11-01', '2026-12-01', 0, '{email}', true)"
            )
        )
    add_profiles(published, [(u, None, 12) for u in USERS])
    summary = plan_notifications(policy_settings, AT)
    # The transactional campaign goes first and does not use up the daily message.
    assert summary["decisions"] == {"sent": 80, "capped_min_gap": 80}
    counting = replace(policy_settings, transactional_counts=True)
    later = plan_notifications(counting, AT + timedelta(days=1))
    assert later["decisions"]["sent"] == 40  # only the transactional one: it used the day's cap
    assert later["decisions"]["capped_min_gap"] == 120


def test_campaign_channel_set_and_campaign_cap(published, policy_settings):
    with published.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.campaigns (campaign_id, name, target_items, discount_text, valid_from, valid_to,"
                " priority, channels, transactional) VALUES ('sale', 'Sale', ARRAY['i2'], '50% off',"
                " '2026-11-01', '2026-12-01', 50, '{email}', false)"
            )
        )
    add_profiles(published, [(u, None, 12) for u in USERS])
    loose = replace(policy_settings, min_gap_minutes=0, daily_cap=5)
    first = plan_notifications(loose, AT, campaign_id="sale")
    assert first["decisions"] == {"sent": 40}
    assert {row.channel for row in ledger(published)} == {"email"}
    # The message's facts for rendering, from the campaign, its best matching item and the user.
    with published.connect() as conn:
        payloads = conn.execute(text("SELECT DISTINCT payload FROM push.notification_ledger")).scalars().all()
    assert payloads == [
        {
            "locale": "en",
            "facts": {
                "kind": "campaign",
                "item_title": "Item 2",
                "category": "shoes",
                "price": "12.00",
                "reason": "test",
                "discount_text": "50% off",
                "old_price": None,
                "template": None,
            },
        }
    ]
    # The next day the campaign is capped (1 per user per 7 days); the single-campaign run
    # considers nothing else.
    second = plan_notifications(loose, AT + timedelta(days=1), campaign_id="sale")
    assert second["decisions"] == {"capped_campaign": 40}


def test_channel_cap(published, policy_settings):
    capped = replace(policy_settings, min_gap_minutes=0, daily_cap=5, channel_daily_caps={"push": 2})
    summary = plan_notifications(capped, AT)
    assert summary["decisions"] == {"sent": 80, "capped_channel": 40}


def _trigger_rows(users, tag, at):
    return [(f"{tag}-{u}", u, "i1", at) for u in users]


@pytest.mark.slow
def test_racing_senders_never_exceed_the_cap_and_lose_nothing(empty_db, policy_settings):
    users = [f"r{n:04d}" for n in range(1000)]
    add_users(empty_db, users)
    add_items(empty_db)
    cap = 3
    racing = replace(policy_settings, min_gap_minutes=0, daily_cap=cap, weekly_cap=100)
    senders, rounds = 8, 100
    start = datetime(2026, 11, 25, 9, tzinfo=UTC)
    # Every sender in every round asks to message 40 users (distinct trigger each time), all
    # within one 24 h window: each user is asked for ~32 times and may get exactly `cap`.
    requested: dict[str, int] = {}
    plan_rows = []
    for r in range(rounds):
        for s in range(senders):
            chosen = [users[(r * 97 + s * 131 + k * 7) % len(users)] for k in range(40)]
            at = start + timedelta(minutes=r)
            plan_rows.append((r, s, chosen, at))
            for u in chosen:
                requested[u] = requested.get(u, 0) + 1
    add_triggers(empty_db, [(f"t{r}-{s}-{u}", u, "i1", at) for r, s, chosen, at in plan_rows for u in chosen])
    with empty_db.begin() as conn:
        conn.execute(text("ANALYZE"))
    errors = []

    def sender(s):
        try:
            for r, s2, chosen, at in plan_rows:
                if s2 == s:
                    plan_notifications(racing, at, users=chosen, kinds=("trigger",), run_key=f"race-{r}-{s}")
        except Exception as error:  # surfaced by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=sender, args=(s,)) for s in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    sent: dict[str, int] = {}
    for row in ledger(empty_db):
        sent[row.user_id] = sent.get(row.user_id, 0) + 1
    assert {u: sent.get(u, 0) for u in requested} == {u: min(cap, n) for u, n in requested.items()}


def test_the_same_run_started_twice_at_once_queues_once(published, policy_settings):
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(plan_notifications(policy_settings, AT, batch_size=7))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(ledger(published)) == 40
    assert decisions(published) == {"sent": 40, "capped_min_gap": 80}


def test_splitting_users_across_workers_changes_no_decision(published, policy_settings):
    def outcome():
        with published.connect() as conn:
            return conn.execute(
                text(
                    "SELECT d.user_id, d.candidate_key, d.decision, d.channel, d.scheduled_at, l.payload"
                    " FROM push.notification_decisions d"
                    " LEFT JOIN push.notification_ledger l ON l.idempotency_key = d.idempotency_key"
                    " AND d.decision IN ('sent', 'deferred_quiet_hours') ORDER BY 1, 2"
                )
            ).all()

    alone = plan_notifications(policy_settings, AT, batch_size=6, workers=1)
    expected = outcome()
    with published.begin() as conn:
        conn.execute(
            text("TRUNCATE push.notification_ledger, push.notification_decisions, push.notification_runs CASCADE")
        )
    split = plan_notifications(policy_settings, AT, batch_size=6, workers=3)
    assert split == alone
    assert outcome() == expected
    assert len(expected) == 120


@pytest.mark.parametrize("workers", [1, 2])
def test_a_crash_mid_run_then_a_retry_equals_an_uninterrupted_run(published, policy_settings, monkeypatch, workers):
    original = plan_module._decide_batch
    calls = {"n": 0}
    lock = threading.Lock()

    def crash_on_third(*args, **kwargs):
        with lock:
            calls["n"] += 1
            crash = calls["n"] == 3
        if crash:
            raise RuntimeError("worker killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(plan_module, "_decide_batch", crash_on_third)
    with pytest.raises(RuntimeError, match="worker killed"):
        plan_notifications(policy_settings, AT, batch_size=7, workers=workers)
    partial = len(ledger(published))
    if workers == 1:
        assert partial == 14  # two batches of 7 users committed, the third rolled back
    else:
        # The other worker finishes its range; only the failed batch (7 users) is missing.
        assert 0 < partial < 40
    monkeypatch.setattr(plan_module, "_decide_batch", original)
    retried = plan_notifications(policy_settings, AT, batch_size=7, workers=workers)
    assert retried["decisions"] == {"sent": 40, "capped_min_gap": 80}
    assert len(ledger(published)) == 40


def test_opt_out_committed_while_a_run_is_in_flight_is_honoured(published, policy_settings, monkeypatch):
    original = plan_module._decide_batch
    calls = {"n": 0}

    def opt_out_before_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            # Another session withdraws consent after the run collected its candidates.
            with published.begin() as conn:
                conn.execute(text("UPDATE push.users SET consent_push = false, consent_email = false"))
        return original(*args, **kwargs)

    monkeypatch.setattr(plan_module, "_decide_batch", opt_out_before_second_batch)
    # One session: its second batch starts after the opt-out committed.
    plan_notifications(policy_settings, AT, batch_size=20, workers=1)
    assert {row.user_id for row in ledger(published)} == set(USERS[:20])
    assert decisions(published, "user_id >= 'u020'") == {"suppressed_consent": 60}


def test_a_trigger_cancelled_after_queueing_drops_its_message(empty_db, policy_settings):
    import pandas as pd

    from jobs.notify.triggers import TRIGGER_COLUMNS, store_triggers

    add_users(empty_db, ["ny"], timezone="America/New_York")
    add_items(empty_db)
    add_triggers(empty_db, [("cart-1", "ny", "i1", AT)])
    quiet = replace(policy_settings, quiet_hours_start="22:00", quiet_hours_end="08:00")
    # 12:00 UTC is 07:00 in New York: the message is deferred to 08:00 and waits in the outbox.
    assert plan_notifications(quiet, AT)["decisions"] == {"deferred_quiet_hours": 1}
    bought = AT + timedelta(minutes=20)
    row = dict.fromkeys(TRIGGER_COLUMNS)
    row.update(
        trigger_key="cart-1", user_id="ny", trigger_type="cart_abandonment", item_id="i1", detected_at=AT,
        fire_at=AT, expires_at=AT + timedelta(hours=24), origin="batch", cancelled_at=bought,
    )  # fmt: skip
    interactions = pd.DataFrame(columns=["user_id", "item_id", "last_viewed_at", "last_carted_at", "last_purchased_at"])
    with empty_db.begin() as conn:
        store_triggers(conn, pd.DataFrame([row]).astype(object), interactions)
    with empty_db.connect() as conn:
        status, error = conn.execute(text("SELECT status, last_error FROM push.notification_ledger")).one()
        cancelled = conn.execute(text("SELECT cancelled_at FROM push.triggers")).scalar_one()
    assert status == "cancelled"
    assert "bought or removed" in error
    assert cancelled == bought


def test_a_campaign_not_started_at_the_send_moment_waits(published, policy_settings):
    with published.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.campaigns (campaign_id, name, target_items, discount_text, valid_from, valid_to,"
                " priority, channels, transactional) VALUES ('noon', 'Noon sale', ARRAY['i1'], '10% off',"
                " '2026-11-25T18:00:00Z', '2026-12-01', 0, '{push}', false)"
            )
        )
    add_profiles(published, [(u, None, 20) for u in USERS])  # best hour 20:00 UTC
    add_triggers(published, [(f"t-{u}", u, "i2", AT) for u in USERS])  # due now: the send moment is 12:00
    summary = plan_notifications(policy_settings, AT, horizon_hours=24)
    with published.connect() as conn:
        campaign_decisions = conn.execute(
            text("SELECT count(*) FROM push.notification_decisions WHERE source = 'campaign'")
        ).scalar_one()
    assert campaign_decisions == 0  # starts at 18:00, after the 12:00 send moment: a later run decides it
    assert summary["decisions"]["sent"] == 40


def test_half_hour_timezones_belong_to_one_hourly_run(empty_db, policy_settings):
    add_users(empty_db, ["in"], timezone="Asia/Kolkata")
    add_items(empty_db)
    publish(empty_db, ["in"])
    add_profiles(empty_db, [("in", None, 15)])  # 15:00 in Kolkata = 09:30 UTC
    nine = plan_notifications(policy_settings, datetime(2026, 11, 25, 9, tzinfo=UTC))
    ten = plan_notifications(policy_settings, datetime(2026, 11, 25, 10, tzinfo=UTC))
    assert nine["users"] == 1
    assert ten["users"] == 0
    assert {row.scheduled_at for row in ledger(empty_db)} == {datetime(2026, 11, 25, 9, 30, tzinfo=UTC)}


def test_a_campaign_audience_reaches_its_members_only_and_the_preview_says_so(published, policy_settings):
    """Region and age band need consent to profiling; segment and recent intent do not."""
    from jobs.notify.audience import preview_audience

    add_profiles(published, [(u, n % 2, 12) for n, u in enumerate(USERS)])
    with published.begin() as conn:
        for n, user in enumerate(USERS):
            conn.execute(
                text(
                    "UPDATE push.users SET region = :r, age_band = '25-34', consent_profiling = :c WHERE user_id = :u"
                ),
                {"r": "north" if n < 20 else "south", "c": n % 4 != 3, "u": user},
            )
        conn.execute(text("INSERT INTO push.user_pseudonyms SELECT user_id, 'k-' || user_id FROM push.users"))
        # Users u000..u009 viewed a shoe in the last hour.
        conn.execute(
            text(
                "INSERT INTO push.recent_intent (user_id, window_hours, item_id, last_viewed_at, computed_for)"
                " SELECT user_id, w, 'i4', :at, :at FROM push.users, unnest(ARRAY[1, 24]) AS w WHERE user_id < 'u010'"
            ),
            {"at": AT},
        )
        conn.execute(
            text(
                "INSERT INTO push.campaigns (campaign_id, name, target_category, valid_from, valid_to, priority,"
                " channels, transactional, audience) VALUES"
                " ('north', 'North', NULL, '2026-11-01', '2026-12-01', 5, '{push}', false,"
                '  \'{"regions": ["north"], "age_bands": ["25-34"], "segments": [0]}\'),'
                " ('intent', 'Shoes again', 'shoes', '2026-11-01', '2026-12-01', 5, '{push}', false,"
                '  \'{"intent_categories": ["shoes"], "intent_hours": 1}\')'
            )
        )
    # north: region north (u000..u019), consented (not n % 4 == 3), segment 0 (even n).
    north = [u for n, u in enumerate(USERS) if n < 20 and n % 4 != 3 and n % 2 == 0]
    preview = preview_audience(policy_settings, "north", AT, sample=3)
    assert preview["members"] == len(north) == 10
    assert preview["sample_user_keys"] == [f"k-{u}" for u in sorted(north)[:3]]
    assert preview["would_decide"] == {"sent": len(north)}
    assert decisions(published) == {}  # a preview records nothing

    loose = replace(policy_settings, min_gap_minutes=0, daily_cap=5)
    plan_notifications(loose, AT, campaign_id="north")
    assert sorted(row.user_id for row in ledger(published)) == sorted(north)
    plan_notifications(loose, AT, campaign_id="intent")
    reached = {row.user_id for row in ledger(published, "source = 'campaign' AND run_key LIKE '%intent%'")}
    assert reached == {f"u{n:03d}" for n in range(10)}


def test_a_malformed_audience_is_refused_with_the_campaign_named():
    from jobs.ingest.reference import checked_audience

    assert checked_audience("c", None) is None
    assert checked_audience("c", '{"regions": ["n"], "segments": [1]}') == '{"regions": ["n"], "segments": [1]}'
    for bad, why in [
        ("{regions", "is not JSON"),
        ('["north"]', "must be a JSON object"),
        ('{"region": ["north"]}', "unknown keys"),
        ('{"segments": ["one"]}', "segments must be a non-empty list of ints"),
        ('{"regions": []}', "non-empty"),
        ('{"intent_hours": 24}', "come with intent_categories"),
        ('{"intent_categories": ["x"], "intent_hours": 5}', "intent_hours must be one of"),
    ]:
        with pytest.raises(ValueError, match=why) as raised:
            checked_audience("spring", bad)
        assert "campaign 'spring'" in str(raised.value)


def test_policy_arms_replace_one_part_of_the_policy_each_and_are_recorded(published, policy_settings):
    """Every user is fatigued and the store's best hour is 15:00: the full arm gets one message
    in two days at 15:00 of its recommendations; fixed_cap two; random_hour its hashed hours;
    popularity the week's most bought items it has not bought itself."""
    arms = replace(
        policy_settings,
        policy_arms={"random_hour": 25.0, "fixed_cap": 25.0, "popularity": 25.0},
        weekly_cap=2,
        min_gap_minutes=0,
        fatigue_weekly_cap=1,
    )
    bought = [("u001", "i4"), ("u002", "i4"), ("u003", "i4"), ("u004", "i3")]
    with published.begin() as conn:
        conn.execute(
            text("INSERT INTO push.notify_user_state (user_id, fatigued) SELECT user_id, true FROM push.users")
        )
        conn.execute(
            text(
                "INSERT INTO push.send_time_estimates SELECT user_id, d, 15, 0.1, 'user'"
                " FROM push.users CROSS JOIN generate_series(0, 6) AS d"
            )
        )
        for n, (user, item) in enumerate(bought):
            conn.execute(
                text(
                    "INSERT INTO push.notification_feedback (event_id, user_id, event_type, item_id, revenue, ts)"
                    " VALUES (:e, :u, 'purchase', :i, 10, :ts)"
                ),
                {"e": f"p{n}", "u": user, "i": item, "ts": AT - timedelta(days=2)},
            )
    day = datetime(2026, 11, 25, tzinfo=UTC)
    plan_notifications(arms, day, horizon_hours=24)
    plan_notifications(arms, day + timedelta(days=1), horizon_hours=24)
    with published.connect() as conn:
        arm_of = dict(
            conn.execute(
                text("SELECT user_id, push.policy_arm(user_id, :salt, :names, :bounds) FROM push.users"),
                {"salt": arms.policy_arms_salt, "names": list(arms.policy_arms), "bounds": [2500, 5000, 7500]},
            ).all()
        )
        recorded = set(conn.execute(text("SELECT DISTINCT user_id, policy_arm FROM push.notification_decisions")).all())
        sent = conn.execute(
            text("SELECT user_id, item_id, scheduled_at FROM push.notification_ledger ORDER BY user_id, scheduled_at")
        ).all()
        hashed = dict(
            conn.execute(
                text(
                    "SELECT user_id || ':' || d, push.holdout_bucket(user_id || ':' || d, :salt) % 24"
                    " FROM push.users CROSS JOIN (VALUES ('2026-11-25'), ('2026-11-26')) AS v (d)"
                ),
                {"salt": arms.policy_arms_salt},
            ).all()
        )
    assert recorded == set(arm_of.items())
    assert {arm: sum(1 for a in arm_of.values() if a == arm) for arm in set(arm_of.values())}.keys() == {
        "full",
        "random_hour",
        "fixed_cap",
        "popularity",
    }
    per_user: dict[str, list] = {}
    for row in sent:
        per_user.setdefault(row.user_id, []).append(row)
    for user, arm in arm_of.items():
        rows = per_user[user]
        # Fatigue lowers the weekly cap to one message, except in the fixed_cap arm.
        assert len(rows) == (2 if arm == "fixed_cap" else 1), (user, arm)
        if arm == "random_hour":
            assert rows[0].scheduled_at.hour == hashed[f"{user}:{rows[0].scheduled_at.date()}"]
        else:
            assert all(r.scheduled_at.hour == 15 for r in rows), (user, arm)
        if arm == "popularity":
            # i4 (bought three times) first, then i3; a user who bought i4 is shown i3.
            assert rows[0].item_id == ("i3" if (user, "i4") in bought else "i4"), user
        else:
            assert rows[0].item_id in {"i1", "i2", "i3"}, (user, arm)
    assert len({rows[0].scheduled_at.hour for u, rows in per_user.items() if arm_of[u] == "random_hour"}) > 1


def _add_sale_campaign(conn) -> None:
    """Campaign 'sale': 50 % off item i2 in November, by push."""
    conn.execute(
        text(
            "INSERT INTO push.campaigns (campaign_id, name, target_items, discount_text, valid_from, valid_to,"
            " priority, channels) VALUES ('sale', 'Sale', ARRAY['i2'], '50% off', '2026-11-01', '2026-12-01', 50,"
            " '{push}')"
        )
    )


def test_campaign_variants_are_assigned_by_weight_recorded_and_change_wording_and_channel(published, policy_settings):
    """Variant a (control) keeps the campaign as it is; b (three times its weight) is worded by
    the 'urgent' template and goes by e-mail."""
    from jobs.notify.relay import message_content

    with published.begin() as conn:
        _add_sale_campaign(conn)
        conn.execute(
            text(
                "INSERT INTO push.campaign_variants (campaign_id, variant, weight, template, channel, control)"
                " VALUES ('sale', 'a', 1, NULL, NULL, true), ('sale', 'b', 3, 'urgent', 'email', false)"
            )
        )
        split = conn.execute(
            text("SELECT push.campaign_variant('sale', 'x' || g), count(*) FROM generate_series(1, 20000) g GROUP BY 1")
        ).all()
    assert dict(split).keys() == {"a", "b"}
    assert abs(dict(split)["b"] / 20000 - 0.75) < 0.01  # the weights, over many users
    add_profiles(published, [(u, None, 12) for u in USERS])
    loose = replace(policy_settings, min_gap_minutes=0, daily_cap=5)
    assert plan_notifications(loose, AT, campaign_id="sale")["decisions"] == {"sent": 40}

    with published.connect() as conn:
        assigned = dict(
            conn.execute(text("SELECT user_id, push.campaign_variant('sale', user_id) FROM push.users")).all()
        )
        rows = conn.execute(
            text(
                "SELECT d.user_id, d.variant, l.channel, l.payload FROM push.notification_decisions d"
                " JOIN push.notification_ledger l USING (idempotency_key)"
            )
        ).all()
    assert {r.user_id: r.variant for r in rows} == assigned
    assert set(assigned.values()) == {"a", "b"}
    for row in rows:
        content = message_content(row.channel, row.payload)
        if row.variant == "b":
            assert (row.channel, content["title"]) == ("email", "Today only: 50% off on shoes")
            assert content["body"] == "Item 2 for 12.00, while stocks last."
        else:
            assert (row.channel, content["title"]) == ("push", "50% off on shoes")
    # A variant naming a template that does not exist stops the planning run, named.
    with published.begin() as conn:
        conn.execute(
            text("INSERT INTO push.campaign_variants (campaign_id, variant, template) VALUES ('sale', 'c', 'nope')")
        )
    with pytest.raises(ValueError, match="sale/c: 'nope'"):
        plan_notifications(loose, AT + timedelta(days=1), campaign_id="sale")


def test_thompson_shares_follow_the_complete_outcomes_and_assign_the_days_users(published, policy_settings):
    """Variant b converted 30 of 100 delivered messages, a 5 of 100: the day's shares move to b
    (a keeps its floor), the planner assigns users by them, and a message sent within the
    attribution window before the day is not counted yet."""
    from jobs.notify.allocation import ensure_allocations

    with published.begin() as conn:
        _add_sale_campaign(conn)
        conn.execute(
            text(
                "INSERT INTO push.campaign_variants (campaign_id, variant, weight, template, control)"
                " VALUES ('sale', 'a', 1, NULL, true), ('sale', 'b', 1, 'urgent', false)"
            )
        )
        for n in range(201):
            variant, converted = ("a", n < 5) if n < 100 else ("b", n < 130)
            sent_at = AT - timedelta(days=3) if n < 200 else AT - timedelta(hours=1)  # the last: too recent
            key = f"m{n}"
            conn.execute(
                text(
                    "INSERT INTO push.notification_decisions (run_key, user_id, candidate_key, source, expected_value,"
                    " decision, idempotency_key, decided_at, campaign_id, variant)"
                    " VALUES ('old', :u, 'campaign:sale', 'campaign', 1, 'sent', :k, :t, 'sale', :v)"
                ),
                {"u": f"x{n}", "k": key, "t": sent_at, "v": "b" if n == 200 else variant},
            )
            conn.execute(
                text(
                    "INSERT INTO push.message_outcomes (idempotency_key, run_key, user_id, campaign_id, source, channel,"
                    " sent_at, converted_at) VALUES (:k, 'old', :u, 'sale', 'campaign', 'push', :t, :c)"
                ),
                {"k": key, "u": f"x{n}", "t": sent_at, "c": sent_at + timedelta(hours=1) if converted else None},
            )
    thompson = replace(policy_settings, variant_allocation="thompson", variant_min_share=0.1, min_gap_minutes=0)
    day = AT.date()
    stored = {a.variant: a for a in ensure_allocations(published, thompson, day)}
    assert (stored["a"].messages, stored["a"].successes, stored["b"].messages, stored["b"].successes) == (
        100,
        5,
        100,
        30,
    )
    assert stored["b"].chance_best > 0.999
    assert stored["a"].share == pytest.approx(0.1, abs=0.001)
    assert ensure_allocations(published, thompson, day) is None  # once a day
    with published.connect() as conn:
        split = dict(
            conn.execute(
                text(
                    "SELECT push.campaign_variant_on('sale', 'y' || g, :d), count(*)"
                    " FROM generate_series(1, 20000) g GROUP BY 1"
                ),
                {"d": day},
            ).all()
        )
        # A day without shares falls back on the weights (1:1).
        other_day = dict(
            conn.execute(
                text(
                    "SELECT push.campaign_variant_on('sale', 'y' || g, :d), count(*)"
                    " FROM generate_series(1, 20000) g GROUP BY 1"
                ),
                {"d": day - timedelta(days=30)},
            ).all()
        )
    assert abs(split["a"] / 20000 - stored["a"].share) < 0.01
    assert abs(other_day["a"] / 20000 - 0.5) < 0.02
    plan_notifications(thompson, AT, campaign_id="sale")
    with published.connect() as conn:
        decided = (
            conn.execute(
                text(
                    "SELECT d.variant = push.campaign_variant_on('sale', d.user_id, :d) FROM push.notification_decisions d"
                    " WHERE d.run_key <> 'old'"
                ),
                {"d": day},
            )
            .scalars()
            .all()
        )
    assert len(decided) == 40
    assert all(decided)


def test_campaign_variants_load_with_the_campaigns_and_a_bad_row_is_refused_named(empty_db, settings, tmp_path):
    from datetime import date

    from jobs.ingest.reference import load_reference
    from simulation.synthetic import GeneratorConfig, generate

    generate(GeneratorConfig(users=10, items=40, days=1, seed=1, end_date=date(2026, 11, 24)), tmp_path)
    local = replace(settings, landing_dir=tmp_path)
    campaign = (tmp_path / "reference" / "campaigns.csv").read_text().splitlines()[1].split(",")[0]
    variants = tmp_path / "reference" / "campaign_variants.csv"
    variants.write_text(
        f"campaign_id,variant,weight,template,channel,control\n{campaign},a,,,,true\n{campaign},b,3,urgent,email,\n"
    )
    assert load_reference(local)["campaign_variants"] == 2
    assert load_reference(local)["campaign_variants"] == 2  # replaced, not added to
    with empty_db.connect() as conn:
        rows = conn.execute(
            text("SELECT variant, weight, template, channel, control FROM push.campaign_variants")
        ).all()
    assert sorted(tuple(r) for r in rows) == [("a", 1, None, None, True), ("b", 3, "urgent", "email", False)]
    header = "campaign_id,variant,weight,template,channel,control\n"
    for bad, why in [
        ("nope,a,1,,,", "campaign 'nope' is not in campaigns.csv"),
        (f"{campaign},a,0,,,", "weight must be a whole number"),
        (f"{campaign},a,1,,,maybe", "control must be true or false"),
        (f"{campaign},a,1,,fax,", "refused by push.campaign_variants"),
        (f"{campaign},a,1,,,\n{campaign},a,2,,,", "refused by push.campaign_variants"),
    ]:
        variants.write_text(header + bad + "\n")
        with pytest.raises(ValueError, match=why):
            load_reference(local)
    # A refused snapshot changes nothing: the last good variants stay.
    with empty_db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM push.campaign_variants")).scalar_one() == 2


def test_explored_send_hours_are_logged_with_their_propensities_and_read_back_for_evaluation(
    published, policy_settings
):
    """Best hour 15:00 for everyone; half the (user, day) pairs explored, a quarter of the users in
    the random_hour arm: each decision's planned hour is its send hour, and its propensity is
    push.send_hour's chance of picking it."""
    from jobs.notify.offpolicy import estimate, load_log, uniform_share

    exploring = replace(policy_settings, explore_percent=50.0, policy_arms={"random_hour": 25.0}, min_gap_minutes=0)
    with published.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.send_time_estimates SELECT user_id, d, 15, 0.1, 'user'"
                " FROM push.users CROSS JOIN generate_series(0, 6) AS d"
            )
        )
    day = datetime(2026, 11, 25, tzinfo=UTC)
    for n in range(3):
        plan_notifications(exploring, day + timedelta(days=n), horizon_hours=24)
    with published.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT user_id, policy_arm, planned_hour, best_hour, hour_propensity, scheduled_at, idempotency_key"
                " FROM push.notification_decisions WHERE decision = 'sent'"
            )
        ).all()
    assert len(rows) > 2 * len(USERS)  # three days, less the rolling daily cap between close hours
    explored = 0
    for row in rows:
        assert row.scheduled_at.astimezone(UTC).hour == row.planned_hour  # UTC users, no quiet hours
        assert row.best_hour == 15
        share = float(uniform_share(np.array([row.planned_hour]))[0])
        if row.policy_arm == "random_hour":
            assert row.hour_propensity == pytest.approx(share)
        else:
            assert row.hour_propensity == pytest.approx(0.5 * share + 0.5 * (row.planned_hour == 15))
            explored += row.planned_hour != 15
    assert 0 < explored < len(rows)
    # Without exploration the full policy's hour is the best one, with propensity 1.
    quiet = replace(policy_settings, explore_percent=0.0, min_gap_minutes=0)
    plan_notifications(quiet, day + timedelta(days=5), horizon_hours=24)
    with published.connect() as conn:
        later = conn.execute(
            text(
                "SELECT DISTINCT planned_hour, hour_propensity FROM push.notification_decisions"
                " WHERE decided_at = :at AND decision = 'sent'"
            ),
            {"at": day + timedelta(days=5)},
        ).all()
    assert later == [(15, 1.0)]
    # Outcomes of the delivered messages read back for evaluation: every second one clicked.
    with published.begin() as conn:
        for n, row in enumerate(rows):
            conn.execute(
                text(
                    "INSERT INTO push.message_outcomes (idempotency_key, run_key, user_id, source, channel, sent_at,"
                    " clicked_at) VALUES (:k, 'r', :u, 'recommendation', 'push', :at, :clicked)"
                ),
                {"k": row.idempotency_key, "u": row.user_id, "at": row.scheduled_at,
                 "clicked": row.scheduled_at if n % 2 else None},
            )  # fmt: skip
    log = load_log(published, arms=["full"])
    assert len(log) == sum(r.policy_arm == "full" for r in rows)
    assert estimate(log, "estimate").matching == sum(r.policy_arm == "full" and r.planned_hour == 15 for r in rows)
