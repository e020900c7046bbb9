"""Pure parts of the evaluation report: intervals, reshaping, empty data, the page itself."""

from __future__ import annotations

import base64
import math
import random
import re
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from jobs.report.data import ReportData
from jobs.report.job import build_report
from jobs.report.page import render_page
from jobs.report.sections import (
    Section,
    build_sections,
    decisions_by_day,
    hour_counts,
    metric_history,
    quality_trend,
    wilson_interval,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (3, 10), (10, 10), (17, 250), (1, 1)])
def test_wilson_bounds_are_where_the_score_test_is_exactly_significant(successes, trials):
    """Each bound p0 solves |p - p0| = z sqrt(p0 (1 - p0) / n), the definition of the interval."""
    low, high = wilson_interval(successes, trials)
    p = successes / trials
    assert 0.0 <= low <= p <= high <= 1.0
    for bound in (low, high):
        if bound in (0.0, 1.0) and bound == p:
            continue  # the interval touches the edge where the observed rate is 0 or 1
        assert abs(p - bound) == pytest.approx(1.96 * math.sqrt(bound * (1 - bound) / trials), rel=1e-9)


def test_wilson_interval_without_trials_is_undefined():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_metric_history_keeps_metrics_both_sides_recorded_ranking_first():
    runs = pd.DataFrame(
        [
            {
                "run_id": "r1",
                "as_of": date(2026, 11, 1),
                "metrics": {"coverage": 0.5, "users_evaluated": 40, "rmse": 0.3, "ndcg@10": 0.2, "only_model": 1.0},
                "baseline_metrics": {"coverage": 0.2, "users_evaluated": 40, "ndcg@10": 0.1},
            }
        ]
    )
    history = metric_history(runs)
    assert list(history["metric"]) == ["ndcg@10", "coverage"]
    assert list(history["model"]) == [0.2, 0.5]
    assert list(history["baseline"]) == [0.1, 0.2]


def test_quality_trend_shares_and_window_lengths():
    start = datetime(2026, 11, 1, tzinfo=UTC)
    frame = pd.DataFrame(
        [
            {
                "window_start": start,
                "window_end": start + timedelta(hours=24),
                "input_rows": 200,
                "quarantined_rows": 3,
                "duplicate_rows": 5,
                "validated": True,
            },
            {
                "window_start": start,
                "window_end": start + timedelta(hours=1),
                "input_rows": 0,
                "quarantined_rows": 0,
                "duplicate_rows": 0,
                "validated": None,
            },
        ]
    )
    trend = quality_trend(frame)
    assert list(trend["quarantined_percent"]) == [100 * 3 / 200, 0.0]
    assert list(trend["duplicate_percent"]) == [100 * 5 / 200, 0.0]
    assert list(trend["validated"]) == [True, None]
    assert trend["label"].iloc[0].endswith("(24 h)")


def test_hour_counts_fill_every_hour_and_count_unknown_ones():
    rng = random.Random(3)
    rows = [{"local_hour": rng.choice([*range(24), None]), "queued": rng.randint(1, 9)} for _ in range(50)]
    counts, unknown = hour_counts(pd.DataFrame(rows))
    assert list(counts.index) == list(range(24))
    assert unknown == sum(r["queued"] for r in rows if r["local_hour"] is None)
    assert counts.sum() + unknown == sum(r["queued"] for r in rows)


def test_decisions_by_day_orders_reasons_by_volume():
    rows = [
        {"day": date(2026, 11, 1), "decision": "sent", "decisions": 2},
        {"day": date(2026, 11, 1), "decision": "holdout", "decisions": 5},
        {"day": date(2026, 11, 2), "decision": "sent", "decisions": 1},
    ]
    table = decisions_by_day(pd.DataFrame(rows))
    assert list(table.columns) == ["holdout", "sent"]
    assert table.loc[date(2026, 11, 2), "holdout"] == 0


def test_empty_data_gives_every_section_an_empty_message_and_no_figure():
    sections = build_sections(ReportData())
    assert len(sections) == 8
    assert all(s.empty and s.figure is None and s.how_to_read for s in sections)


def test_page_embeds_figures_and_escapes_text():
    figure = PNG_MAGIC + b"rest"
    section = Section("k", "A <b> title", "Read & see", figure=figure, table=[{"a": "<x>"}], note="n")
    html = render_page([section], "T", "S")
    encoded = re.search(r'src="data:image/png;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(encoded) == figure
    assert "A &lt;b&gt; title" in html
    assert "<td>&lt;x&gt;</td>" in html
    assert "http" not in html


def test_report_of_no_data_renders():
    html = build_report(ReportData(), datetime(2026, 11, 25, tzinfo=UTC))
    assert "Data up to 2026-11-25 00:00 UTC." in html
    assert html.count("<section") == 8


def test_an_interval_that_misses_its_value_by_a_rounding_error_still_plots():
    from jobs.report.plots import rates_and_lift_figure

    runs = pd.DataFrame(
        [
            {
                "label": "11-02 00:00",
                "ctr": 0.0,
                "ctr_low": 1e-18,
                "ctr_high": 0.3,
                "cvr": 0.0,
                "cvr_low": 0.0,
                "cvr_high": 0.3,
                "absolute_lift": 0.02,
                "absolute_lift_ci_low": 0.02 + 1e-17,
                "absolute_lift_ci_high": 0.05,
            }
        ]
    )
    assert rates_and_lift_figure(runs).startswith(PNG_MAGIC)
