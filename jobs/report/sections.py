"""The report's sections: the frames of :mod:`jobs.report.data` turned into figures, tables and text.

Each ``*_section`` function is pure (frames in, :class:`Section` out) and says how to read its
figure; with no data it returns a section with an ``empty`` message instead of a figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from jobs.notify.experiments import variant_tests
from jobs.report import plots
from jobs.report.data import ReportData

Z_95 = 1.96
# Metrics plotted first when a run records them; other numeric metrics follow in their order.
PREFERRED_METRICS = ("ndcg", "precision", "recall", "map", "coverage")
# Counts and rating errors are not comparable with the baseline's ranking metrics.
NOT_PLOTTED = {"users_evaluated", "rmse", "mae"}


@dataclass(frozen=True)
class Section:
    """One part of the report: a title, how to read it, a figure, a small table, or why empty."""

    key: str
    title: str
    how_to_read: str
    figure: bytes | None = None
    table: list[dict] = field(default_factory=list)
    empty: str | None = None
    note: str | None = None


def wilson_interval(successes: float, trials: float, z: float = Z_95) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion; ``(nan, nan)`` without trials.

    Unlike the Wald interval it stays inside [0, 1] and is not degenerate at 0 or 1 successes,
    which matters for click and conversion rates of small runs.
    """
    if not trials or trials <= 0 or successes is None or math.isnan(float(successes)):
        return math.nan, math.nan
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _number(value) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)


def _metric_order(names: list[str]) -> list[str]:
    def rank(name: str) -> tuple[int, int]:
        stem = name.split("@")[0]
        preferred = PREFERRED_METRICS.index(stem) if stem in PREFERRED_METRICS else len(PREFERRED_METRICS)
        return preferred, names.index(name)

    return sorted(names, key=rank)


def metric_history(model_runs: pd.DataFrame) -> pd.DataFrame:
    """Long frame ``label, run_id, metric, model, baseline``: metrics both the model and the
    baseline recorded, per run in run order."""
    records = []
    for run in model_runs.itertuples(index=False):
        model: Mapping = run.metrics or {}
        baseline: Mapping = run.baseline_metrics or {}
        for name, value in model.items():
            if name in NOT_PLOTTED or name not in baseline:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            records.append(
                {
                    "label": f"{run.as_of}",
                    "run_id": run.run_id,
                    "metric": name,
                    "model": _number(value),
                    "baseline": _number(baseline[name]),
                }
            )
    history = pd.DataFrame(records, columns=["label", "run_id", "metric", "model", "baseline"])
    if history.empty:
        return history
    order = _metric_order(list(dict.fromkeys(history["metric"])))
    history["metric"] = pd.Categorical(history["metric"], categories=order, ordered=True)
    return history.sort_values(["metric"], kind="stable").assign(metric=lambda f: f["metric"].astype(str))


def model_metrics_section(model_runs: pd.DataFrame) -> Section:
    title = "Model metrics over runs vs the popularity baseline"
    how = (
        "Each panel is one offline metric on the run's chronological hold-out: the solid line is the "
        "trained model, the dashed line the popularity baseline on the same users; the model earns its "
        "keep where the solid line stays above the dashed one (higher is better for every metric shown)."
    )
    history = metric_history(model_runs)
    if history.empty:
        return Section("model_metrics", title, how, empty="No model runs yet: the daily DAG records one per day.")
    latest = model_runs.iloc[-1]
    table = [
        {
            "metric": row.metric,
            "model": f"{row.model:.4f}",
            "baseline": f"{row.baseline:.4f}",
            "model - baseline": f"{row.model - row.baseline:+.4f}",
        }
        for row in history[history["run_id"] == latest["run_id"]].itertuples(index=False)
    ]
    note = (
        f"{len(model_runs)} run(s); latest {latest['run_id']} ({latest['algorithm']}): "
        f"{'promoted' if latest['promoted'] else 'not promoted'} (gate: {latest['decision']})."
    )
    return Section("model_metrics", title, how, figure=plots.model_metrics_figure(history), table=table, note=note)


