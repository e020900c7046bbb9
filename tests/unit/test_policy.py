from jobs.notify import policy
from jobs.notify.policy import Candidate


def test_holdout_is_stable_and_close_to_the_configured_share():
    users = [f"u{n:05d}" for n in range(20_000)]
    first = [policy.in_holdout(u, "salt", 5.0) for u in users]
    second = [policy.in_holdout(u, "salt", 5.0) for u in users]
    assert first == second
    share = sum(first) / len(users)
    assert 0.045 < share < 0.055


def test_holdout_depends_on_the_salt_and_zero_percent_means_nobody():
    users = [f"u{n}" for n in range(2000)]
    assert [policy.in_holdout(u, "a", 10) for u in users] != [policy.in_holdout(u, "b", 10) for u in users]
    assert not any(policy.in_holdout(u, "a", 0) for u in users)


def test_idempotency_key_is_deterministic_and_distinguishes_slots():
    key = policy.idempotency_key("u1", "recommendation:i1", "2026-11-25")
    assert key == policy.idempotency_key("u1", "recommendation:i1", "2026-11-25")
    assert key != policy.idempotency_key("u1", "recommendation:i1", "2026-11-26")
    assert key != policy.idempotency_key("u2", "recommendation:i1", "2026-11-25")
    assert len(key) == 32


def test_channel_choice_follows_preference_and_consent():
    assert policy.choose_channel({"email": True, "push": True}) == "push"
    assert policy.choose_channel({"email": True, "push": False}) == "email"
    assert policy.choose_channel({"email": False, "push": False, "sms": False}) is None


def test_candidates_are_ordered_by_expected_value_then_key():
    a = Candidate("u1", "recommendation", "i2", 1.0)
    b = Candidate("u1", "recommendation", "i1", 1.0)
    c = Candidate("u1", "campaign:c1", "i3", 5.0)
    assert policy.order_candidates([a, b, c]) == [c, b, a]


def test_rolling_cap_counts_windows_on_both_sides():
    from datetime import UTC, datetime, timedelta

    day = timedelta(hours=24)
    at = datetime(2026, 11, 25, 23, tzinfo=UTC)
    later = datetime(2026, 11, 26, 1, tzinfo=UTC)
    earlier = datetime(2026, 11, 25, 0, tzinfo=UTC)
    assert not policy.exceeds_rolling_cap([], at, 1, day)
    assert policy.exceeds_rolling_cap([later], at, 1, day)  # a send planned out of order, 2 h later
    assert policy.exceeds_rolling_cap([earlier], at, 1, day)
    assert not policy.exceeds_rolling_cap([at - day], at, 1, day)  # exactly 24 h before: outside
    assert not policy.exceeds_rolling_cap([earlier], at, 2, day)
    # Cap 2: sends at -20 h and +20 h are 40 h apart, never in one window with each other.
    assert not policy.exceeds_rolling_cap([at - timedelta(hours=20), at + timedelta(hours=20)], at, 2, day)
    assert policy.exceeds_rolling_cap([at - timedelta(hours=2), at + timedelta(hours=2)], at, 2, day)
