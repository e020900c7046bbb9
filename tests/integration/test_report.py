"""The evaluation report from real PostgreSQL tables, rendered by headless Chromium.

Facts are inserted into the pipeline's own tables (a seeded, random but reproducible history:
model runs, cleaned windows, segments, notification decisions, deliveries, outcomes and
control-group arms); the report reads them through its queries and the analytics views. The
assertions compare what the page says with measures computed here from the inserted rows, and
what Chromium shows: every section, every plot decoded with a non-zero size.
"""

from __future__ import annotations

import json
import math
import random
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from jobs.report.__main__ import main as report_main
from jobs.report.job import write_report
from jobs.report.sections import wilson_interval
from tests.support.browser import artifact

SECTIONS = [
    "model_metrics", "data_quality", "segments", "notifications", "send_hours", "outcomes", "policy_arms", "ab_tests",
]  # fmt: skip
# Sections with a plot (the policy arms and the A/B tests are tables).
PLOTTED = SECTIONS[:-2]
FIRST_DAY = date(2026, 11, 20)
DAYS = 4
USERS = 60
DECISIONS = ["sent", "holdout", "capped_daily", "suppressed_consent", "deferred_quiet_hours", "duplicate"]
TIMEZONES = ["UTC", "Europe/Paris", "Asia/Shanghai", "America/New_York"]


