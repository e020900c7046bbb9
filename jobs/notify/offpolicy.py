"""Off-policy evaluation of send-hour rules from the logged decisions, before turning one on.

With ``PUSH_EXPLORE_PERCENT`` > 0 a share of (user, local day) pairs is planned at a hashed
random hour instead of the estimated best one (``push.send_hour``), and every recommendation and
campaign decision logs its planned hour, the day's best hour and the planned hour's propensity
``p`` (``push.notification_decisions``). A target rule ``pi`` gives each logged message a weight
``w = pi(planned hour | context) / p``; with ``r`` the message's outcome (clicked, or converted):

    inverse propensity (IPS)      V = mean(w r),              95 % interval V -/+ 1.96 sd(w r) / sqrt(n)
    self-normalised (SNIPS)       V = sum(w r) / sum(w),      95 % interval by the delta method:
                                  V -/+ 1.96 sqrt(sum(w^2 (r - V)^2)) / sum(w)

IPS is unbiased when every hour the target may pick has a positive logged propensity; SNIPS
trades a little bias for much less variance. Rules (``--policy``):

- ``estimate``: the best hour, never exploring (the product's rule with exploration off);
- ``uniform``: a random hour of the day with the hash's bucket shares (the ``random_hour`` arm);
- ``hour:H``: everyone at local hour ``H``.

What is estimated is the rate per delivered message under the rule, for the messages that were
delivered: the rule is assumed to change when a message goes out, not whether it does.

**Whether to send.** The uplift gate (``jobs/notify/uplift.py``) lets a user-day through with a
logged share ``p``. From the user-days it drew for (``sql/queries/notify/offpolicy_gate_log.sql``),
the conversion per user-day of a rule that sends on every day (``--policy send_always``: the
``no_uplift`` arm's rule) is estimated with ``w = 1 / p`` on the days that passed and 0 on the
others, by the same two estimators; ``--policy gate`` is the logged rule itself (``w = 1``).

CLI: ``python -m jobs.notify.offpolicy --policy uniform [--outcome clicked] [--arms full,fixed_cap]``
(or ``--policy send_always``) prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from jobs.core.config import Settings
from jobs.core.db import load_query, make_engine
from jobs.core.timeutil import parse_utc

Z_95 = 1.96
# push.send_hour draws an hour as a bucket in [0, 10000) modulo 24.
_BUCKETS = 10_000
OUTCOMES = ("clicked", "converted")


def uniform_share(hour: np.ndarray) -> np.ndarray:
    """The chance of each hour under the hashed random hour (hours below 10000 % 24 have one more bucket)."""
    return np.where(hour < _BUCKETS % 24, _BUCKETS // 24 + 1, _BUCKETS // 24) / _BUCKETS


# Rules of whether to send, evaluated on the gate's user-days (see the module doc).
SEND_RULES = ("send_always", "gate")


def target_probabilities(policy: str) -> Callable[[pd.DataFrame], np.ndarray]:
    """``pi(planned hour | context)`` for every logged message, for a rule named as in the module doc."""
    if policy == "estimate":
        return lambda log: (log["planned_hour"].to_numpy() == log["best_hour"].to_numpy()).astype(float)
    if policy == "uniform":
        return lambda log: uniform_share(log["planned_hour"].to_numpy())
    if policy.startswith("hour:") and policy[5:].isdigit() and 0 <= int(policy[5:]) <= 23:
        hour = int(policy[5:])
        return lambda log: (log["planned_hour"].to_numpy() == hour).astype(float)
    raise ValueError(f"unknown rule {policy!r}: estimate, uniform, hour:H (0-23), {' or '.join(SEND_RULES)}")


@dataclass(frozen=True)
class Estimate:
    policy: str
    outcome: str
    messages: int
    matching: int  # logged messages the rule could have sent at the same hour (w > 0)
    effective_sample: float  # (sum w)^2 / sum w^2: how many unweighted messages the estimate is worth
    ips: float | None
    ips_low: float | None
    ips_high: float | None
    snips: float | None
    snips_low: float | None
    snips_high: float | None


def estimate(log: pd.DataFrame, policy: str, outcome: str = "clicked") -> Estimate:
    """IPS and SNIPS estimates of ``policy``'s rate of ``outcome`` per message from ``log``.

    ``log`` has one row per delivered message: ``planned_hour``, ``best_hour``,
    ``hour_propensity`` and the outcome columns (``clicked``, ``converted``, booleans).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    pi = target_probabilities(policy)
    if len(log) == 0:
        return Estimate(policy, outcome, 0, 0, 0.0, None, None, None, None, None, None)
    weights = pi(log) / log["hour_propensity"].to_numpy(dtype=float)
    return _weighted(policy, outcome, weights, log[outcome].to_numpy(dtype=float))


