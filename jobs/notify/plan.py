"""Decide which candidate messages go out, and fill the outbox, in sets.

One planning run (a logical time, a horizon, optionally one campaign) splits the users into
contiguous id ranges, one per worker (``PUSH_NOTIFY_WORKERS``; a user's decisions depend only
on that user's own rows, so the split changes no decision). Each worker, on its own database
session, collects its users' candidates into a temp table, fixes each user's send moment, then
decides batch after batch of users. Each batch is one transaction of two statements: the first
locks the users' rows in ``push.notify_user_state`` (in user order, so racing planners cannot
deadlock and cannot both pass a cap); the second (``sql/queries/notify/notification_policy.sql``)
applies the whole policy and, through data-modifying CTEs, writes every decision and every
accepted outbox row. Consent is read inside that transaction, so an opt-out committed before it
is honoured; one committed later is caught by the relay.

A run's decisions are immutable once recorded: re-running the same run (a retry, a cleared
task, a doubled start) decides only for users it has not decided yet, so result tables stay
identical and nothing is queued twice. ``dry_run`` decides everything and rolls it back.

CLI: ``python -m jobs.notify.plan --at 2026-11-25T00:00:00Z [--horizon-hours 24] [--dry-run]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Connection, text

from jobs.core.config import Settings
from jobs.core.db import load_query, make_engine
from jobs.core.timeutil import as_utc, parse_utc
from jobs.notify import allocation, policy, uplift
from jobs.notify.render import template_exists

log = logging.getLogger(__name__)

_TEMP_TABLES = load_query("notify/plan_temp_tables")

# Per sort or hash of the planning statements: batch-sized inputs then stay in memory instead of
# spilling to temporary files (the server default, 4MB, is a few thousand candidates).
_WORK_MEM = "64MB"

# Locks the batch's state rows in user order (racing planners queue behind each other instead of
# deadlocking). Only a count goes back to the client.
_LOCK_BATCH = load_query("notify/plan_lock_batch")


def run_key_for(at: datetime, horizon_hours: int = 1, campaign_id: str | None = None, prefix: str = "notify") -> str:
    """The run's identity: the same logical time, horizon and campaign give the same key."""
    key = f"{prefix}-{at:%Y%m%dT%H%M}-h{horizon_hours}"
    return f"{key}-{campaign_id}" if campaign_id else key


def collect_candidates(
    conn: Connection,
    settings: Settings,
    at: datetime,
    horizon_hours: int,
    campaign_id: str | None,
    kinds: tuple[str, ...],
    users: list[str] | None,
    shard: tuple[str | None, str | None] = (None, None),
) -> int:
    """Fill ``plan_candidates`` for this run's users in ``shard`` (ids in [low, high), None: open)."""
    unknown = set(kinds) - set(policy.CANDIDATE_KINDS)
    if unknown:
        raise ValueError(f"unknown candidate kinds {sorted(unknown)}; known: {policy.CANDIDATE_KINDS}")
    result = conn.execute(
        text(load_query("notify/notification_candidates")),
        {
            "at": at,
            "horizon_end": at + timedelta(hours=horizon_hours),
            "campaign_id": campaign_id,
            "kinds": list(kinds),
            "users": users,
            "shard_low": shard[0],
            "shard_high": shard[1],
            "expiry": timedelta(hours=settings.message_expiry_hours),
            "default_rate": policy.DEFAULT_RATE,
            **policy.arm_params(settings),
            **policy.explore_params(settings),
        },
    )
    # Unique: a candidate is decided once per run (the detectors key triggers per user, item and window).
    conn.execute(text("CREATE UNIQUE INDEX ON plan_candidates (user_id, candidate_key)"))
    conn.execute(text("ANALYZE plan_candidates"))
    return result.rowcount