def _at(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def seed_history(engine, seed: int = 7) -> dict:
    """Insert a small history into the real tables; return what the report should show."""
    rng = random.Random(seed)
    days = [FIRST_DAY + timedelta(days=n) for n in range(DAYS)]
    facts: dict = {"model_runs": [], "segments": {}, "arms": {"treatment": [0, 0], "control": [0, 0]}}
    # Per policy arm: delivered messages, treated (run, user) pairs, their conversions.
    facts["policy_arms"] = {"full": [0, 0, 0], "random_hour": [0, 0, 0]}
    facts.update(delivered=0, clicks=0, conversions=0, decisions={}, windows=0, failed_windows=0, reasons={})
    facts["window_starts"] = []
    # An A/B test: the first users' messages belong to campaign "spring", variant a or b.
    facts["variants"] = {"a": 0, "b": 0}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.campaigns (campaign_id, name, valid_from, valid_to, channels)"
                " VALUES ('spring', 'Spring', :start, :end, '{push}')"
            ),
            {"start": _at(days[0]), "end": _at(days[-1] + timedelta(days=1))},
        )
        conn.execute(
            text(
                "INSERT INTO push.campaign_variants (campaign_id, variant, template, control)"
                " VALUES ('spring', 'a', NULL, true), ('spring', 'b', 'urgent', false)"
            )
        )
        for n, day in enumerate(days):
            metrics = {f"{m}@10": rng.uniform(0.05, 0.4) for m in ("ndcg", "precision", "recall", "map")}
            metrics.update(coverage=rng.uniform(0.2, 0.9), users_evaluated=rng.randint(20, 60), rmse=rng.random())
            baseline = {k: v * rng.uniform(0.4, 0.9) for k, v in metrics.items() if k != "rmse"}
            run_id = f"svd-{day:%Y%m%d}T0000"
            conn.execute(
                text(
                    "INSERT INTO push.model_runs (run_id, as_of, algorithm, params, train_start, train_end, metrics,"
                    " baseline_metrics, artifact_path, promoted, decision) VALUES (:run_id, :as_of, 'svd', '{}',"
                    " :start, :end, CAST(:metrics AS jsonb), CAST(:baseline AS jsonb), 'none', :promoted, :decision)"
                ),
                {
                    "run_id": run_id,
                    "as_of": day,
                    "start": _at(day) - timedelta(days=28),
                    "end": _at(day),
                    "metrics": json.dumps(metrics),
                    "baseline": json.dumps(baseline),
                    "promoted": n % 2 == 0,
                    "decision": f"decision of run {n}",
                },
            )
            facts["model_runs"].append({"run_id": run_id, "as_of": day, "metrics": metrics, "baseline": baseline})
            # One daily window plus two hourly ones; the last hourly window of each day is not validated.
            windows = [(_at(day) - timedelta(days=1), _at(day)), (_at(day, 1), _at(day, 2)), (_at(day, 2), _at(day, 3))]
            for w, (start, end) in enumerate(windows):
                clean, quarantined, duplicates = rng.randint(500, 2000), rng.randint(0, 30), rng.randint(0, 20)
                reasons = {"bot": quarantined // 2, "bad_timestamp": quarantined - quarantined // 2}
                conn.execute(
                    text("INSERT INTO push.ingest_runs VALUES (:s, :e, :i, :c, :q, :d, CAST(:r AS jsonb))"),
                    {
                        "s": start,
                        "e": end,
                        "i": clean + quarantined + duplicates,
                        "c": clean,
                        "q": quarantined,
                        "d": duplicates,
                        "r": json.dumps(reasons),
                    },
                )
                facts["windows"] += 1
                facts["window_starts"].append(start)
                for reason, count in reasons.items():
                    facts["reasons"][reason] = facts["reasons"].get(reason, 0) + count
                if w < 2:
                    success = not (n == 1 and w == 0)
                    facts["failed_windows"] += not success
                    # A manual run validates the window it was asked for (here off the hour); its
                    # cleaning recorded the window widened to whole hours.
                    asked = (
                        (start + timedelta(minutes=17), end - timedelta(minutes=43)) if not success else (start, end)
                    )
                    conn.execute(
                        text("INSERT INTO push.validation_runs VALUES ('clean_events', :s, :e, :ok, 12, :f, '[]')"),
                        {"s": asked[0], "e": asked[1], "ok": success, "f": 0 if success else 1},
                    )
            sizes = [rng.randint(5, 40) for _ in range(3 + n % 2)]
            for segment, size in enumerate(sizes):
                conn.execute(
                    text("INSERT INTO push.segments VALUES (:d, :s, :size, ARRAY['shoes'], 0.5, 2.0, :desc, 0.31)"),
                    {"d": day, "s": segment, "size": size, "desc": f"segment {segment} of {day}"},
                )
            facts["segments"][day] = sizes
        for u in range(USERS):
            conn.execute(
                text("INSERT INTO push.users (user_id, timezone, consent_push) VALUES (:u, :tz, true)"),
                {"u": f"u{u:03d}", "tz": TIMEZONES[u % len(TIMEZONES)]},
            )
        for day in days:
            at = _at(day, 6)
            run_key = f"notify-{at:%Y%m%dT%H%M}-h24"
            conn.execute(
                text("INSERT INTO push.notification_runs VALUES (:k, :at, 24, NULL, :users, '{}')"),
                {"k": run_key, "at": at, "users": USERS},
            )
            for u in range(USERS):
                user = f"u{u:03d}"
                policy = "full" if u % 2 else "random_hour"
                variant = None if u >= 20 else "ab"[(u // 2) % 2]
                decision = rng.choice(DECISIONS)
                key = f"{run_key}-{user}"
                scheduled = at + timedelta(hours=rng.randint(0, 23))
                conn.execute(
                    text(
                        "INSERT INTO push.notification_decisions (run_key, user_id, candidate_key, source, channel,"
                        " expected_value, decision, idempotency_key, decided_at, scheduled_at, policy_arm,"
                        " campaign_id, variant) VALUES (:k, :u, 'rec', 'recommendation', 'push', 0.1, :d, :key, :at,"
                        " :sched, :policy, :campaign, :variant)"
                    ),
                    {
                        "k": run_key,
                        "u": user,
                        "d": decision,
                        "key": key,
                        "at": at,
                        "sched": scheduled,
                        "policy": policy,
                        "campaign": "spring" if variant else None,
                        "variant": variant,
                    },
                )
                facts["decisions"][decision] = facts["decisions"].get(decision, 0) + 1
                arm = "control" if decision == "holdout" else "treatment"
                converted = rng.random() < (0.12 if arm == "treatment" else 0.05)
                conn.execute(
                    text("INSERT INTO push.decision_outcomes VALUES (:k, :u, NULL, :arm, :sched, :c, 0)"),
                    {"k": run_key, "u": user, "arm": arm, "sched": scheduled, "c": converted},
                )
                facts["arms"][arm][0] += 1
                facts["arms"][arm][1] += converted
                if arm == "treatment":
                    facts["policy_arms"][policy][1] += 1
                    facts["policy_arms"][policy][2] += converted
                if decision not in ("sent", "deferred_quiet_hours"):
                    continue
                conn.execute(
                    text(
                        "INSERT INTO push.notification_ledger (idempotency_key, run_key, user_id, channel, source,"
                        " scheduled_at, payload, status, attempts, sent_at) VALUES (:key, :k, :u, 'push',"
                        " 'recommendation', :sched, '{}', 'sent', 1, :sched)"
                    ),
                    {"key": key, "k": run_key, "u": user, "sched": scheduled},
                )
                clicked = rng.random() < 0.3
                bought = clicked and rng.random() < 0.4
                conn.execute(
                    text(
                        "INSERT INTO push.message_outcomes (idempotency_key, run_key, user_id, source, channel, sent_at,"
                        " clicked_at, converted_at, revenue) VALUES (:key, :k, :u, 'recommendation', 'push', :sched,"
                        " :clicked, :bought, 0)"
                    ),
                    {
                        "key": key,
                        "k": run_key,
                        "u": user,
                        "sched": scheduled,
                        "clicked": scheduled + timedelta(minutes=5) if clicked else None,
                        "bought": scheduled + timedelta(minutes=30) if bought else None,
                    },
                )
                facts["delivered"] += 1
                facts["policy_arms"][policy][0] += 1
                if variant:
                    facts["variants"][variant] += 1
                facts["clicks"] += clicked
                facts["conversions"] += bought
    facts["days"] = days
    return facts


def _table_value(html: str, label: str) -> str:
    match = re.search(rf"<td>{re.escape(label)}</td><td>([^<]*)</td>", html)
    assert match, f"no row {label!r} in the report"
    return match.group(1)


def _render(browser, path, screenshot: str) -> dict:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(artifact(screenshot)), full_page=True)
        return page.evaluate(
            """() => ({
                sections: [...document.querySelectorAll('section')].map(s => s.id),
                images: [...document.querySelectorAll('section img')].map(
                    i => ({section: i.closest('section').id, width: i.naturalWidth, height: i.naturalHeight})),
                empty: [...document.querySelectorAll('section .empty')].map(p => p.closest('section').id),
                how: [...document.querySelectorAll('section .how')].length,
                external: [...document.querySelectorAll('[src], link[href]')].filter(
                    e => !(e.getAttribute('src') || '').startsWith('data:')).length,
            })"""
        )
    finally:
        page.close()


def test_report_of_an_empty_database_says_there_is_nothing_yet(empty_db, settings, browser, tmp_path):
    out = write_report(settings, tmp_path / "empty.html")
    shown = _render(browser, out, "report-empty.png")
    assert shown["sections"] == SECTIONS
    assert shown["empty"] == SECTIONS
    assert shown["images"] == []
    assert shown["how"] == len(SECTIONS)
    assert "No model runs yet" in out.read_text()


@pytest.fixture
def seeded(empty_db):
    return seed_history(empty_db)


def test_report_from_the_tables_shows_every_section_with_its_plot(seeded, settings, browser, tmp_path):
    out = tmp_path / "report.html"
    assert report_main(["--out", str(out)]) == 0
    html = out.read_text()
    shown = _render(browser, out, "report.png")

    assert shown["sections"] == SECTIONS
    assert shown["empty"] == []
    assert shown["external"] == 0
    assert [i["section"] for i in shown["images"]] == PLOTTED
    assert all(i["width"] > 0 and i["height"] > 0 for i in shown["images"])

    latest = seeded["model_runs"][-1]
    assert f"{len(seeded['model_runs'])} run(s); latest {latest['run_id']}" in html
    assert _table_value(html, "ndcg@10") == f"{latest['metrics']['ndcg@10']:.4f}"
    last_sizes = seeded["segments"][seeded["days"][-1]]
    assert f"{len(last_sizes)} segments, {sum(last_sizes):,} users" in html
    assert f"{seeded['windows']} window(s)" in html
    assert f"{seeded['failed_windows']} failed validation" in html
    for reason, count in seeded["reasons"].items():
        assert _table_value(html, reason) == f"{count:,}"
    for decision, count in seeded["decisions"].items():
        assert _table_value(html, decision) == f"{count:,}"
    queued = seeded["decisions"].get("sent", 0) + seeded["decisions"].get("deferred_quiet_hours", 0)
    assert f"{queued:,} queued messages" in html

    ctr = seeded["clicks"] / seeded["delivered"]
    low, high = wilson_interval(seeded["clicks"], seeded["delivered"])
    assert _table_value(html, "CTR (clicks / delivered)") == f"{100 * ctr:.2f} %"
    assert f"[{100 * low:+.2f}, {100 * high:+.2f}] %" in html
    (n1, x1), (n2, x2) = seeded["arms"]["treatment"], seeded["arms"]["control"]
    p1, p2 = x1 / n1, x2 / n2
    half = 1.96 * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    assert _table_value(html, "absolute lift") == f"{100 * (p1 - p2):.2f} %"
    assert f"[{100 * (p1 - p2 - half):+.2f}, {100 * (p1 - p2 + half):+.2f}] %" in html
    # Each policy arm against the whole control group.
    for policy, (delivered, treated, converted) in seeded["policy_arms"].items():
        assert _table_value(html, policy) == str(delivered)
        assert f"{100 * (converted / treated - p2):.2f} % [" in html
    # The A/B test: delivered messages per variant, the reference named as such.
    assert _table_value(html, "spring / a") == str(seeded["variants"]["a"])
    assert _table_value(html, "spring / b") == str(seeded["variants"]["b"])
    assert "<td>reference</td>" in html


def test_report_until_a_time_leaves_out_what_came_later(seeded, settings, tmp_path):
    cut = seeded["days"][-2]
    html = write_report(settings, tmp_path / "until.html", until=_at(cut)).read_text()
    runs_until = [r for r in seeded["model_runs"] if r["as_of"] <= cut]
    assert f"{len(runs_until)} run(s); latest {runs_until[-1]['run_id']}" in html
    sizes = seeded["segments"][cut]
    assert f"{len(sizes)} segments, {sum(sizes):,} users" in html
    assert f"Data up to {cut:%Y-%m-%d} 00:00 UTC" in html
    # A cleaned window counts once it has begun (windows are widened to whole hours).
    begun = sum(start < _at(cut) for start in seeded["window_starts"])
    assert f"{begun} window(s)" in html
