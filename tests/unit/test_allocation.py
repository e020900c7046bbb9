"""Thompson sampling of campaign variants: traffic moves to the better variant, and costs less than a fixed split."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from jobs.notify.allocation import allocate, chance_best, shares

DAY = date(2026, 11, 25)


def test_the_chance_of_being_best_follows_the_evidence():
    even = chance_best(np.array([0.0, 0.0]), np.array([0.0, 0.0]), seed=1)
    assert even == pytest.approx([0.5, 0.5], abs=0.02)
    clear = chance_best(np.array([2000.0, 2000.0]), np.array([80.0, 140.0]), seed=1)
    assert clear[1] > 0.999
    close = chance_best(np.array([200.0, 200.0]), np.array([8.0, 10.0]), seed=1)
    assert 0.55 < close[1] < 0.85


def test_shares_keep_every_variant_above_the_floor_and_sum_to_one():
    result = shares(np.array([0.0, 0.05, 0.95]), 0.1)
    assert result.sum() == pytest.approx(1.0)
    assert result.min() == pytest.approx(0.1)
    assert result.argmax() == 2
    assert shares(np.array([1.0, 0.0, 0.0, 0.0]), 0.3) == pytest.approx([0.25] * 4)


def test_allocation_is_the_same_for_the_same_day_and_differs_per_campaign_draws():
    rows = [("c1", "a", 300, 12), ("c1", "b", 300, 15), ("c2", "a", 50, 1), ("c2", "b", 50, 2), ("c2", "c", 0, 0)]
    first, again = allocate(rows, DAY, 0.1), allocate(rows, DAY, 0.1)
    assert first == again
    by_campaign: dict[str, float] = {}
    for a in first:
        by_campaign[a.campaign_id] = by_campaign.get(a.campaign_id, 0.0) + a.share
        assert a.share >= 0.1 - 1e-12
    assert by_campaign == {"c1": pytest.approx(1.0), "c2": pytest.approx(1.0)}
    assert [a.variant for a in first if a.campaign_id == "c2"] == ["a", "b", "c"]


def _campaign(rates: list[float], days: int, per_day: int, thompson: bool, seed: int) -> tuple[float, float]:
    """A campaign run day after day: returns the share of messages on the best variant and the
    regret (expected conversions lost against always sending the best one)."""
    rng = np.random.default_rng(seed)
    k = len(rates)
    messages, successes = np.zeros(k), np.zeros(k)
    sent_best = regret = 0.0
    for n in range(days):
        if thompson:
            day_shares = np.array([a.share for a in allocate(
                [("c", str(i), int(messages[i]), int(successes[i])) for i in range(k)], DAY + timedelta(days=n), 0.05
            )])  # fmt: skip
        else:
            day_shares = np.full(k, 1.0 / k)
        sent = rng.multinomial(per_day, day_shares)
        converted = rng.binomial(sent, rates)
        messages += sent
        successes += converted
        sent_best += sent[int(np.argmax(rates))]
        regret += float(np.dot(sent, max(rates) - np.array(rates)))
    return sent_best / (days * per_day), regret


def test_thompson_sends_most_messages_on_the_best_variant_and_loses_fewer_conversions_than_a_fixed_split():
    """Two wordings converting 4 % and 6 %, 300 messages a day for 28 days, 20 campaigns each."""
    rates = [0.04, 0.06]
    thompson = [_campaign(rates, 28, 300, True, seed) for seed in range(20)]
    fixed = [_campaign(rates, 28, 300, False, seed) for seed in range(20)]
    best_share = np.mean([share for share, _ in thompson])
    assert best_share > 0.75
    assert np.mean([regret for _, regret in thompson]) < 0.5 * np.mean([regret for _, regret in fixed])
    # Identical variants: the traffic stays split, on average.
    same = [_campaign([0.05, 0.05], 14, 300, True, seed)[0] for seed in range(20)]
    assert 0.35 < np.mean(same) < 0.65