def quality_trend(data_quality: pd.DataFrame) -> pd.DataFrame:
    """Per cleaned window: label, input rows, quarantined and duplicate shares (%), validation."""
    if data_quality.empty:
        return pd.DataFrame(columns=["label", "input_rows", "quarantined_percent", "duplicate_percent", "validated"])
    frame = data_quality.copy()
    inputs = frame["input_rows"].astype(float).replace(0.0, np.nan)
    frame["quarantined_percent"] = (100.0 * frame["quarantined_rows"].astype(float) / inputs).fillna(0.0)
    frame["duplicate_percent"] = (100.0 * frame["duplicate_rows"].astype(float) / inputs).fillna(0.0)
    hours = (frame["window_end"] - frame["window_start"]).dt.total_seconds() / 3600.0
    frame["label"] = [
        f"{end:%m-%d %H:%M} ({h:g} h)"
        for end, h in zip(pd.to_datetime(frame["window_end"], utc=True), hours, strict=True)
    ]
    frame["validated"] = [None if pd.isna(v) else bool(v) for v in frame["validated"]]
    return frame[["label", "input_rows", "quarantined_percent", "duplicate_percent", "validated"]]


def quarantine_reasons(data_quality: pd.DataFrame) -> dict[str, int]:
    """Quarantined rows by reason over all windows, most frequent first."""
    totals: dict[str, int] = {}
    for reasons in data_quality.get("by_reason", pd.Series(dtype=object)):
        for reason, count in (reasons or {}).items():
            totals[reason] = totals.get(reason, 0) + int(count)
    return dict(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def data_quality_section(data_quality: pd.DataFrame) -> Section:
    title = "Data-quality trend"
    how = (
        "One point per cleaned window (end time and length): the top panel is the share of input rows "
        "quarantined or dropped as duplicates, the bottom one the rows read, coloured by whether the "
        "Great Expectations suite passed; a rising share or a red bar is where to look first."
    )
    trend = quality_trend(data_quality)
    if trend.empty:
        return Section(
            "data_quality", title, how, empty="No cleaned windows yet: the hourly and daily DAGs record them."
        )
    reasons = quarantine_reasons(data_quality)
    table = [{"reason": reason, "rows": f"{count:,}"} for reason, count in reasons.items()]
    failed = sum(v is False for v in trend["validated"])
    note = (
        f"{len(trend)} window(s), {int(data_quality['input_rows'].sum()):,} input rows, "
        f"{failed} failed validation; rows set aside by reason below."
    )
    return Section("data_quality", title, how, figure=plots.data_quality_figure(trend), table=table, note=note)


def segments_section(segments: pd.DataFrame) -> Section:
    title = "Segment sizes"
    how = (
        "Users per K-means segment of the latest profile build, each labelled with its description "
        "(top categories, price level, activity); very uneven bars mean a few segments carry most users."
    )
    if segments.empty:
        return Section("segments", title, how, empty="No segments yet: the daily DAG builds them with the profiles.")
    frame = segments.copy()
    frame["label"] = [f"{s}: {d[:70]}" for s, d in zip(frame["segment"], frame["description"], strict=True)]
    note = (
        f"Profiles of {frame['as_of'].iloc[0]}: {len(frame)} segments, {int(frame['size'].sum()):,} users, "
        f"silhouette {float(frame['silhouette'].iloc[0]):.3f}."
    )
    return Section("segments", title, how, figure=plots.segment_sizes_figure(frame[["label", "size"]]), note=note)


def decisions_by_day(notifications_daily: pd.DataFrame) -> pd.DataFrame:
    """Day x reason table of decision counts (reasons by total, largest first)."""
    if notifications_daily.empty:
        return pd.DataFrame()
    table = notifications_daily.pivot_table(
        index="day", columns="decision", values="decisions", aggfunc="sum", fill_value=0
    ).astype(int)
    order = table.sum().sort_values(ascending=False, kind="stable").index
    return table[order]


def notifications_section(notifications_daily: pd.DataFrame) -> Section:
    title = "Notifications by reason per day"
    how = (
        "Every candidate message gets one decision per planning run: 'sent' and 'deferred_quiet_hours' "
        "reach the outbox, every other colour is a reason it was held back (consent, control group, caps, "
        "duplicates, expiry); the bar height is all candidates decided on that UTC day."
    )
    table = decisions_by_day(notifications_daily)
    if table.empty:
        return Section("notifications", title, how, empty="No notification decisions yet.")
    totals = table.sum()
    rows = [
        {"reason": reason, "decisions": f"{int(n):,}", "share": f"{100.0 * n / totals.sum():.1f} %"}
        for reason, n in totals.items()
    ]
    return Section("notifications", title, how, figure=plots.decisions_by_day_figure(table), table=rows)


def hour_counts(send_hours: pd.DataFrame) -> tuple[pd.Series, int]:
    """Queued messages per local hour 0-23 (zeros filled) and the count whose hour is unknown."""
    if send_hours.empty:
        return pd.Series(0, index=range(24), dtype=int), 0
    known = send_hours[send_hours["local_hour"].notna()]
    counts = known.groupby(known["local_hour"].astype(int))["queued"].sum()
    unknown = int(send_hours.loc[send_hours["local_hour"].isna(), "queued"].sum())
    return counts.reindex(range(24), fill_value=0).astype(int), unknown


def send_hours_section(send_hours: pd.DataFrame) -> Section:
    title = "Send-hour distribution"
    how = (
        "Queued messages by the hour, in each user's own timezone, at which they are planned to go out; "
        "send-time optimisation spreads them over users' best hours, and quiet hours should stay empty."
    )
    counts, unknown = hour_counts(send_hours)
    if counts.sum() == 0:
        return Section("send_hours", title, how, empty="No queued messages yet.")
    peak = int(counts.idxmax())
    note = f"{int(counts.sum()):,} queued messages; busiest local hour {peak:02d}:00."
    if unknown:
        note += f" {unknown:,} more have no known local hour (user or moment unknown)."
    return Section("send_hours", title, how, figure=plots.send_hours_figure(counts), note=note)


def _with_rate_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for rate, events in (("ctr", "clicks"), ("cvr", "conversions")):
        bounds = [
            wilson_interval(_number(x), _number(n)) for x, n in zip(frame[events], frame["delivered"], strict=True)
        ]
        frame[rate] = [
            _number(x) / n if n else math.nan for x, n in zip(frame[events], frame["delivered"], strict=True)
        ]
        frame[f"{rate}_low"] = [low for low, _ in bounds]
        frame[f"{rate}_high"] = [high for _, high in bounds]
    for column in ("absolute_lift", "absolute_lift_ci_low", "absolute_lift_ci_high"):
        frame[column] = [_number(v) for v in frame[column]]
    return frame


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100.0 * value:.2f} %"


