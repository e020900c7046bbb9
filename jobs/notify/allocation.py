"""Thompson sampling of campaign variants: shift a campaign's users toward its best variant.

A fixed split keeps sending the worse wording to half the users for as long as the test runs.
With ``PUSH_VARIANT_ALLOCATION=thompson`` the first planning run of each UTC day stores, per
campaign with variants, each variant's share of that day's users (``push.variant_allocations``):
the posterior chance that the variant has the highest rate of ``PUSH_VARIANT_OBJECTIVE``
(conversions, or clicks, per delivered message; Beta(1 + successes, 1 + failures) for each
variant, from 20,000 joint draws seeded by the day and the campaign, so every run of the day
agrees), raised to at least ``PUSH_VARIANT_MIN_SHARE`` so that no variant stops being measured.
Only messages whose outcome is complete count (sent at least the attribution window before the
day). ``push.campaign_variant_on`` then draws each user's variant for the day by those shares.

The always-valid test of the A/B/n report assumes the split does not follow the data; read its
verdicts on a Thompson-sampled campaign as indicative.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
from sqlalchemy import Engine, text

from jobs.core.config import Settings
from jobs.core.db import load_query

log = logging.getLogger(__name__)

ALLOCATIONS = ("fixed", "thompson")
OBJECTIVES = ("converted", "clicked")
DRAWS = 20_000


@dataclass(frozen=True)
class VariantShare:
    campaign_id: str
    variant: str
    messages: int
    successes: int
    chance_best: float
    share: float


def check_settings(settings: Settings) -> None:
    if settings.variant_allocation not in ALLOCATIONS:
        raise ValueError(f"PUSH_VARIANT_ALLOCATION must be one of {ALLOCATIONS}, got {settings.variant_allocation!r}")
    if settings.variant_objective not in OBJECTIVES:
        raise ValueError(f"PUSH_VARIANT_OBJECTIVE must be one of {OBJECTIVES}, got {settings.variant_objective!r}")
    if not 0 <= settings.variant_min_share < 1:
        raise ValueError(f"PUSH_VARIANT_MIN_SHARE must be in [0, 1), got {settings.variant_min_share}")


def chance_best(messages: np.ndarray, successes: np.ndarray, seed: int, draws: int = DRAWS) -> np.ndarray:
    """The posterior chance that each variant has the highest rate (uniform Beta priors)."""
    rng = np.random.default_rng(seed)
    samples = rng.beta(1 + successes, 1 + messages - successes, size=(draws, len(messages)))
    return np.bincount(samples.argmax(axis=1), minlength=len(messages)) / draws


def shares(chances: np.ndarray, min_share: float) -> np.ndarray:
    """Each variant's share: its chance of being best, every variant raised to ``min_share``
    (equal shares when the floors alone would exceed the whole)."""
    k = len(chances)
    if k * min_share >= 1:
        return np.full(k, 1.0 / k)
    return min_share + (1 - k * min_share) * chances


def _seed(day: date, campaign_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{day.isoformat()}:{campaign_id}".encode()).digest()[:8], "big")


def allocate(rows: list[tuple[str, str, int, int]], day: date, min_share: float) -> list[VariantShare]:
    """Shares per (campaign, variant) from ``(campaign_id, variant, messages, successes)`` rows."""
    by_campaign: dict[str, list[tuple[str, int, int]]] = {}
    for campaign_id, variant, messages, successes in rows:
        by_campaign.setdefault(campaign_id, []).append((variant, messages, successes))
    result = []
    for campaign_id, variants in sorted(by_campaign.items()):
        messages = np.array([m for _, m, _ in variants], dtype=float)
        successes = np.array([s for _, _, s in variants], dtype=float)
        chances = chance_best(messages, successes, _seed(day, campaign_id))
        for (variant, n, x), chance, share in zip(variants, chances, shares(chances, min_share), strict=True):
            result.append(VariantShare(campaign_id, variant, n, x, float(chance), float(share)))
    return result


def ensure_allocations(engine: Engine, settings: Settings, day: date) -> list[VariantShare] | None:
    """Store the day's shares unless they exist; return them (None: off, or already stored).

    Computed once per day; a day without any variant is recomputed by the next run (cheap:
    an aggregate over the delivered campaign messages).
    """
    check_settings(settings)
    if settings.variant_allocation != "thompson":
        return None
    complete_before = datetime.combine(day, time.min, UTC) - timedelta(hours=settings.attribution_hours)
    with engine.connect() as conn:
        if conn.execute(
            text("SELECT 1 FROM push.variant_allocations WHERE as_of = :day LIMIT 1"), {"day": day}
        ).first():
            return None
        rows = conn.execute(text(load_query("notify/variant_outcomes")), {"complete_before": complete_before}).all()
    success = "conversions" if settings.variant_objective == "converted" else "clicks"
    allocated = allocate(
        [(r.campaign_id, r.variant, r.messages, getattr(r, success)) for r in rows], day, settings.variant_min_share
    )
    if allocated:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO push.variant_allocations (as_of, campaign_id, variant, messages, successes,"
                    " chance_best, share) VALUES (:day, :c, :v, :n, :x, :p, :s) ON CONFLICT DO NOTHING"
                ),
                [
                    {
                        "day": day,
                        "c": a.campaign_id,
                        "v": a.variant,
                        "n": a.messages,
                        "x": a.successes,
                        "p": a.chance_best,
                        "s": a.share,
                    }
                    for a in allocated
                ],
            )
        log.info(
            "variant shares of %s: %s",
            day,
            ", ".join(f"{a.campaign_id}/{a.variant} {a.share:.2f} ({a.successes}/{a.messages})" for a in allocated),
        )
    return allocated
