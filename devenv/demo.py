"""End-to-end demo on the embedded default: data -> Airflow DAGs -> Postgres -> summary.

1. starts the project's own PostgreSQL (unless ``PUSH_DATABASE_URL`` is set) and migrates it;
2. generates a small deterministic data set into the landing zone;
3. has Airflow run the real DAGs with ``airflow dags test`` for one logical date:
   ``daily_recommendations`` (cleaning the generated week), ``hourly_events`` (triggers and
   feedback) and then ``notifications`` (the next 24 hours of send moments, delivered);
4. simulated shoppers answer the delivered messages (``simulation/world.py``) over the next two
   days, and an hourly run over each day collects their opens, clicks and purchases;
5. prints a summary (with CTR, CVR and the control-group lift; the evaluation report is
   written) and a few example SQL queries with their output.

Running it again re-runs the same logical date: every table ends up identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from devenv.airflow_env import airflow_environment, migrate_metadata
from jobs.core.config import Settings
from jobs.core.db import apply_migrations, load_query, make_engine
from jobs.notify.audience import preview_audience
from jobs.notify.experiments import REFERENCE, load_variant_frames, variant_tests
from jobs.report.job import write_report
from simulation.closed_loop import delivered_messages
from simulation.synthetic import (
    AUDIENCE_CAMPAIGN,
    GeneratorConfig,
    add_scale_arguments,
    generate,
    read_new_items,
    read_tastes,
)
from simulation.world import ResponseConfig, World

EXAMPLE_QUERIES = {
    "Live recommendations of one user": (
        "SELECT user_id, rank, title, category, price, source, reason FROM analytics.current_recommendations"
        " WHERE user_id = 'u00001' ORDER BY rank LIMIT 5"
    ),
    "Notification decisions by reason": (
        "SELECT decision, channel, sum(decisions) AS n FROM analytics.notification_outcomes"
        " GROUP BY 1, 2 ORDER BY n DESC"
    ),
    "Triggers detected": (
        "SELECT trigger_type, count(*) AS n, count(cancelled_at) AS cancelled FROM push.triggers GROUP BY 1 ORDER BY 1"
    ),
    "Outbox by source and status": (
        "SELECT source, status, count(*) AS n FROM push.notification_ledger GROUP BY 1, 2 ORDER BY 1, 2"
    ),
    "Ingestion accounting (input = clean + quarantined + duplicates)": (
        "SELECT window_start, input_rows, clean_rows, quarantined_rows, duplicate_rows, quarantined_percent"
        " FROM analytics.ingest_accounting ORDER BY window_start"
    ),
    "Segments, described": "SELECT segment, size, description FROM push.segments ORDER BY segment",
    "Conversion lift over the control group, per planning run": (
        "SELECT run_key, delivered, treatment_users, control_users, round(absolute_lift::numeric, 3) AS lift,"
        " round(absolute_lift_ci_low::numeric, 3) AS ci_low, round(absolute_lift_ci_high::numeric, 3) AS ci_high"
        " FROM analytics.notification_run_report WHERE delivered > 0 ORDER BY logical_time"
    ),
    "A/B test of the campaigns' wording (python -m jobs.notify.experiments for the sequential test)": (
        "SELECT variant, sum(delivered) AS delivered, sum(clicks) AS clicks, sum(conversions) AS conversions,"
        " sum(opted_out) AS opted_out FROM analytics.campaign_variant_daily GROUP BY 1 ORDER BY 1"
    ),
}


def ensure_database() -> str:
    if os.environ.get("PUSH_DATABASE_URL") and not os.environ.get("PUSH_AIRFLOW_DATABASE_URL"):
        raise SystemExit(
            "PUSH_DATABASE_URL is set, so no embedded database is started: also set "
            "PUSH_AIRFLOW_DATABASE_URL to a database for Airflow's metadata."
        )
    if not os.environ.get("PUSH_DATABASE_URL"):
        from devenv.localdb import EmbeddedPostgres

        EmbeddedPostgres.default().start()
    settings = Settings.from_env()
    apply_migrations(make_engine(settings.database_url))
    return settings.database_url


def run_dag(
    env: dict[str, str], dag_id: str, logical_date: str, conf: dict | None, log_dir, log_name: str = ""
) -> float:
    """``airflow dags test`` one DAG; its log goes to a file, a failure prints the tail."""
    command = ["airflow", "dags", "test", dag_id, logical_date]
    if conf:
        command += ["-c", json.dumps(conf)]
    log_path = log_dir / f"{log_name or dag_id}.log"
    started = time.monotonic()
    with log_path.open("w") as log_file:
        result = subprocess.run(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, check=False)
    seconds = time.monotonic() - started
    state = _final_state(log_path)
    if result.returncode != 0 or state != "success":
        tail = log_path.read_text(errors="replace").splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"DAG {dag_id} did not succeed (state {state}); full log: {log_path}")
    print(f"  {dag_id}: success in {seconds:.0f} s (log: {log_path})")
    return seconds


def _final_state(log_path) -> str:
    for line in reversed(log_path.read_text(errors="replace").splitlines()):
        if "DagRun Finished" in line and "state=" in line:
            return line.split("state=", 1)[1].split(",", 1)[0]
    return "unknown"


def print_query(conn, title: str, sql: str) -> None:
    result = conn.execute(text(sql))
    columns = list(result.keys())
    rows = [[("" if v is None else str(v)) for v in row] for row in result.fetchall()]
    widths = [max([len(c)] + [len(r[n]) for r in rows]) for n, c in enumerate(columns)]
    print(f"\n-- {title}\n{sql};")
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def print_new_users(conn, landing) -> None:
    """What users with no event yet got: their demographic neighbours' items (with consent) or popularity."""
    tastes = read_tastes(landing)
    rows = conn.execute(
        text(
            "SELECT r.user_id, r.category, r.source FROM analytics.current_recommendations r"
            " JOIN push.users u USING (user_id) WHERE u.user_id = ANY(:new)"
        ),
        {"new": [u for u in tastes if u.startswith("n")]},
    ).all()

    def in_taste(subset) -> str:
        hits = sum(r.category in tastes[r.user_id]["favourite_categories"] for r in subset)
        return f"{hits / len(subset):.0%}" if subset else "-"

    personal = [r for r in rows if r.source == "demographic"]
    popular = [r for r in rows if r.source == "popular"]
    print(
        f"  new users: {len({r.user_id for r in rows})} signed up with no event; {len({r.user_id for r in personal})}"
        f" who consented to profiling got their demographic neighbours' items ({in_taste(personal)} in their"
        f" planted favourite categories; popularity rows: {in_taste(popular)})"
    )


