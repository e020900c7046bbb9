"""The notification policy: its reason codes, its order and its parameters.

The rules themselves run in PostgreSQL (``sql/queries/notify/notification_policy.sql`` and the
``push.*`` functions of migration 0003), set-based over a batch of users whose state rows are
locked, so that every decision and the outbox row it produces commit together. This module is
the one place that turns :class:`~jobs.core.config.Settings` into the parameters of those rules.
"""

from __future__ import annotations

from datetime import time, timedelta

from jobs.core.config import Settings
from jobs.notify import uplift

# Channel preference when a user consents to several (and has an address for them).
CHANNEL_ORDER = ("push", "email", "sms", "webhook")

# Reason codes, in the order the rules apply.
SUPPRESSED_CONSENT = "suppressed_consent"
HOLDOUT = "holdout"
SKIPPED_UPLIFT = "skipped_uplift"
DUPLICATE = "duplicate"
EXPIRED = "expired"
EXPIRED_QUIET_HOURS = "expired_quiet_hours"
CAPPED_MIN_GAP = "capped_min_gap"
CAPPED_DAILY = "capped_daily"
CAPPED_WEEKLY = "capped_weekly"
CAPPED_CHANNEL = "capped_channel"
CAPPED_CAMPAIGN = "capped_campaign"
SENT = "sent"
DEFERRED_QUIET_HOURS = "deferred_quiet_hours"

# Decisions that put a message into the outbox.
ACCEPTED = (SENT, DEFERRED_QUIET_HOURS)
REASON_CODES = (
    SUPPRESSED_CONSENT,
    HOLDOUT,
    SKIPPED_UPLIFT,
    DUPLICATE,
    EXPIRED,
    EXPIRED_QUIET_HOURS,
    CAPPED_MIN_GAP,
    CAPPED_DAILY,
    CAPPED_WEEKLY,
    CAPPED_CHANNEL,
    CAPPED_CAMPAIGN,
    SENT,
    DEFERRED_QUIET_HOURS,
)

# Click x conversion rate assumed for a send hour before any feedback exists.
DEFAULT_RATE = 0.02

CANDIDATE_KINDS = ("recommendation", "campaign", "trigger")

# Policy arms (PUSH_POLICY_ARMS): each replaces one part of the full policy for its users.
#   random_hour  a hashed hour of the user's day instead of the send-time estimate
#   fixed_cap    the plain caps for everyone: fatigue never lowers them
#   popularity   the week's most bought items instead of the user's recommendations
#   no_uplift    every user-day may be messaged, whatever the uplift estimate of the user's cell
POLICY_ARMS = ("random_hour", "fixed_cap", "popularity", "no_uplift")


def _clock(value: str, name: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"PUSH_{name} must be a local time like 22:00, got {value!r}") from error


def arm_params(settings: Settings) -> dict:
    """SQL parameters of ``push.policy_arm``: arm names and cumulative bounds in basis points."""
    unknown = set(settings.policy_arms) - set(POLICY_ARMS)
    if unknown:
        raise ValueError(f"PUSH_POLICY_ARMS names unknown arms {sorted(unknown)}; known: {POLICY_ARMS}")
    shares = list(settings.policy_arms.values())
    if any(share < 0 for share in shares) or sum(shares) > 100:
        raise ValueError(f"PUSH_POLICY_ARMS shares must be percents >= 0 summing to at most 100, got {shares}")
    bounds, total = [], 0.0
    for share in shares:
        total += share
        bounds.append(round(total * 100))
    return {"arms_salt": settings.policy_arms_salt, "arm_names": list(settings.policy_arms), "arm_bounds": bounds}


def explore_params(settings: Settings) -> dict:
    """SQL parameters of ``push.send_hour``: the exploration salt and share in basis points."""
    if not 0 <= settings.explore_percent <= 100:
        raise ValueError(f"PUSH_EXPLORE_PERCENT must be a percent in [0, 100], got {settings.explore_percent}")
    return {"explore_salt": settings.explore_salt, "explore_basis_points": round(settings.explore_percent * 100)}


def policy_params(settings: Settings) -> dict:
    """SQL parameters of ``notification_policy.sql``, validated."""
    quiet_start = _clock(settings.quiet_hours_start, "QUIET_HOURS_START")
    quiet_end = _clock(settings.quiet_hours_end, "QUIET_HOURS_END")
    unknown = set(settings.channel_daily_caps) - set(CHANNEL_ORDER)
    if unknown:
        raise ValueError(f"PUSH_CHANNEL_DAILY_CAPS names unknown channels {sorted(unknown)}; known: {CHANNEL_ORDER}")
    if settings.daily_cap < 0 or settings.weekly_cap < 0 or settings.min_gap_minutes < 0:
        raise ValueError("caps and the minimum gap must not be negative")
    campaign_window = timedelta(days=settings.campaign_cap_days)
    return {
        "holdout_salt": settings.holdout_salt,
        "holdout_basis_points": round(settings.holdout_percent * 100),
        "quiet_start": quiet_start,
        "quiet_end": quiet_end,
        "transactional_counts": settings.transactional_counts,
        "long_window": max(timedelta(days=7), campaign_window),
        "campaign_window": campaign_window,
        "min_gap": timedelta(minutes=settings.min_gap_minutes),
        "daily_cap": settings.daily_cap,
        "weekly_cap": settings.weekly_cap,
        "fatigue_daily_cap": settings.fatigue_daily_cap,
        "fatigue_weekly_cap": settings.fatigue_weekly_cap,
        "channel_order": list(CHANNEL_ORDER),
        "channel_caps": [settings.channel_daily_caps.get(channel, 2_147_483_647) for channel in CHANNEL_ORDER],
        "campaign_cap": settings.campaign_cap,
        **arm_params(settings),
        **explore_params(settings),
        **uplift.uplift_params(settings),
    }
