"""Uplift targeting: message the users a message moves, not those who buy anyway or never.

A message is worth sending when it raises the chance of a purchase. The control group measures
that: per cell of users (``push.uplift_cell``: bought on their own in the last 28 days, or
not), the conversion of messaged user-days minus that of held-out user-days is the cell's
effect. Once a day the estimate is stored in ``push.uplift_estimates``, with the share of the
cell's user-days the policy may message: the chance that the effect exceeds
``PUSH_UPLIFT_MIN_EFFECT`` under a normal approximation (probability matching, i.e. Thompson
sampling between "message" and "leave alone"), never below ``PUSH_UPLIFT_FLOOR``, so that every
cell keeps being measured. A cell with too few user-days in either group is not gated.

The planner draws each user-day against that share with a keyed hash (the same draw for every
run of the day, so retries and re-runs decide the same) and records the share on the decision
(``uplift_probability``); a day that does not pass is decided ``skipped_uplift``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, text

from jobs.core.config import Settings
from jobs.core.db import load_query

log = logging.getLogger(__name__)

# The cells push.uplift_cell returns; every day's estimate has one row for each.
CELLS = ("no_recent_purchase", "recent_buyer")


@dataclass(frozen=True)
class Cluster:
    """Per-user sums of one group of a cell: users, and the sums over users of x^2, x n and n^2
    (x conversions, n user-days of a user), for a standard error clustered by user."""

    users: int = 0
    xx: float = 0.0
    xn: float = 0.0
    nn: float = 0.0


@dataclass(frozen=True)
class CellCounts:
    """User-days and conversions of one cell in the treatment and the control group."""

    cell: str
    treatment_units: int = 0
    treatment_conversions: int = 0
    control_units: int = 0
    control_conversions: int = 0
    treatment_cluster: Cluster | None = None
    control_cluster: Cluster | None = None


@dataclass(frozen=True)
class CellEstimate:
    counts: CellCounts
    effect: float | None
    effect_se: float | None
    send_probability: float


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _rate_variance(units: int, conversions: int, cluster: Cluster | None) -> float:
    """The variance of a group's conversion rate: the binomial one with the rate kept off 0 and 1
    by half a unit (a group where nobody bought is still uncertain), or, when larger, the one
    clustered by user (a user's days share the user's habits; the ratio estimator's sandwich)."""
    q = (conversions + 0.5) / (units + 1)
    binomial = q * (1 - q) / units
    if cluster is None or cluster.users < 2:
        return binomial
    p = conversions / units
    spread = max(cluster.xx - 2 * p * cluster.xn + p * p * cluster.nn, 0.0)
    return max(binomial, cluster.users / (cluster.users - 1) * spread / units**2)


def estimate_cell(counts: CellCounts, min_effect: float, floor: float, min_units: int) -> CellEstimate:
    """The cell's effect on conversion, its standard error and its send probability.

    The effect is the difference of the two conversion rates; its standard error combines the
    two rates' (:func:`_rate_variance`). The send probability is P(effect > min_effect),
    floored; 1 (no gate) while either group has fewer than ``min_units`` user-days.
    """
    n1, x1 = counts.treatment_units, counts.treatment_conversions
    n0, x0 = counts.control_units, counts.control_conversions
    if n1 == 0 or n0 == 0:
        return CellEstimate(counts, None, None, 1.0)
    p1, p0 = x1 / n1, x0 / n0
    se = math.sqrt(_rate_variance(n1, x1, counts.treatment_cluster) + _rate_variance(n0, x0, counts.control_cluster))
    effect = p1 - p0
    if n1 < min_units or n0 < min_units:
        return CellEstimate(counts, effect, se, 1.0)
    probability = max(floor, _normal_cdf((effect - min_effect) / se))
    return CellEstimate(counts, effect, se, min(1.0, probability))


def check_settings(settings: Settings) -> None:
    if not 0 < settings.uplift_floor <= 1:
        raise ValueError(f"PUSH_UPLIFT_FLOOR must be in (0, 1], got {settings.uplift_floor}")
    if settings.uplift_window_days < 1 or settings.uplift_min_units < 1:
        raise ValueError("PUSH_UPLIFT_WINDOW_DAYS and PUSH_UPLIFT_MIN_UNITS must be at least 1")


def ensure_estimates(engine: Engine, settings: Settings, day: date) -> list[CellEstimate] | None:
    """Store the estimate of ``day`` unless it exists; return what was computed (None: it existed).

    Computed once per day from the outcomes known when the day's first planning run starts;
    every later run of the day (hourly, stream, a retry) reads the same rows. Racing planners
    both compute; the first to insert wins.
    """
    if not settings.uplift_targeting:
        return None
    check_settings(settings)
    with engine.connect() as conn:
        if conn.execute(text("SELECT 1 FROM push.uplift_estimates WHERE as_of = :day LIMIT 1"), {"day": day}).first():
            return None
        as_of = datetime.combine(day, time.min, UTC)
        rows = conn.execute(
            text(load_query("notify/uplift_units")),
            {
                "since": as_of - timedelta(days=settings.uplift_window_days),
                "as_of": as_of,
                "attribution": timedelta(hours=settings.attribution_hours),
            },
        ).all()
    found = {row.cell: _counts(row) for row in rows}
    estimates = [
        estimate_cell(
            found.get(cell, CellCounts(cell)),
            settings.uplift_min_effect,
            settings.uplift_floor,
            settings.uplift_min_units,
        )
        for cell in CELLS
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.uplift_estimates (as_of, cell, treatment_units, treatment_conversions, control_units,"
                " control_conversions, effect, effect_se, send_probability)"
                " VALUES (:as_of, :cell, :n1, :x1, :n0, :x0, :effect, :se, :probability)"
                " ON CONFLICT (as_of, cell) DO NOTHING"
            ),
            [
                {
                    "as_of": day,
                    "cell": e.counts.cell,
                    "n1": e.counts.treatment_units,
                    "x1": e.counts.treatment_conversions,
                    "n0": e.counts.control_units,
                    "x0": e.counts.control_conversions,
                    "effect": e.effect,
                    "se": e.effect_se,
                    "probability": e.send_probability,
                }
                for e in estimates
            ],
        )
    log.info(
        "uplift estimate of %s: %s",
        day,
        ", ".join(
            f"{e.counts.cell} effect {e.effect if e.effect is None else round(e.effect, 4)}"
            f" (n {e.counts.treatment_units}/{e.counts.control_units}) -> send {e.send_probability:.2f}"
            for e in estimates
        ),
    )
    return estimates


def _counts(row) -> CellCounts:
    def cluster(group: str) -> Cluster:
        return Cluster(
            int(getattr(row, f"{group}_users") or 0),
            *(float(getattr(row, f"{group}_{s}") or 0) for s in ("xx", "xn", "nn")),
        )

    return CellCounts(
        row.cell,
        int(row.treatment_units or 0),
        int(row.treatment_conversions or 0),
        int(row.control_units or 0),
        int(row.control_conversions or 0),
        cluster("treatment"),
        cluster("control"),
    )


def uplift_params(settings: Settings) -> dict:
    """SQL parameters of the gate in ``notification_moments.sql``."""
    return {
        "uplift_on": settings.uplift_targeting,
        "uplift_salt": settings.uplift_salt,
        "attribution": timedelta(hours=settings.attribution_hours),
    }