def print_audience(conn, preview: dict) -> None:
    """The audience campaign: what its preview said before the run, and what the run then did."""
    campaign = preview["campaign_id"]
    decided = dict(
        conn.execute(
            text(
                "SELECT decision, count(*) FROM push.notification_decisions WHERE candidate_key = :k"
                " GROUP BY 1 ORDER BY 1"
            ),
            {"k": f"campaign:{campaign}"},
        ).all()
    )
    print(
        f"  a campaign audience: {campaign} {json.dumps(preview['audience'])}: its preview counted"
        f" {preview['members']} members (e.g. {', '.join(preview['sample_user_keys'])}) and, alone, would decide"
        f" {preview['would_decide']}; beside every other candidate the notifications run decided {decided}"
    )


def demo_session(env, settings, day: date, log_dir) -> dict:
    """A shopper browses a category they never favoured in the first hour of ``day``; the hourly run folds it in."""
    from simulation.session import write_session

    url = settings.database_url
    tastes = read_tastes(settings.landing_dir)
    with make_engine(url).connect() as conn:
        # A returning shopper: one whose list the model ranked.
        modelled = conn.execute(
            text(
                "SELECT DISTINCT user_id FROM analytics.current_recommendations"
                " WHERE source NOT IN ('popular', 'segment_popular', 'demographic', 'new_item') ORDER BY 1"
            )
        )
        user = next(u for (u,) in modelled if u in tastes and not tastes[u]["is_bot"])
        before = _list_of(conn, user)
    start = datetime.combine(day, datetime.min.time(), UTC)
    session = write_session(
        settings.landing_dir, user, [item for item, _ in before], tastes[user]["favourite_categories"], start
    )
    hour = (start + timedelta(hours=1)).isoformat()
    run_dag(env, "hourly_events", hour, None, log_dir, "hourly_events-session")
    return {"session": session, "before": before}


