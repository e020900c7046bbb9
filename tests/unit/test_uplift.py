"""The uplift gate's estimate: cells a message moves keep their messages, cells it does not lose most."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.notify.uplift import CellCounts, Cluster, estimate_cell


def _estimate(n1, x1, n0, x0, min_effect=0.005, floor=0.2, min_units=200):
    return estimate_cell(CellCounts("c", n1, x1, n0, x0), min_effect, floor, min_units)


def test_a_cell_a_message_moves_is_messaged_every_day():
    estimate = _estimate(5000, 250, 1500, 30)  # 5 % against 2 %
    assert estimate.effect == pytest.approx(0.03)
    assert estimate.send_probability > 0.999


def test_a_cell_that_buys_anyway_is_messaged_rarely_but_never_never():
    estimate = _estimate(5000, 400, 1500, 120)  # 8 % either way
    assert estimate.effect == pytest.approx(0.0)
    # The chance that an effect measured at 0 +/- 0.8 pp exceeds the 0.5 pp threshold.
    assert 0.2 < estimate.send_probability < 0.3
    harmful = _estimate(5000, 250, 1500, 120)  # messages lower conversion
    assert harmful.send_probability == pytest.approx(0.2)  # the floor: the cell stays measured


def test_an_uncertain_effect_gets_a_share_between_the_floor_and_one():
    estimate = _estimate(400, 14, 300, 6)  # 3.5 % against 2 %, few days
    assert 0.2 < estimate.send_probability < 1.0
    assert estimate.effect_se > 0


def test_too_few_days_in_either_group_leave_the_cell_ungated():
    assert _estimate(150, 0, 5000, 400).send_probability == 1.0
    assert _estimate(5000, 0, 150, 20).send_probability == 1.0
    empty = _estimate(0, 0, 0, 0)
    assert (empty.effect, empty.effect_se, empty.send_probability) == (None, None, 1.0)


def test_a_cell_where_nobody_bought_still_has_an_uncertain_effect():
    estimate = _estimate(300, 0, 300, 0)
    assert estimate.effect == 0.0
    assert estimate.effect_se > 0
    assert estimate.send_probability == pytest.approx(0.2, abs=0.2)


def test_the_share_follows_the_chance_that_the_effect_exceeds_the_threshold():
    """Probability matching: over simulated cells with a known effect, the share is the posterior
    chance the effect exceeds the threshold; cells with a true effect above it get more days."""
    rng = np.random.default_rng(5)
    above, below = [], []
    for _ in range(200):
        n1, n0 = 2000, 600
        for true_effect, sink in ((0.02, above), (0.0, below)):
            x1 = rng.binomial(n1, 0.05 + true_effect)
            x0 = rng.binomial(n0, 0.05)
            sink.append(_estimate(n1, x1, n0, x0, floor=0.01).send_probability)
    # Effect 2 pp +/- 1.0 pp against a 0.5 pp threshold: P ~ 0.93 at the mean, less on average.
    # No effect, measured +/- 1.0 pp: on average P = Phi(-0.5 / sqrt(2)) ~ 0.36.
    assert np.mean(above) > 0.8
    assert np.mean(below) < 0.45
    assert np.mean(above) > np.mean(below) + 0.4


def _clustered(users_x_n: list[tuple[int, int]]) -> tuple[int, int, Cluster]:
    """(units, conversions, per-user sums) of a group whose users had (conversions, days) each."""
    n = sum(days for _, days in users_x_n)
    x = sum(conv for conv, _ in users_x_n)
    return n, x, Cluster(len(users_x_n), sum(c * c for c, _ in users_x_n), sum(c * d for c, d in users_x_n),
                         sum(d * d for _, d in users_x_n))  # fmt: skip


def test_days_of_the_same_users_widen_the_error_and_one_day_a_user_is_the_binomial_one():
    """20 users with 20 days each, some who buy every day and some never: far less evidence than
    400 independent days with the same rate."""
    n1, x1, c1 = _clustered([(20, 20)] * 4 + [(0, 20)] * 16)  # 20 % of days, all from 4 users
    n0, x0, c0 = _clustered([(20, 20)] * 2 + [(0, 20)] * 18)  # 10 %
    plain = estimate_cell(CellCounts("c", n1, x1, n0, x0), 0.005, 0.2, 100)
    clustered = estimate_cell(CellCounts("c", n1, x1, n0, x0, c1, c0), 0.005, 0.2, 100)
    assert clustered.effect == plain.effect == pytest.approx(0.1)
    assert clustered.effect_se > 3 * plain.effect_se
    assert clustered.send_probability < plain.send_probability
    n1, x1, c1 = _clustered([(1, 1)] * 30 + [(0, 1)] * 370)
    n0, x0, c0 = _clustered([(1, 1)] * 20 + [(0, 1)] * 380)
    one_day = estimate_cell(CellCounts("c", n1, x1, n0, x0, c1, c0), 0.005, 0.2, 100)
    independent = estimate_cell(CellCounts("c", n1, x1, n0, x0), 0.005, 0.2, 100)
    assert one_day.effect_se == pytest.approx(independent.effect_se, rel=0.05)
