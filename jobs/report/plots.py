"""Figures of the evaluation report: tidy frames in, PNG bytes out.

Pure functions on matplotlib's object API (no pyplot, so no global state and no display):
each takes the frame its section prepared and returns the PNG, or ``None`` when there is
nothing to draw.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

WIDTH = 9.0
DPI = 100
MODEL_COLOUR = "#1f77b4"
BASELINE_COLOUR = "#7f7f7f"
GOOD = "#2ca02c"
BAD = "#d62728"
UNKNOWN = "#bbbbbb"


def to_png(figure: Figure) -> bytes:
    """Render a figure to PNG bytes (no software stamp, so equal figures give equal bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _tick_positions(count: int, most: int = 12) -> list[int]:
    step = max(1, math.ceil(count / most))
    return list(range(0, count, step))


def _label_x(ax, labels: list[str]) -> None:
    ticks = _tick_positions(len(labels))
    ax.set_xticks(ticks)
    ax.set_xticklabels([labels[i] for i in ticks], rotation=30, ha="right", fontsize=8)


def _pad_bars(ax, count: int, at_least: int = 6) -> None:
    """Keep a few bars from stretching over the whole width."""
    pad = max(0.0, (at_least - count) / 2)
    ax.set_xlim(-0.5 - pad, count - 0.5 + pad)


def model_metrics_figure(history: pd.DataFrame) -> bytes | None:
    """One panel per metric: the model (solid) and the popularity baseline (dashed) per run.

    Args:
        history: columns ``label`` (the run, in run order), ``metric``, ``model``, ``baseline``.
    """
    if history.empty:
        return None
    metrics = list(dict.fromkeys(history["metric"]))
    labels = list(dict.fromkeys(history["label"]))
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    figure = Figure(figsize=(WIDTH, 2.6 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    positions = {label: i for i, label in enumerate(labels)}
    for ax, metric in zip(axes, metrics, strict=False):
        rows_of = history[history["metric"] == metric]
        x = [positions[label] for label in rows_of["label"]]
        ax.plot(x, rows_of["model"], marker="o", color=MODEL_COLOUR, label="model")
        ax.plot(x, rows_of["baseline"], marker="s", linestyle="--", color=BASELINE_COLOUR, label="baseline")
        ax.set_title(metric, fontsize=10)
        ax.grid(alpha=0.3)
        _label_x(ax, labels)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    return to_png(figure)


def data_quality_figure(quality: pd.DataFrame) -> bytes | None:
    """Quarantined and duplicate shares per cleaned window, and input rows by validation result.

    Args:
        quality: one row per window with ``label``, ``input_rows``, ``quarantined_percent``,
            ``duplicate_percent`` and ``validated`` (True, False or None when not validated).
    """
    if quality.empty:
        return None
    figure = Figure(figsize=(WIDTH, 5.0), layout="constrained")
    shares, volume = figure.subplots(2, 1, sharex=True)
    x = np.arange(len(quality))
    shares.plot(x, quality["quarantined_percent"], marker="o", color=BAD, label="quarantined %")
    shares.plot(x, quality["duplicate_percent"], marker="s", color="#ff7f0e", label="duplicates %")
    shares.set_ylabel("% of input rows")
    shares.set_ylim(bottom=0)
    shares.grid(alpha=0.3)
    shares.legend(fontsize=8)
    colours = [GOOD if v is True else BAD if v is False else UNKNOWN for v in quality["validated"]]
    volume.bar(x, quality["input_rows"], color=colours)
    _pad_bars(volume, len(quality))
    volume.set_ylabel("input rows")
    volume.grid(axis="y", alpha=0.3)
    volume.set_title("bar colour: green = validation passed, red = failed, grey = not validated", fontsize=8)
    _label_x(volume, list(quality["label"]))
    return to_png(figure)


def segment_sizes_figure(segments: pd.DataFrame) -> bytes | None:
    """Horizontal bars: users per segment, labelled with the segment's description.

    Args:
        segments: ``label`` and ``size`` per segment.
    """
    if segments.empty:
        return None
    figure = Figure(figsize=(WIDTH, 0.5 * len(segments) + 1.2), layout="constrained")
    ax = figure.subplots()
    y = np.arange(len(segments))
    ax.barh(y, segments["size"], color=MODEL_COLOUR)
    ax.set_yticks(y)
    ax.set_yticklabels(segments["label"], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("users")
    ax.grid(axis="x", alpha=0.3)
    for position, size in zip(y, segments["size"], strict=True):
        ax.annotate(f"{size:,}", (size, position), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    return to_png(figure)


def decisions_by_day_figure(daily: pd.DataFrame) -> bytes | None:
    """Stacked bars: decisions per UTC day, one colour per reason.

    Args:
        daily: a day x decision table of counts (index: day labels, columns: reasons).
    """
    if daily.empty:
        return None
    figure = Figure(figsize=(WIDTH, 3.8), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(daily))
    bottom = np.zeros(len(daily))
    colours = [f"C{i % 10}" for i in range(len(daily.columns))]
    for reason, colour in zip(daily.columns, colours, strict=True):
        values = daily[reason].to_numpy(dtype=float)
        ax.bar(x, values, bottom=bottom, label=reason, color=colour)
        bottom += values
    _pad_bars(ax, len(daily))
    ax.set_ylabel("decisions")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    _label_x(ax, [str(day) for day in daily.index])
    return to_png(figure)


def send_hours_figure(hours: pd.Series) -> bytes | None:
    """Bars: queued messages per local hour 0-23 of the user's planned send moment.

    Args:
        hours: counts indexed by hour 0..23 (all 24 present).
    """
    if hours.sum() == 0:
        return None
    figure = Figure(figsize=(WIDTH, 3.0), layout="constrained")
    ax = figure.subplots()
    ax.bar(hours.index, hours.to_numpy(), color=MODEL_COLOUR)
    ax.set_xticks(range(24))
    ax.set_xlabel("local hour of the planned send moment")
    ax.set_ylabel("queued messages")
    ax.grid(axis="y", alpha=0.3)
    return to_png(figure)


def _interval_plot(ax, x, value, low, high, colour, label, marker="o") -> None:
    value = np.asarray(value, dtype=float)
    low = np.asarray(low, dtype=float)
    high = np.asarray(high, dtype=float)
    shown = ~np.isnan(value)
    if not shown.any():
        return
    errors = np.vstack([value - low, high - value])[:, shown]
    # An interval computed in floating point can miss its own value by a rounding error (a
    # Wilson lower bound of 1e-18 at zero successes); matplotlib refuses negative lengths.
    errors = np.clip(np.nan_to_num(errors, nan=0.0), 0.0, None)
    ax.errorbar(np.asarray(x)[shown], value[shown], yerr=errors, fmt=marker, color=colour, capsize=3, label=label)


def _legend_or_note(ax, note: str) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", color=BASELINE_COLOUR)


def rates_and_lift_figure(runs: pd.DataFrame) -> bytes | None:
    """Per run: CTR and CVR with 95 % intervals (top) and absolute lift with its interval (bottom).

    Args:
        runs: one row per run with ``label``, ``ctr``, ``ctr_low``, ``ctr_high``, ``cvr``,
            ``cvr_low``, ``cvr_high``, ``absolute_lift``, ``absolute_lift_ci_low`` and
            ``absolute_lift_ci_high`` (NaN where undefined); the last row may be the pooled total.
    """
    if runs.empty:
        return None
    figure = Figure(figsize=(WIDTH, 5.2), layout="constrained")
    rates, lift = figure.subplots(2, 1, sharex=True)
    x = np.arange(len(runs))
    _interval_plot(rates, x - 0.1, runs["ctr"], runs["ctr_low"], runs["ctr_high"], MODEL_COLOUR, "CTR")
    _interval_plot(rates, x + 0.1, runs["cvr"], runs["cvr_low"], runs["cvr_high"], "#ff7f0e", "CVR", marker="s")
    rates.set_ylabel("rate per delivered message")
    rates.grid(alpha=0.3)
    _legend_or_note(rates, "no delivered messages in these runs")
    _interval_plot(
        lift,
        x,
        runs["absolute_lift"],
        runs["absolute_lift_ci_low"],
        runs["absolute_lift_ci_high"],
        GOOD,
        "conversion lift (treatment - control)",
    )
    lift.axhline(0.0, color=BASELINE_COLOUR, linewidth=1)
    lift.set_ylabel("absolute lift")
    lift.grid(alpha=0.3)
    _legend_or_note(lift, "no lift measurable yet: these runs have no control group")
    _label_x(lift, list(runs["label"]))
    return to_png(figure)
