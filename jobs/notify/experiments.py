"""A/B/n message tests: each campaign variant against its reference, with a test that may be read every day.

A campaign's variants (``push.campaign_variants``) are compared with its reference variant
(the one marked ``control``, else the first by name) on conversions per delivered message.
Looking at a plain z-test every day and stopping at the first p < 0.05 finds a "winner" among
identical variants far more often than 5 % of the time. The test here is a mixture sequential
probability ratio test (mSPRT; Johari, Koomen, Pekelis and Walsh, "Always valid inference:
continuous monitoring of A/B tests", 2022), on the normal approximation of the two rates. After
each day ``n`` of cumulative data:

    theta_n  = p_variant - p_reference
    V_n      = p_v (1 - p_v) / n_v + p_r (1 - p_r) / n_r
    Lambda_n = sqrt(V_n / (V_n + tau^2)) * exp(tau^2 theta_n^2 / (2 V_n (V_n + tau^2)))
    p_n      = min(1, 1 / Lambda_1, ..., 1 / Lambda_n)        (always-valid p-value)

When the variants do not differ, the chance that ``p_n`` ever falls to ``alpha``, however
often it is read, is at most ``alpha`` (Ville's inequality for the mixture martingale). The
matching confidence sequence holds the differences ``theta_0`` with ``Lambda_n(theta_0) < 1 / alpha``:

    theta_n -/+ sqrt(2 V_n (V_n + tau^2) / tau^2 * (log(1 / alpha) + log((V_n + tau^2) / V_n) / 2))

``tau`` (the mixing standard deviation) is the size of difference the test finds fastest; it
does not change the error guarantee. The guardrail reads the opt-out rate per message the same
way: when the interval of the variant's opt-out rate minus the reference's lies wholly above 0,
the verdict is "stop: more opt-outs", whatever the conversions say. The same test on the click
rate is reported beside the verdict (``ctr_p_value``): a wording often moves clicks long before
a difference in sales can be seen.

CLI: ``python -m jobs.notify.experiments [--campaign ID] [--alpha 0.05]`` prints one JSON
object per variant.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, text

from jobs.core.config import Settings
from jobs.core.db import load_query, make_engine
from jobs.core.timeutil import parse_utc

ALPHA = 0.05
# Mixing standard deviations: the differences in rate per message each test is tuned for.
TAU_CONVERSION = 0.02
TAU_CLICK = 0.03
TAU_OPT_OUT = 0.01

REFERENCE = "reference"
BETTER = "better"
WORSE = "worse"
GUARDRAIL = "stop: more opt-outs"
UNDECIDED = "no decision yet"


@dataclass(frozen=True)
class Look:
    """One day's cumulative counts of a variant and its reference."""

    variant_trials: int
    variant_successes: int
    reference_trials: int
    reference_successes: int


@dataclass(frozen=True)
class SequentialResult:
    """The latest difference (variant minus reference), its confidence sequence and always-valid p-value."""

    difference: float | None
    low: float | None
    high: float | None
    p_value: float


def _difference_and_variance(look: Look) -> tuple[float, float] | None:
    if look.variant_trials == 0 or look.reference_trials == 0:
        return None
    p_v = look.variant_successes / look.variant_trials
    p_r = look.reference_successes / look.reference_trials
    variance = p_v * (1 - p_v) / look.variant_trials + p_r * (1 - p_r) / look.reference_trials
    return p_v - p_r, variance


def mixture_likelihood_ratio(difference: float, variance: float, tau: float) -> float:
    """Lambda of the mSPRT for an observed difference with the given variance (see the module doc)."""
    if variance <= 0:
        return 1.0
    total = variance + tau * tau
    exponent = tau * tau * difference * difference / (2 * variance * total)
    return math.sqrt(variance / total) * math.exp(min(exponent, 700.0))


def confidence_half_width(variance: float, tau: float, alpha: float) -> float:
    """Half width of the (1 - alpha) confidence sequence at this variance."""
    total = variance + tau * tau
    return math.sqrt(2 * variance * total / (tau * tau) * (math.log(1 / alpha) + 0.5 * math.log(total / variance)))


def sequential_test(looks: Iterable[Look], tau: float, alpha: float = ALPHA) -> SequentialResult:
    """The mSPRT over a sequence of cumulative looks: p-value as the running minimum of 1 / Lambda."""
    p_value, latest = 1.0, None
    for look in looks:
        moments = _difference_and_variance(look)
        if moments is None or moments[1] <= 0:
            continue  # no information yet (no trials, or no success and no failure on either side)
        latest = moments
        p_value = min(p_value, 1.0 / mixture_likelihood_ratio(*moments, tau))
    if latest is None:
        return SequentialResult(None, None, None, 1.0)
    difference, variance = latest
    half = confidence_half_width(variance, tau, alpha)
    return SequentialResult(difference, difference - half, difference + half, p_value)


def reference_variants(variants: pd.DataFrame) -> dict[str, str]:
    """Each campaign's reference: its control variant, else its first variant by name."""
    references = {}
    for campaign_id, group in variants.sort_values(["campaign_id", "variant"]).groupby("campaign_id", sort=True):
        marked = group[group["control"]]
        references[campaign_id] = (marked if not marked.empty else group).iloc[0]["variant"]
    return references


