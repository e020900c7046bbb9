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
class CellCounts:
    """User-days and conversions of one cell in the treatment and the control group."""

    cell: str
    treatment_units: int = 0
    treatment_conversions: int = 0
    control_units: int = 0
    control_conversions: int = 0


@dataclass(frozen=True)
class CellEstimate:
    counts: CellCounts
    effect: float | None
    effect_se: float | None
    send_probability: float


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def estimate_cell(counts: CellCounts, min_effect: float, floor: float, min_units: int) -> CellEstimate:
    """The cell's effect on conversion, its standard error and its send probability.

    The effect is the difference of the two conversion rates; its standard error the Wald one,
    with each rate kept off 0 and 1 by half a unit (a cell where nobody bought still has an
    uncertain effect). The send probability is P(effect > min_effect), floored; 1 (no gate)
    while either group has fewer than ``min_units`` user-days.
    """
    n1, x1, n0, x0 = (
        counts.treatment_units,
        counts.treatment_conversions,
        counts.control_units,
        counts.control_conversions,
    )
    if n1 == 0 or n0 == 0:
        return CellEstimate(counts, None, None, 1.0)
    p1, p0 = x1 / n1, x0 / n0
    q1, q0 = (x1 + 0.5) / (n1 + 1), (x0 + 0.5) / (n0 + 1)
    se = math.sqrt(q1 * (1 - q1) / n1 + q0 * (1 - q0) / n0)
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


def uplift_day(at: datetime) -> date:
    """The day whose estimate a run at ``at`` uses (UTC)."""
    return at.astimezone(UTC).date()


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
    found = {row.cell: CellCounts(*row) for row in rows}
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


def uplift_params(settings: Settings) -> dict:
    """SQL parameters of the gate in ``notification_moments.sql``."""
    return {
        "uplift_on": settings.uplift_targeting,
        "uplift_salt": settings.uplift_salt,
        "attribution": timedelta(hours=settings.attribution_hours),
    }