def _list_of(conn, user: str) -> list[tuple[str, str]]:
    return [
        (row.item_id, row.category)
        for row in conn.execute(
            text("SELECT item_id, category FROM analytics.current_recommendations WHERE user_id = :u ORDER BY rank"),
            {"u": user},
        )
    ]


def print_session(conn, run: dict) -> None:
    session, before = run["session"], run["before"]
    after = _list_of(conn, session.user_id)

    def show(rows):
        return ", ".join(f"{item} ({category})" for item, category in rows[:5]) + ", ..."

    print(
        f"  a session within the hour: {session.user_id} viewed {len(session.browsed)} {session.category} items,"
        f" carted {session.carted} and bought {session.bought}; the next hourly run refreshed their list"
    )
    print(f"    before: {show(before)}")
    print(f"    after:  {show(after)}")


def answer_messages(env: dict, settings: Settings, config: GeneratorConfig, day: date, log_dir) -> None:
    """The shoppers answer what was delivered (``simulation/world.py``): their opens, clicks and
    purchases land in ``day`` and the day after, with their own sessions; an hourly run over
    each whole day collects them, so the report has outcomes and a lift to show."""
    world = World(config, ResponseConfig(oracle_share=0.0))  # every demo user is the product's
    world.answer(delivered_messages(make_engine(settings.database_url)))
    for n in range(2):
        answered = day + timedelta(days=n)
        world.write_day(settings.landing_dir, answered)
        end = f"{answered + timedelta(days=1)}T00:00:00+00:00"
        run_dag(env, "hourly_events", end, {"hours": 24}, log_dir, f"hourly_events-{answered}")


def print_loop(conn, settings: Settings, until: datetime) -> None:
    """Delivered messages, their clicks and conversions, and the lift over the control group."""
    totals = conn.execute(text(load_query("report/report_notification_totals")), {"until": None}).mappings().one()
    delivered = totals["delivered"]
    ctr = totals["clicks"] / delivered if delivered else 0.0
    cvr = totals["conversions"] / delivered if delivered else 0.0
    lift = totals["absolute_lift"]
    lift_text = (
        "no lift yet (no control-group outcome)"
        if lift is None
        else f"conversion lift over the control group {100 * lift:+.1f} pp"
        f" [{100 * totals['absolute_lift_ci_low']:+.1f}, {100 * totals['absolute_lift_ci_high']:+.1f}]"
        f" ({totals['treatment_users']} treated, {totals['control_users']} control user-runs)"
    )
    report = write_report(settings, settings.reports_dir / "evaluation.html", until=until)
    print(f"  the loop: shoppers answered {delivered} delivered messages: CTR {ctr:.1%}, CVR {cvr:.1%}; {lift_text}")
    for result in variant_tests(*load_variant_frames(make_engine(settings.database_url))):
        if result.verdict != REFERENCE:
            print(
                f"  A/B test {result.campaign_id}: variant {result.variant} CTR {result.ctr or 0:.1%}, CVR"
                f" {result.cvr or 0:.1%} over {result.delivered} messages; p = {result.p_value:.2f}"
                f" (of CTR {result.ctr_p_value:.2f}): {result.verdict}"
            )
    print(f"  evaluation report: {report}")


# Items added to the catalogue on the last day, with no event yet; users who signed up that day.
NEW_ARRIVALS = 8
NEW_USERS = 20


