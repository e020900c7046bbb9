"""Pure notification-policy rules: control group, idempotency keys, channel choice, ordering.

The stateful parts (consent read, cap count, ledger insert) happen in ``jobs.notify.plan``
inside one transaction per user; everything here is deterministic and unit-tested.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

# Channel preference when a user consents to several.
CHANNEL_ORDER = ("push", "email", "sms", "webhook")

SENT = "sent"
SUPPRESSED_CONSENT = "suppressed_consent"
HOLDOUT = "holdout"
CAPPED_DAILY = "capped_daily"
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Candidate:
    user_id: str
    source: str  # "recommendation" or "campaign:<id>"
    item_id: str | None
    expected_value: float
    transactional: bool = False
    campaign_id: str | None = None
    discount_text: str | None = None

    @property
    def candidate_key(self) -> str:
        return f"{self.source}:{self.item_id or ''}"


def in_holdout(user_id: str, salt: str, percent: float) -> bool:
    """Stable control-group membership: a hash bucket in [0, 10000) below ``percent`` %."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 10_000
    return bucket < round(percent * 100)


def idempotency_key(user_id: str, candidate_key: str, slot: str) -> str:
    """Deterministic key per (user, message source and item, slot): a retry produces the same key."""
    return hashlib.sha256(f"{user_id}|{candidate_key}|{slot}".encode()).hexdigest()[:32]


def choose_channel(consents: dict[str, bool]) -> str | None:
    """The first consented channel in preference order, or None when the user consents to none."""
    return next((channel for channel in CHANNEL_ORDER if consents.get(channel)), None)


def order_candidates(candidates: list[Candidate]) -> list[Candidate]:
    """Highest expected value first; ties broken by key so runs are reproducible."""
    return sorted(candidates, key=lambda c: (-c.expected_value, c.candidate_key))


def exceeds_rolling_cap(sent_at: Sequence[datetime], at: datetime, cap: int, window: timedelta) -> bool:
    """Would one more message at ``at`` put more than ``cap`` messages in some window ``(e - window, e]``?

    Planners may run out of order (a backfill after a later slot), so windows that end after
    ``at`` count too. The count is largest for windows ending at ``at`` or at a later send, so
    checking those ends is exact.
    """
    ends = [at] + [t for t in sent_at if at <= t < at + window]
    return any(sum(1 for t in sent_at if end - window < t <= end) + 1 > cap for end in ends)
