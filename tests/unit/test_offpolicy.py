"""Off-policy estimates of send-hour rules recover their true value from logs of another rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.notify.offpolicy import estimate, estimate_send_rule, target_probabilities, uniform_share

EXPLORE = 0.2
HOURS = np.arange(24)


def _click_chance(hour: np.ndarray, best: np.ndarray) -> np.ndarray:
    """The planted truth: a message at the user's best hour is clicked 0.2 of the time, within an
    hour of it 0.1, else 0.04."""
    distance = np.minimum(np.abs(hour - best), 24 - np.abs(hour - best))
    return np.where(distance == 0, 0.2, np.where(distance == 1, 0.1, 0.04))


def _logs(messages: int, seed: int) -> pd.DataFrame:
    """Messages planned like push.send_hour with exploration: best hour, or a random one with its shares."""
    rng = np.random.default_rng(seed)
    best = rng.integers(0, 24, messages)
    explored = rng.random(messages) < EXPLORE
    random_hour = rng.choice(HOURS, size=messages, p=uniform_share(HOURS))
    planned = np.where(explored, random_hour, best)
    propensity = EXPLORE * uniform_share(planned) + (1 - EXPLORE) * (planned == best)
    clicked = rng.random(messages) < _click_chance(planned, best)
    return pd.DataFrame(
        {"planned_hour": planned, "best_hour": best, "hour_propensity": propensity, "clicked": clicked,
         "converted": clicked & (rng.random(messages) < 0.3)}
    )  # fmt: skip


def _truth(policy: str, best: np.ndarray) -> float:
    """The rule's expected click rate over the same users."""
    pi = target_probabilities(policy)
    values = []
    for hour in HOURS:
        frame = pd.DataFrame({"planned_hour": np.full(len(best), hour), "best_hour": best})
        values.append(pi(frame) * _click_chance(np.full(len(best), hour), best))
    return float(np.sum(values, axis=0).mean())


@pytest.mark.parametrize("policy", ["estimate", "uniform", "hour:19"])
def test_estimates_cover_the_true_value_of_each_rule(policy):
    covered_ips = covered_snips = 0
    runs = 80
    for seed in range(runs):
        log = _logs(20_000, seed)
        truth = _truth(policy, log["best_hour"].to_numpy())
        result = estimate(log, policy)
        covered_ips += result.ips_low <= truth <= result.ips_high
        covered_snips += result.snips_low <= truth <= result.snips_high
    print(f"{policy}: IPS interval covers the truth {covered_ips}/{runs}, SNIPS {covered_snips}/{runs}")
    # Nominal 0.95; 80 runs. A normal interval undercovers when few messages match the rule.
    assert covered_ips / runs >= 0.88
    assert covered_snips / runs >= 0.88


def test_one_large_log_pins_each_rule_and_ranks_them_right():
    log = _logs(200_000, 99)
    best = log["best_hour"].to_numpy()
    results = {p: estimate(log, p) for p in ("estimate", "uniform")}
    for policy, result in results.items():
        assert result.snips == pytest.approx(_truth(policy, best), abs=0.005), policy
    assert results["estimate"].snips > results["uniform"].snips
    # The logging rule explores 20 %: a random-hour rule rests on the explored fifth of the log.
    assert results["uniform"].effective_sample < 0.3 * len(log)
    assert results["estimate"].matching < len(log)


def test_rules_and_outcomes_are_checked_and_an_empty_log_estimates_nothing():
    with pytest.raises(ValueError, match="unknown rule"):
        target_probabilities("hour:24")
    with pytest.raises(ValueError, match="outcome"):
        estimate(_logs(10, 1), "uniform", outcome="opened")
    empty = estimate(_logs(10, 1).iloc[:0], "uniform")
    assert (empty.messages, empty.ips, empty.snips) == (0, None, None)
    assert estimate(_logs(2000, 3), "estimate", outcome="converted").snips < 0.2


def _gate_logs(days: int, seed: int) -> tuple[pd.DataFrame, float]:
    """User-days of two cells drawn by a gate, and the true conversion of sending every day.

    Cell a (60 %): converts 0.02 left alone and 0.06 messaged, sent on every day. Cell b: converts
    0.15 either way, sent on 30 % of its days."""
    rng = np.random.default_rng(seed)
    in_b = rng.random(days) < 0.4
    share = np.where(in_b, 0.3, 1.0)
    passed = rng.random(days) < share
    chance = np.where(in_b, 0.15, np.where(passed, 0.06, 0.02))
    converted = rng.random(days) < chance
    truth = 0.6 * 0.06 + 0.4 * 0.15
    return pd.DataFrame({"send_probability": share, "passed": passed, "converted": converted}), truth


def test_sending_every_day_is_estimated_from_a_gated_log_and_the_gate_is_its_own_mean():
    covered = 0
    runs = 60
    for seed in range(runs):
        log, truth = _gate_logs(20_000, seed)
        always = estimate_send_rule(log, "send_always")
        covered += always.snips_low <= truth <= always.snips_high
    assert covered / runs >= 0.88
    log, truth = _gate_logs(400_000, 7)
    assert estimate_send_rule(log, "send_always").snips == pytest.approx(truth, abs=0.002)
    gate = estimate_send_rule(log, "gate")
    assert gate.snips == pytest.approx(log["converted"].mean())
    assert gate.effective_sample == len(log)
    with pytest.raises(ValueError, match="whether to send"):
        estimate_send_rule(log, "send_never")
    assert estimate_send_rule(log.iloc[:0], "send_always").snips is None