def print_new_arrivals(conn, landing) -> None:
    """Where the catalogue's new arrivals (no event yet) went on their first day, against the planted tastes."""
    arrivals = read_new_items(landing)
    tastes = read_tastes(landing)
    rows = conn.execute(
        text("SELECT user_id, item_id, reason FROM analytics.current_recommendations WHERE source = 'new_item'")
    ).all()
    rows = [r for r in rows if r.item_id in arrivals and r.user_id in tastes]
    matched = sum(arrivals[r.item_id]["category"] in tastes[r.user_id]["favourite_categories"] for r in rows)
    share = f"{matched / len(rows):.0%}" if rows else "-"
    print(
        f"  new arrivals: {len({r.item_id for r in rows})} of {len(arrivals)} items with no event yet reached"
        f" {len(rows)} users on their first day; {share} of them have the item's category among their two"
        " planted favourites (at random: 25%)"
    )
    if rows:
        print(f"  e.g. {rows[0].user_id} <- {rows[0].item_id}: {rows[0].reason}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scale_arguments(parser)
    parser.add_argument(
        "--date",
        type=date.fromisoformat,
        default=date(2026, 11, 25),
        help="logical date of the runs; data is generated for the days before it",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()

    print("1/4 database")
    url = ensure_database()
    settings = Settings.from_env()
    print(f"  {url}")
    print("2/4 synthetic data")
    config = GeneratorConfig(
        users=args.users,
        items=args.items,
        days=args.days,
        seed=args.seed,
        end_date=args.date - timedelta(days=1),
        new_items=NEW_ARRIVALS,
        new_users=NEW_USERS,
        campaign_variants=True,
    )
    summary = generate(config, settings.landing_dir)
    print(
        f"  {summary['event_lines']} event lines for {summary['users']} users, {summary['items']} items -> {settings.landing_dir}"
    )
    print("3/4 Airflow runs the DAGs")
    env = airflow_environment(settings)
    migrate_metadata(env)
    logical = f"{args.date.isoformat()}T00:00:00+00:00"
    log_dir = settings.local_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    run_dag(env, "daily_recommendations", logical, {"clean_days": args.days}, log_dir)
    # The hourly run of the same logical time detects triggers (abandoned carts, browse bursts)
    # and collects feedback; the notifications run then plans the next 24 hours and delivers them.
    run_dag(env, "hourly_events", logical, None, log_dir)
    # Before the campaign goes out, a dry run previews its audience (nothing is recorded).
    campaign = AUDIENCE_CAMPAIGN["campaign_id"]
    preview = preview_audience(settings, campaign, datetime.fromisoformat(logical), horizon_hours=24, sample=3)
    run_dag(env, "notifications", logical, {"horizon_hours": 24, "relay_ahead_hours": 24}, log_dir)

    session = demo_session(env, settings, args.date, log_dir)
    answer_messages(env, settings, config, args.date, log_dir)

    print("4/4 results")
    with make_engine(url).connect() as conn:
        users, recs, sent, outbox = conn.execute(
            text(
                "SELECT (SELECT count(DISTINCT user_id) FROM analytics.current_recommendations),"
                " (SELECT count(*) FROM analytics.current_recommendations),"
                " (SELECT count(*) FROM push.notification_ledger WHERE status = 'sent'),"
                " (SELECT count(*) FROM push.notification_ledger)"
            )
        ).one()
        print(
            f"  {recs} recommendations for {users} users; {sent} of {outbox} outbox messages delivered to "
            f"{settings.outbox_dir}"
        )
        print_new_arrivals(conn, settings.landing_dir)
        print_new_users(conn, settings.landing_dir)
        print_session(conn, session)
        print_audience(conn, preview)
        print_loop(conn, settings, datetime.combine(args.date + timedelta(days=2), datetime.min.time(), UTC))
        for title, sql in EXAMPLE_QUERIES.items():
            print_query(conn, title, sql)
    print(f"\nDone in {time.monotonic() - started:.0f} s. The database is still running:")
    print("  make psql                      # interactive psql")
    print('  make psql Q="SELECT count(*) FROM analytics.current_recommendations"')
    print("  make airflow                   # the Airflow UI on http://127.0.0.1:8080")
    print("  make down                      # stop the database")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