def _decide_batch(conn: Connection, params: dict, run_key: str, at: datetime, batch: tuple) -> Counter[str]:
    """Lock, decide and record one batch (users numbered [low, high), ids first..last); count by decision.

    Two statements: the lock, then ``notification_policy.sql``, which decides and writes the
    decisions and the outbox rows. The second starts after the locks are held, so its snapshot
    sees whatever a racing planner committed for these users (their messages, or their decisions
    when the twin was this same run).
    """
    low, high, first_user, last_user = batch
    # JIT compilation of these large statements costs more than it saves (seconds per batch).
    conn.execute(text("SET LOCAL jit = off"))
    conn.execute(text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
    conn.execute(text(_LOCK_BATCH), {"low": low, "high": high})
    # The policy statement's CTEs are estimated poorly (a few rows where there are thousands):
    # a nested loop over a rescanned aggregate then costs quadratic time, and a merge join on
    # a prefix of the sort order rescans each user's rows once per candidate. Every input of the
    # statement is bounded by the batch's user range, so hash joins are always right.
    conn.execute(text("SET LOCAL enable_nestloop = off"))
    conn.execute(text("SET LOCAL enable_mergejoin = off"))
    bounds = {**params, "low": low, "high": high, "first_user": first_user, "last_user": last_user}
    rows = conn.execute(text(load_query("notify/notification_policy")), {**bounds, "run_key": run_key, "at": at}).all()
    return Counter(dict(rows))


def _batches(conn: Connection, batch_size: int) -> list[tuple]:
    """The run's batches: ranges of user numbers with their first and last user id."""
    return [
        tuple(row)
        for row in conn.execute(
            text(
                "SELECT min(n), max(n) + 1, min(user_id), max(user_id) FROM plan_users"
                " GROUP BY (n - 1) / :size ORDER BY 1"
            ),
            {"size": batch_size},
        )
    ]


def _shards(engine, users: list[str] | None, workers: int, batch_size: int) -> list[tuple[str | None, str | None]]:
    """Contiguous user id ranges ``[low, high)`` of about equal size, one per worker (None: open end).

    No more ranges than batches: a run of a few users (the stream's) stays on one session.
    """
    if workers <= 1 or users is not None:
        return [(None, None)]
    with engine.connect() as conn:
        population = conn.execute(text("SELECT count(*) FROM push.users")).scalar_one()
        parts = max(1, min(workers, math.ceil(population / batch_size)))
        if parts == 1:
            return [(None, None)]
        starts = (
            conn.execute(
                text(
                    "SELECT min(user_id) FROM (SELECT user_id, ntile(:parts) OVER (ORDER BY user_id) AS part"
                    " FROM push.users) AS numbered GROUP BY part ORDER BY 1"
                ),
                {"parts": parts},
            )
            .scalars()
            .all()
        )
    return list(zip([None, *starts[1:]], [*starts[1:], None], strict=True))


def plan_notifications(
    settings: Settings,
    at: datetime,
    horizon_hours: int = 1,
    campaign_id: str | None = None,
    kinds: tuple[str, ...] = policy.CANDIDATE_KINDS,
    users: list[str] | None = None,
    dry_run: bool = False,
    batch_size: int = 10_000,
    run_key: str | None = None,
    workers: int | None = None,
) -> dict:
    """Decide every candidate whose send moment falls in ``[at, at + horizon_hours)``.

    Args:
        settings: pipeline settings (policy knobs, database).
        at: the run's logical time (UTC); decisions are stamped with it, never with the clock.
        horizon_hours: how far ahead this run plans send moments (1 for the hourly run, 24 when
            new recommendations are published).
        campaign_id: plan only this campaign's candidates.
        kinds: candidate sources to consider (recommendation, campaign, trigger).
        users: restrict to these users (the stream path), else everyone with candidates.
        dry_run: decide and count, then roll back: nothing is recorded or queued.
        batch_size: users per transaction (the unit of locking and of atomicity).
        run_key: override the run's identity (default from ``at``, horizon and campaign).
        workers: sessions deciding disjoint user ranges side by side (default
            ``settings.notify_workers``).

    Returns:
        ``{"run_key", "users", "decisions": {reason: count}, "dry_run"}``; for a recorded run
        the counts are the run's totals, so a re-run reports the same figures.
    """
    if horizon_hours < 1:
        raise ValueError("horizon_hours must be at least 1")
    run_key = run_key or run_key_for(at, horizon_hours, campaign_id)
    engine = make_engine(settings.database_url)
    day = as_utc(at).date()  # the UTC day whose variant shares and uplift estimate the run uses
    if "campaign" in kinds:
        check_variant_templates(engine)
        allocation.ensure_allocations(engine, settings, day)
    # The day's uplift estimate is stored before its first run decides (also by a dry run: it
    # is a fact about the outcomes known that day, not a decision).
    uplift.ensure_estimates(engine, settings, day)
    shards = _shards(engine, users, settings.notify_workers if workers is None else workers, batch_size)
    run = _PlanRun(settings, run_key, at, horizon_hours, campaign_id, kinds, users, dry_run, batch_size)
    plan_shard = partial(_plan_shard, engine, run)
    if len(shards) == 1:
        results = [plan_shard(shards[0])]
    else:
        # Threads suffice: the work runs in the database, one backend per session. Leaving the
        # pool waits for every worker, so a failure surfaces only after the others finished
        # their batches (each committed batch stands; a re-run decides the rest).
        with ThreadPoolExecutor(len(shards), thread_name_prefix="notify-plan") as pool:
            futures = [pool.submit(plan_shard, shard) for shard in shards]
        results = [future.result() for future in futures]
    counts: Counter[str] = sum((shard_counts for _, shard_counts in results), Counter())
    users_decided = sum(pending for pending, _ in results)
    if not dry_run:
        with engine.begin() as conn:
            counts, users_decided = _record_run(conn, run_key, at, horizon_hours, campaign_id)
    summary = {
        "run_key": run_key,
        "users": users_decided,
        "decisions": dict(sorted(counts.items())),
        "dry_run": dry_run,
    }
    log.info("notification plan (%d worker(s)): %s", len(shards), summary)
    return summary


def check_variant_templates(engine) -> None:
    """Refuse to plan when a campaign variant names a template that does not exist.

    Such a variant would go out in the usual wording under its own name, and its A/B test would
    compare a message with itself.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT campaign_id, variant, template FROM push.campaign_variants WHERE template IS NOT NULL")
        ).all()
    unknown = [
        f"{row.campaign_id}/{row.variant}: {row.template!r}" for row in rows if not template_exists(row.template)
    ]
    if unknown:
        raise ValueError(f"campaign variants name templates that do not exist: {', '.join(unknown)}")


@dataclass(frozen=True)
class _PlanRun:
    """What every worker of one planning run shares (see :func:`plan_notifications`)."""

    settings: Settings
    run_key: str
    at: datetime
    horizon_hours: int
    campaign_id: str | None
    kinds: tuple[str, ...]
    users: list[str] | None
    dry_run: bool
    batch_size: int


def _plan_shard(engine, run: _PlanRun, shard: tuple[str | None, str | None]) -> tuple[int, Counter[str]]:
    """Collect, schedule and decide the users of one id range; return (users pending, decisions)."""
    params = policy.policy_params(run.settings)
    counts: Counter[str] = Counter()
    started = time.monotonic()
    with engine.connect() as conn:
        with conn.begin():
            conn.execute(text("SET LOCAL jit = off"))
            conn.execute(text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
            conn.execute(text(_TEMP_TABLES))
            candidates = collect_candidates(
                conn, run.settings, run.at, run.horizon_hours, run.campaign_id, run.kinds, run.users, shard
            )
            collected = time.monotonic()
            conn.execute(
                text(load_query("notify/notification_moments")), {**params, "run_key": run.run_key, "at": run.at}
            )
            conn.execute(text("CREATE UNIQUE INDEX ON plan_users (n)"))
            conn.execute(text("ANALYZE plan_users"))
            batches = _batches(conn, run.batch_size)
            pending_users = sum(high - low for low, high, _, _ in batches)
        scheduled = time.monotonic()
        if pending_users and not run.dry_run:
            # State rows must exist before they can be locked; inserted in user order and
            # committed on their own so that racing planners never deadlock on them.
            with conn.begin():
                conn.execute(
                    text(
                        "INSERT INTO push.notify_user_state (user_id) SELECT user_id FROM plan_users"
                        " ORDER BY user_id ON CONFLICT (user_id) DO NOTHING"
                    )
                )
        for batch in batches:
            transaction = conn.begin()
            try:
                counts.update(_decide_batch(conn, params, run.run_key, run.at, batch))
            except BaseException:
                transaction.rollback()
                raise
            if run.dry_run:
                transaction.rollback()
            else:
                transaction.commit()
        conn.execute(text("DROP TABLE IF EXISTS plan_candidates, plan_users"))
        conn.commit()
    finished = time.monotonic()
    # Where a shard's time goes, for operators reading the task log (and the benchmark).
    log.info(
        "users %s to %s: %d candidates collected in %.2f s, %d users scheduled in %.2f s, %d batches decided in %.2f s",
        shard[0] or "the first",
        f"before {shard[1]}" if shard[1] else "the last",
        candidates,
        collected - started,
        pending_users,
        scheduled - collected,
        len(batches),
        finished - scheduled,
    )
    return pending_users, counts


def _record_run(
    conn: Connection, run_key: str, at: datetime, horizon_hours: int, campaign_id: str | None
) -> tuple[Counter[str], int]:
    """Store the run's totals (all its decisions, whichever attempt made them)."""
    # Two hash aggregates (per decision; per user, then counted) cost less than one
    # count(DISTINCT user_id), which sorts every decision of the run.
    counts_json, users = conn.execute(
        text(
            "SELECT (SELECT coalesce(json_object_agg(decision, n), '{}') FROM (SELECT decision, count(*) AS n"
            "        FROM push.notification_decisions WHERE run_key = :run_key GROUP BY decision) AS d),"
            "       (SELECT count(*) FROM (SELECT user_id"
            "        FROM push.notification_decisions WHERE run_key = :run_key GROUP BY user_id) AS u)"
        ),
        {"run_key": run_key},
    ).one()
    counts = Counter(counts_json)
    conn.execute(
        text(
            "INSERT INTO push.notification_runs (run_key, logical_time, horizon_hours, campaign_id, users, decisions)"
            " VALUES (:run_key, :at, :horizon, :campaign, :users, CAST(:decisions AS jsonb))"
            " ON CONFLICT (run_key) DO UPDATE SET users = EXCLUDED.users, decisions = EXCLUDED.decisions"
        ),
        {
            "run_key": run_key,
            "at": at,
            "horizon": horizon_hours,
            "campaign": campaign_id,
            "users": users,
            "decisions": json.dumps(dict(sorted(counts.items()))),
        },
    )
    return counts, users


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--at", type=parse_utc, required=True, help="logical decision time (UTC)")
    parser.add_argument("--horizon-hours", type=int, default=1, help="plan send moments in [at, at + horizon)")
    parser.add_argument("--campaign", default=None, help="plan only this campaign")
    parser.add_argument("--dry-run", action="store_true", help="decide and count, record nothing")
    args = parser.parse_args(argv)
    summary = plan_notifications(
        Settings.from_env(), args.at, args.horizon_hours, campaign_id=args.campaign, dry_run=args.dry_run
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