def estimate_send_rule(gate_log: pd.DataFrame, policy: str) -> Estimate:
    """IPS and SNIPS estimates of a rule of whether to send (``SEND_RULES``): conversion per
    user-day, from ``gate_log`` (one row per user-day: ``send_probability``, ``passed``,
    ``converted``; :func:`load_gate_log`)."""
    if policy not in SEND_RULES:
        raise ValueError(f"unknown rule of whether to send {policy!r}: {' or '.join(SEND_RULES)}")
    if len(gate_log) == 0:
        return Estimate(policy, "converted", 0, 0, 0.0, None, None, None, None, None, None)
    passed = gate_log["passed"].to_numpy(dtype=bool)
    if policy == "gate":
        weights = np.ones(len(gate_log))
    else:
        weights = np.where(passed, 1.0 / gate_log["send_probability"].to_numpy(dtype=float), 0.0)
    return _weighted(policy, "converted", weights, gate_log["converted"].to_numpy(dtype=float))


def _weighted(policy: str, outcome: str, weights: np.ndarray, rewards: np.ndarray) -> Estimate:
    """IPS and SNIPS with their 95 % intervals (module doc) from importance weights and rewards."""
    n = len(weights)
    terms = weights * rewards
    ips = float(terms.mean())
    ips_half = Z_95 * float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    total = float(weights.sum())
    if total > 0:
        snips = float(terms.sum() / total)
        snips_half = Z_95 * math.sqrt(float(np.sum(weights**2 * (rewards - snips) ** 2))) / total
        effective = total**2 / float(np.sum(weights**2))
    else:
        snips, snips_half, effective = None, None, 0.0

    def bounds(value, half):
        return (None, None) if value is None else (round(value - half, 6), round(value + half, 6))

    return Estimate(
        policy, outcome, n, int((weights > 0).sum()), round(effective, 1),
        round(ips, 6), *bounds(ips, ips_half),
        None if snips is None else round(snips, 6), *bounds(snips, snips_half),
    )  # fmt: skip


def load_log(engine: Engine, arms: list[str] | None = None, until: datetime | None = None) -> pd.DataFrame:
    """Delivered messages with a logged send-hour propensity (``sql/queries/notify/offpolicy_log.sql``)."""
    with engine.connect() as conn:
        result = conn.execute(text(load_query("notify/offpolicy_log")), {"arms": arms, "until": until})
        return pd.DataFrame(result.mappings().all(), columns=list(result.keys()))


def load_gate_log(engine: Engine, arms: list[str] | None = None, until: datetime | None = None) -> pd.DataFrame:
    """User-days with their send share, passing and conversion (``offpolicy_gate_log.sql``)."""
    with engine.connect() as conn:
        result = conn.execute(text(load_query("notify/offpolicy_gate_log")), {"arms": arms, "until": until})
        return pd.DataFrame(result.mappings().all(), columns=list(result.keys()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", required=True, help="estimate, uniform, hour:H, send_always or gate")
    parser.add_argument("--outcome", choices=OUTCOMES, default="clicked")
    parser.add_argument("--arms", default=None, help="only the logs of these policy arms (comma-separated)")
    parser.add_argument("--until", type=parse_utc, default=None, help="only decisions made before this time")
    args = parser.parse_args(argv)
    arms = args.arms.split(",") if args.arms else None
    engine = make_engine(Settings.from_env().database_url)
    if args.policy in SEND_RULES:
        result = estimate_send_rule(load_gate_log(engine, arms, args.until), args.policy)
    else:
        result = estimate(load_log(engine, arms, args.until), args.policy, args.outcome)
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