def _interval(low: float, high: float, scale: float = 100.0, unit: str = " %") -> str:
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    return f"[{scale * low:+.2f}, {scale * high:+.2f}]{unit}"


def outcomes_section(notification_runs: pd.DataFrame, notification_totals: pd.DataFrame) -> Section:
    title = "CTR, CVR and lift with 95 % confidence intervals"
    how = (
        "Top: click-through and conversion rates per delivered message of each planning run (latest runs) "
        "and of all runs pooled, with 95 % Wilson intervals; bottom: conversion rate of the treatment arm "
        "minus the control group's, with its 95 % interval - lift is real where the interval stays above zero."
    )
    totals = notification_totals.iloc[0] if not notification_totals.empty else None
    measured = (
        notification_runs[
            (notification_runs["delivered"] > 0)
            | (notification_runs["treatment_users"] + notification_runs["control_users"] > 0)
        ]
        if not notification_runs.empty
        else notification_runs
    )
    if totals is None or measured.empty:
        return Section(
            "outcomes", title, how, empty="No delivered messages or control-group outcomes yet: nothing to measure."
        )
    runs = measured.copy()
    runs["label"] = [f"{t:%m-%d %H:%M}" for t in pd.to_datetime(runs["logical_time"], utc=True)]
    pooled = pd.DataFrame(
        [
            {
                "label": "all runs",
                "delivered": totals["delivered"],
                "clicks": totals["clicks"],
                "conversions": totals["conversions"],
                "absolute_lift": totals["absolute_lift"],
                "absolute_lift_ci_low": totals["absolute_lift_ci_low"],
                "absolute_lift_ci_high": totals["absolute_lift_ci_high"],
            }
        ]
    )
    columns = [
        "label",
        "delivered",
        "clicks",
        "conversions",
        "absolute_lift",
        "absolute_lift_ci_low",
        "absolute_lift_ci_high",
    ]
    plotted = _with_rate_intervals(pd.concat([runs[columns], pooled], ignore_index=True))
    whole = plotted.iloc[-1]
    table = [
        {"measure": "runs", "value": f"{int(totals['runs']):,}", "95 % interval or counts": ""},
        {"measure": "delivered messages", "value": f"{int(totals['delivered']):,}", "95 % interval or counts": ""},
        {
            "measure": "CTR (clicks / delivered)",
            "value": _percent(whole["ctr"]),
            "95 % interval or counts": _interval(whole["ctr_low"], whole["ctr_high"]),
        },
        {
            "measure": "CVR (conversions / delivered)",
            "value": _percent(whole["cvr"]),
            "95 % interval or counts": _interval(whole["cvr_low"], whole["cvr_high"]),
        },
        {
            "measure": "treatment conversion rate",
            "value": _percent(_number(totals["treatment_conversion_rate"])),
            "95 % interval or counts": f"{int(totals['treatment_conversions']):,} of {int(totals['treatment_users']):,}",
        },
        {
            "measure": "control conversion rate",
            "value": _percent(_number(totals["control_conversion_rate"])),
            "95 % interval or counts": f"{int(totals['control_conversions']):,} of {int(totals['control_users']):,}",
        },
        {
            "measure": "absolute lift",
            "value": _percent(_number(totals["absolute_lift"])),
            "95 % interval or counts": _interval(
                _number(totals["absolute_lift_ci_low"]), _number(totals["absolute_lift_ci_high"])
            ),
        },
        {
            "measure": "relative lift",
            "value": _percent(_number(totals["relative_lift"])),
            "95 % interval or counts": _interval(
                _number(totals["relative_lift_ci_low"]), _number(totals["relative_lift_ci_high"])
            ),
        },
    ]
    note = "The lift interval is a normal approximation: with few conversions per arm read it with the counts."
    return Section("outcomes", title, how, figure=plots.rates_and_lift_figure(plotted), table=table, note=note)


