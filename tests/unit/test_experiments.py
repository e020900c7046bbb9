"""The A/B/n test's statistics: read every day, it still errs at most alpha of the time; it finds real differences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from jobs.notify.experiments import (
    BETTER,
    GUARDRAIL,
    REFERENCE,
    UNDECIDED,
    WORSE,
    Look,
    confidence_half_width,
    mixture_likelihood_ratio,
    reference_variants,
    sequential_test,
    variant_tests,
)

DAYS = 30
PER_DAY = 300


def _experiments(rate_a: float, rate_b: float, runs: int, seed: int) -> list[list[Look]]:
    """``runs`` simulated tests, each a list of daily cumulative looks of two arms."""
    rng = np.random.default_rng(seed)
    a = rng.binomial(PER_DAY, rate_a, size=(runs, DAYS)).cumsum(axis=1)
    b = rng.binomial(PER_DAY, rate_b, size=(runs, DAYS)).cumsum(axis=1)
    trials = PER_DAY * np.arange(1, DAYS + 1)
    return [
        [Look(int(n), int(x), int(n), int(y)) for n, x, y in zip(trials, b[r], a[r], strict=True)] for r in range(runs)
    ]


def _z_test_ever_significant(looks: list[Look]) -> bool:
    """A plain two-proportion z-test read after every day, stopping at the first p < 0.05."""
    for look in looks:
        p1, p2 = look.variant_successes / look.variant_trials, look.reference_successes / look.reference_trials
        pooled = (look.variant_successes + look.reference_successes) / (look.variant_trials + look.reference_trials)
        se = math.sqrt(pooled * (1 - pooled) * (1 / look.variant_trials + 1 / look.reference_trials))
        if se > 0 and abs(p1 - p2) / se > 1.96:
            return True
    return False


def test_reading_it_every_day_keeps_false_winners_within_alpha_where_a_plain_test_does_not():
    runs = _experiments(0.05, 0.05, runs=400, seed=1)
    always_valid = sum(sequential_test(looks, tau=0.02).p_value <= 0.05 for looks in runs) / len(runs)
    peeking = sum(_z_test_ever_significant(looks) for looks in runs) / len(runs)
    print(f"identical variants, {DAYS} daily looks: mSPRT {always_valid:.3f}, daily z-test {peeking:.3f}")
    assert always_valid <= 0.05 + 0.02  # 0.05 plus Monte Carlo error (sd ~0.011 over 400 runs)
    assert peeking > 0.12  # the inflation the always-valid test avoids


def test_a_real_difference_is_found_and_its_interval_covers_it():
    runs = _experiments(0.05, 0.065, runs=200, seed=2)
    results = [sequential_test(looks, tau=0.02) for looks in runs]
    found = sum(r.p_value <= 0.05 for r in results) / len(results)
    covered = sum(r.low <= 0.015 <= r.high for r in results) / len(results)
    print(f"0.05 vs 0.065 after {DAYS} days: found {found:.2f}, interval covers the truth {covered:.2f}")
    assert found > 0.8
    assert covered >= 0.95
    assert all(r.difference > 0 for r in results if r.p_value <= 0.05)


def test_the_likelihood_ratio_and_interval_agree():
    """The interval's edge is where Lambda reaches 1 / alpha."""
    variance, tau, alpha = 4e-5, 0.02, 0.05
    half = confidence_half_width(variance, tau, alpha)
    assert mixture_likelihood_ratio(half, variance, tau) == pytest.approx(1 / alpha, rel=1e-9)
    assert mixture_likelihood_ratio(0.0, variance, tau) < 1
    assert sequential_test([], tau=tau).p_value == 1.0


def _daily(rows):
    return pd.DataFrame(
        rows, columns=["campaign_id", "variant", "day", "delivered", "clicks", "conversions", "revenue", "opted_out"]
    )


def test_verdicts_follow_conversions_and_the_opt_out_guardrail_wins():
    variants = pd.DataFrame(
        [("c", "a", True), ("c", "b", False), ("c", "d", False), ("c", "e", False), ("c", "f", False)],
        columns=["campaign_id", "variant", "control"],
    )
    rows = []
    for day in range(1, 11):
        rows += [
            ("c", "a", day, 1000, 100, 50, 500.0, 5),
            ("c", "b", day, 1000, 150, 90, 900.0, 5),  # converts more
            ("c", "d", day, 1000, 60, 20, 200.0, 5),  # converts less
            ("c", "e", day, 1000, 150, 90, 900.0, 40),  # converts more, but users leave
            ("c", "f", day, 1000, 100, 51, 510.0, 5),  # the same
        ]
    verdicts = {r.variant: r for r in variant_tests(_daily(rows), variants)}
    assert {v: r.verdict for v, r in verdicts.items()} == {
        "a": REFERENCE, "b": BETTER, "d": WORSE, "e": GUARDRAIL, "f": UNDECIDED,
    }  # fmt: skip
    assert (verdicts["b"].cvr, verdicts["b"].delivered, verdicts["b"].days) == (0.09, 10_000, 10)
    assert verdicts["b"].cvr_difference_low < 0.04 < verdicts["b"].cvr_difference_high
    assert verdicts["e"].opt_out_difference_low > 0
    # The same test on clicks, beside the verdict.
    assert verdicts["b"].ctr_p_value < 0.05 < verdicts["f"].ctr_p_value
    assert verdicts["b"].ctr_difference == pytest.approx(0.05)
    assert verdicts["a"].ctr_p_value is None


def test_the_reference_is_the_control_else_the_first_by_name_and_a_silent_variant_is_undecided():
    variants = pd.DataFrame(
        [("x", "b", False), ("x", "a", False), ("y", "a", False), ("y", "z", True)],
        columns=["campaign_id", "variant", "control"],
    )
    assert reference_variants(variants) == {"x": "a", "y": "z"}
    rows = [("x", "a", 1, 100, 10, 5, 50.0, 0)]  # variant b has delivered nothing yet
    results = {r.variant: r for r in variant_tests(_daily(rows), variants[variants.campaign_id == "x"])}
    assert results["b"].verdict == UNDECIDED
    assert (results["b"].delivered, results["b"].cvr, results["b"].p_value) == (0, None, 1.0)