@dataclass(frozen=True)
class VariantResult:
    """A variant's rates per delivered message and, for a variant other than the reference, its tests."""

    campaign_id: str
    variant: str
    verdict: str
    days: int
    delivered: int
    ctr: float | None
    cvr: float | None
    revenue_per_message: float | None
    opt_out_rate: float | None
    # Conversions: the verdict's test.
    cvr_difference: float | None = None
    cvr_difference_low: float | None = None
    cvr_difference_high: float | None = None
    p_value: float | None = None
    # Clicks: the same test on CTR, shown beside it (a wording may move clicks long before sales).
    ctr_difference: float | None = None
    ctr_difference_low: float | None = None
    ctr_difference_high: float | None = None
    ctr_p_value: float | None = None
    # Opt-outs: the guardrail.
    opt_out_difference: float | None = None
    opt_out_difference_low: float | None = None
    opt_out_difference_high: float | None = None


def _rate(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def variant_tests(
    daily: pd.DataFrame,
    variants: pd.DataFrame,
    alpha: float = ALPHA,
    tau_conversion: float = TAU_CONVERSION,
    tau_click: float = TAU_CLICK,
    tau_opt_out: float = TAU_OPT_OUT,
) -> list[VariantResult]:
    """One result per variant of every campaign in ``variants``.

    ``daily``: rows of ``analytics.campaign_variant_daily`` (campaign_id, variant, day, delivered,
    clicks, conversions, revenue, opted_out); ``variants``: campaign_id, variant, control.
    """
    results = []
    references = reference_variants(variants)
    days = sorted(daily["day"].unique()) if not daily.empty else []
    for row in variants.sort_values(["campaign_id", "variant"]).itertuples():
        reference = references[row.campaign_id]
        mine = _cumulative(daily, row.campaign_id, row.variant, days)
        theirs = _cumulative(daily, row.campaign_id, reference, days)
        last = mine.iloc[-1] if not mine.empty else pd.Series(0, index=_COUNTS)
        delivered = int(last["delivered"])
        rates = {
            "ctr": _rate(last["clicks"], delivered),
            "cvr": _rate(last["conversions"], delivered),
            "revenue_per_message": _rate(last["revenue"], delivered),
            "opt_out_rate": _rate(last["opted_out"], delivered),
        }
        days_sent = int((mine["delivered"] > 0).sum()) if not mine.empty else 0
        if row.variant == reference:
            results.append(VariantResult(row.campaign_id, row.variant, REFERENCE, days_sent, delivered, **rates))
            continue
        conversion = sequential_test(_looks(mine, theirs, "conversions"), tau_conversion, alpha)
        clicks = sequential_test(_looks(mine, theirs, "clicks"), tau_click, alpha)
        opt_out = sequential_test(_looks(mine, theirs, "opted_out"), tau_opt_out, alpha)
        if opt_out.low is not None and opt_out.low > 0:
            verdict = GUARDRAIL
        elif conversion.p_value <= alpha and conversion.difference is not None:
            verdict = BETTER if conversion.difference > 0 else WORSE
        else:
            verdict = UNDECIDED
        results.append(
            VariantResult(
                row.campaign_id, row.variant, verdict, days_sent, delivered, **rates,
                cvr_difference=_rounded(conversion.difference), cvr_difference_low=_rounded(conversion.low),
                cvr_difference_high=_rounded(conversion.high), p_value=round(conversion.p_value, 6),
                ctr_difference=_rounded(clicks.difference), ctr_difference_low=_rounded(clicks.low),
                ctr_difference_high=_rounded(clicks.high), ctr_p_value=round(clicks.p_value, 6),
                opt_out_difference=_rounded(opt_out.difference), opt_out_difference_low=_rounded(opt_out.low),
                opt_out_difference_high=_rounded(opt_out.high),
            )
        )  # fmt: skip
    return results


_COUNTS = ["delivered", "clicks", "conversions", "revenue", "opted_out"]


def _cumulative(daily: pd.DataFrame, campaign_id: str, variant: str, days: list) -> pd.DataFrame:
    """Cumulative counts of one variant at the end of every day of the test (0 before it started)."""
    if daily.empty:
        return pd.DataFrame(columns=_COUNTS)
    mine = daily[(daily["campaign_id"] == campaign_id) & (daily["variant"] == variant)]
    per_day = mine.groupby("day")[_COUNTS].sum().reindex(days, fill_value=0)
    return per_day.astype(float).cumsum()


def _looks(mine: pd.DataFrame, theirs: pd.DataFrame, successes: str) -> list[Look]:
    return [
        Look(int(a["delivered"]), int(a[successes]), int(b["delivered"]), int(b[successes]))
        for (_, a), (_, b) in zip(mine.iterrows(), theirs.iterrows(), strict=True)
    ]


def load_variant_frames(engine: Engine, until: datetime | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(daily counts of the UTC days before ``until``'s day, the variants) from PostgreSQL.

    The same query files the evaluation report reads (``sql/queries/report/``).
    """
    frames = []
    with engine.connect() as conn:
        for name in ("report_variant_daily", "report_campaign_variants"):
            result = conn.execute(text(load_query(f"report/{name}")), {"until": until})
            frames.append(pd.DataFrame(result.mappings().all(), columns=list(result.keys())))
    return frames[0], frames[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", default=None, help="only this campaign's variants")
    parser.add_argument("--until", type=parse_utc, default=None, help="only the UTC days before this time's day")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="error rate of the test and the guardrail")
    args = parser.parse_args(argv)
    daily, variants = load_variant_frames(make_engine(Settings.from_env().database_url), args.until)
    if args.campaign:
        variants = variants[variants["campaign_id"] == args.campaign]
    for result in variant_tests(daily, variants, alpha=args.alpha):
        print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