def policy_arms_section(policy_arms: pd.DataFrame) -> Section:
    title = "Policy arms against the control group"
    how = (
        "Each policy arm (PUSH_POLICY_ARMS: random_hour, fixed_cap, popularity, no_uplift; full is everyone else) "
        "pooled over its planning runs: CTR and CVR per delivered message with 95 % Wilson intervals, and the arm's conversion "
        "rate minus the control group's with its 95 % interval. An arm that does worse than full is the part of the "
        "policy it replaced paying its way."
    )
    if policy_arms.empty:
        return Section("policy_arms", title, how, empty="No outcomes with a recorded policy arm yet.")
    frame = _with_rate_intervals(policy_arms)
    table = [
        {
            "arm": row.policy_arm,
            "delivered": int(row.delivered),
            "CTR": f"{_percent(row.ctr)} {_interval(row.ctr_low, row.ctr_high)}",
            "CVR": f"{_percent(row.cvr)} {_interval(row.cvr_low, row.cvr_high)}",
            "treated (run, user)": int(row.treatment_users),
            "lift": f"{_percent(row.absolute_lift)} {_interval(row.absolute_lift_ci_low, row.absolute_lift_ci_high)}",
        }
        for row in frame.itertuples()
    ]
    return Section("policy_arms", title, how, table=table)


def _maybe_percent(value: float | None) -> str:
    return "n/a" if value is None else _percent(value)


def ab_tests_section(variant_daily: pd.DataFrame, campaign_variants: pd.DataFrame) -> Section:
    title = "A/B/n message tests"
    how = (
        "Each campaign variant (push.campaign_variants) against its campaign's reference variant, per delivered "
        "message. The CVR difference comes with a 95 % always-valid interval and p-value (mSPRT): they may be read "
        "every day, and a variant is called better or worse only when p <= 0.05. The guardrail stops a variant whose "
        "opt-out rate is above the reference's with the same confidence, whatever its conversions. The same test on "
        "CTR is shown beside the verdict: wording often moves clicks before sales."
    )
    if campaign_variants.empty:
        return Section("ab_tests", title, how, empty="No campaign has variants yet.")
    table = [
        {
            "test": f"{result.campaign_id} / {result.variant}",
            "delivered": result.delivered,
            "CTR": _maybe_percent(result.ctr),
            "CVR": _maybe_percent(result.cvr),
            "opt-outs": _maybe_percent(result.opt_out_rate),
            "CVR - reference": "-"
            if result.cvr_difference is None
            else f"{_percent(result.cvr_difference)} {_interval(result.cvr_difference_low, result.cvr_difference_high)}",
            "p (always valid)": "-" if result.p_value is None else f"{result.p_value:.3f}",
            "p of CTR": "-" if result.ctr_p_value is None else f"{result.ctr_p_value:.3f}",
            "verdict": result.verdict,
        }
        for result in variant_tests(variant_daily, campaign_variants)
    ]
    return Section("ab_tests", title, how, table=table)


def build_sections(data: ReportData) -> list[Section]:
    """All sections of the report, in reading order."""
    return [
        model_metrics_section(data.model_runs),
        data_quality_section(data.data_quality),
        segments_section(data.segments),
        notifications_section(data.notifications_daily),
        send_hours_section(data.send_hours),
        outcomes_section(data.notification_runs, data.notification_totals),
        policy_arms_section(data.policy_arms),
        ab_tests_section(data.variant_daily, data.campaign_variants),
    ]
