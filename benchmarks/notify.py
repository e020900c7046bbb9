"""Benchmark: decisions per second of the notification policy engine, next to two yardsticks.

Builds a data set directly with COPY (users over five time zones with consents and addresses,
items, a published recommendation set, profiles with preferred hours, category campaigns,
cart-abandonment triggers, and an outbox already holding earlier messages so that the caps
bind), then times ``jobs.notify.plan.plan_notifications`` over a 24 h horizon with every rule
on (control group, quiet hours, min gap, daily, weekly, channel and campaign caps, fatigue).

Measured in the same run, on the same data:

* the engine, with ``batch_size`` 10000 (its default) and its default worker sessions, again
  with 20000 and again on one session, each after restoring the outbox (the same decisions are
  expected: a stability check), and on the next logical date on top of the last run's outbox;
* the naive per-row loop the engine replaces: one candidate at a time, one transaction per
  candidate (read consent and addresses, holdout by hashlib, idempotency-key lookup, 24 h count,
  insert the outbox row, insert the decision) into scratch tables shaped like the real ones, in
  schema ``bench_scratch`` (created, then dropped). It drives the DB-API cursor directly (no
  SQLAlchemy per statement): the yardstick is as fast as such a loop gets, so it does not
  flatter the ratio;
* one set-based ``INSERT ... SELECT`` over the collected candidates with only a rolling 24 h
  cap, into a temp table, as an upper bound.

Every figure is printed as it is measured (``label value unit``); the last line is one JSON
object with all of them, the scale and the machine's CPU count. Targets are printed next to
the measured values; a miss never changes the exit status.

Without ``--database-url`` the benchmark uses its own embedded cluster under ``.local/bench``
(the one ``benchmarks.daily_dag`` uses), with PostgreSQL's default durability (fsync and synchronous
commits on), as in production: the naive loop pays one durable commit per candidate, as it
would there. With it, it runs against that database. Either way it EMPTIES
every ``push.*`` table first: point it only at a sandbox.

``python -m benchmarks.notify --users 100000 --candidates-per-user 5 --naive-sample 3000``
(``make bench-notify USERS=...``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import text

from benchmarks.figures import Report, record
from devenv.localdb import start_sandbox
from jobs.core.config import Settings, resolve_database_url, to_sqlalchemy_url

# Targets the figures are reported against (never asserted).
TARGET_DECISIONS_PER_SECOND = 50_000
TARGET_RATIO_VS_NAIVE = 25.0

AT = datetime(2026, 11, 25, 0, tzinfo=UTC)
HORIZON_HOURS = 24
MODEL_RUN = "bench-notify-run"
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Tokyo")
TIMEZONE_SHARES = (0.15, 0.25, 0.30, 0.15, 0.15)
CATEGORIES = (
    "electronics",
    "shoes",
    "beauty",
    "books",
    "home",
    "toys",
    "sports",
    "grocery",
    "garden",
    "jewelry",
)
BRANDS = tuple(f"brand{n:02d}" for n in range(25))
# Category campaigns: (id, target category, priority, channels). Their categories are the first
# three; recommendations outside a user's campaign matches come from the others.
CAMPAIGNS = (
    ("winter-sale", "electronics", 5, ("push", "email")),
    ("shoe-week", "shoes", 3, ("push",)),
    ("beauty-mail", "beauty", 1, ("email",)),
)
RECS_PER_USER = 3
TRIGGER_USER_SHARE = 0.20
TRIGGERS_PER_TRIGGER_USER = (1, 2)  # equally likely
# Local preferred hour: mostly daytime and evening, some night (quiet hours then defer them).
HOUR_WEIGHTS = np.array([1, 1, 1, 1, 1, 1, 2, 4, 5, 5, 4, 4, 5, 5, 4, 4, 5, 6, 7, 7, 6, 5, 3, 2], dtype=float)
# Outbox history, as shares of users.
HISTORY_YESTERDAY_SHARE = 0.30  # one message 20 h before the run
HISTORY_BUSY_WEEK_SHARE = 0.25  # of those: four more on days 2-5 before (weekly cap)
HISTORY_CAMPAIGN_SHARE = 0.10  # a winter-sale message 3 days before (campaign cap)
HISTORY_DUPLICATE_SHARE = 0.02  # this run's best recommendation already queued (duplicate)
FATIGUED_SHARE = 0.05
# Where the naive loop writes (created and dropped by the benchmark).
SCRATCH_SCHEMA = "bench_scratch"
NAIVE_LEDGER = f"{SCRATCH_SCHEMA}.bench_naive_ledger"
NAIVE_DECISIONS = f"{SCRATCH_SCHEMA}.bench_naive_decisions"
_TRIGGER_MEAN = TRIGGER_USER_SHARE * sum(TRIGGERS_PER_TRIGGER_USER) / len(TRIGGERS_PER_TRIGGER_USER)


def bench_settings(base: Settings) -> Settings:
    """Realistic policy settings with every rule on (independent of the environment)."""
    return replace(
        base,
        holdout_percent=5.0,
        quiet_hours_start="22:00",
        quiet_hours_end="08:00",
        daily_cap=1,
        weekly_cap=5,
        min_gap_minutes=60,
        channel_daily_caps={"push": 3, "email": 1, "sms": 1, "webhook": 3},
        campaign_cap=1,
        campaign_cap_days=7,
        fatigue_daily_cap=1,
        fatigue_weekly_cap=1,
        transactional_counts=False,
        message_expiry_hours=24,
    )


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


# --- data ---------------------------------------------------------------------------------------


def build_data(engine, args, at: datetime) -> dict[str, int]:
    """COPY the benchmark's data set; return row counts by table."""
    from jobs.core.db import copy_rows

    rng = np.random.default_rng(args.seed)
    n_users = args.users
    users = [f"u{n:07d}" for n in range(n_users)]

    # Items: categories round-robin, a few out of stock (never recommended).
    n_items = args.items
    item_ids = [f"i{n:05d}" for n in range(n_items)]
    item_cat = np.arange(n_items) % len(CATEGORIES)
    item_brand = rng.integers(0, len(BRANDS), n_items)
    item_price = np.round(rng.lognormal(3.5, 0.7, n_items), 2)
    in_stock = (rng.random(n_items) >= 0.02) | (np.arange(n_items) < 2 * len(CATEGORIES))
    by_category = [np.flatnonzero((item_cat == c) & in_stock) for c in range(len(CATEGORIES))]
    other_items = np.flatnonzero((item_cat >= len(CAMPAIGNS)) & in_stock)

    # Users: time zone, locale, addresses, consents.
    tz = rng.choice(len(TIMEZONES), n_users, p=TIMEZONE_SHARES)
    has_email, has_phone, has_token = (rng.random(n_users) < p for p in (0.95, 0.70, 0.90))
    c_push, c_email, c_sms = (rng.random(n_users) < p for p in (0.85, 0.60, 0.20))
    has_hook = rng.random(n_users) < 0.02
    zh = (tz == TIMEZONES.index("Asia/Shanghai")) & (rng.random(n_users) < 0.8)
    preferred_hour = rng.choice(24, n_users, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())

    # Campaign matches per user (0..2): the first ranks come from the matched campaigns'
    # categories, which are also the user's top two categories; the rest from other categories.
    campaign_mean = float(np.clip(args.candidates_per_user - RECS_PER_USER - _TRIGGER_MEAN, 0.0, 2.0))
    matches = rng.binomial(2, campaign_mean / 2.0, n_users)

    rec_rows, profile_rows = [], []
    for u in range(n_users):
        matched = rng.choice(len(CAMPAIGNS), matches[u], replace=False) if matches[u] else []
        chosen: list[int] = [int(rng.choice(by_category[CATEGORIES.index(CAMPAIGNS[c][1])])) for c in matched]
        while len(chosen) < RECS_PER_USER:
            item = int(rng.choice(other_items))
            if item not in chosen:
                chosen.append(item)
        uid = users[u]
        categories: list[str] = []
        for rank, item in enumerate(chosen, start=1):
            rec_rows.append((MODEL_RUN, uid, rank, item_ids[item], round(1.0 / rank, 4), "svd", "because you viewed"))
            if CATEGORIES[item_cat[item]] not in categories:
                categories.append(CATEGORIES[item_cat[item]])
        brands = sorted({BRANDS[item_brand[i]] for i in chosen})
        profile_rows.append(
            (
                at.date(),
                uid,
                categories,
                brands,
                "{}",
                0.5,
                float(rng.integers(0, 14)),
                int(rng.integers(1, 60)),
                round(float(rng.gamma(2.0, 40.0)), 2),
                int(rng.integers(1, 28)),
                int(preferred_hour[u]),
                int(rng.integers(0, 7)),
                int(rng.integers(0, 4)),
            )
        )

    # Triggers: cart abandonment for a share of users, firing over the horizon.
    trigger_users = np.flatnonzero(rng.random(n_users) < TRIGGER_USER_SHARE)
    trigger_rows = []
    for u in trigger_users:
        for k in range(int(rng.choice(TRIGGERS_PER_TRIGGER_USER))):
            item = item_ids[int(rng.choice(other_items))]
            fire = at + timedelta(minutes=int(rng.integers(-120, 22 * 60)))
            key = f"cart:{users[u]}:{item}:{k}"
            trigger_rows.append(
                (
                    key,
                    users[u],
                    "cart_abandonment",
                    item,
                    fire - timedelta(minutes=30),
                    fire,
                    fire + timedelta(hours=24),
                )
            )

    # Outbox history, so that the caps bind.
    def first_channel(u: int) -> str:
        if c_push[u] and has_token[u]:
            return "push"
        if c_email[u] and has_email[u]:
            return "email"
        return "sms" if c_sms[u] and has_phone[u] else "push"

    history = []
    yesterday = np.flatnonzero(rng.random(n_users) < HISTORY_YESTERDAY_SHARE)
    busy = yesterday[rng.random(len(yesterday)) < HISTORY_BUSY_WEEK_SHARE]
    campaign_users = np.flatnonzero(rng.random(n_users) < HISTORY_CAMPAIGN_SHARE)
    for u in yesterday:
        history.append((u, at - timedelta(hours=20), None))
    for u in busy:
        history += [(u, at - timedelta(days=d, hours=3), None) for d in (2, 3, 4, 5)]
    for u in campaign_users:
        history.append((u, at - timedelta(days=3, hours=1), CAMPAIGNS[0][0]))
    ledger_rows = [
        (
            f"bench-history-{n}",
            "bench-history",
            users[u],
            first_channel(u),
            "campaign" if campaign else "recommendation",
            item_ids[int(rng.choice(other_items))],
            when,
            False,
            "{}",
            "sent",
            1,
            when,
            campaign,
            when + timedelta(hours=24),
        )
        for n, (u, when, campaign) in enumerate(history)
    ]
    fatigued = [(users[u], True) for u in np.flatnonzero(rng.random(n_users) < FATIGUED_SHARE)]

    with engine.begin() as conn:
        copy_rows(
            conn,
            "push.users",
            [
                "user_id",
                "email",
                "phone",
                "push_token",
                "webhook_url",
                "timezone",
                "locale",
                "signup_date",
                "consent_email",
                "consent_sms",
                "consent_push",
                "consent_webhook",
            ],
            (
                (
                    users[u],
                    f"{users[u]}@example.com" if has_email[u] else None,
                    f"+1555{u:07d}" if has_phone[u] else None,
                    f"tok-{users[u]}" if has_token[u] else None,
                    f"https://hooks.example.com/{users[u]}" if has_hook[u] else None,
                    TIMEZONES[tz[u]],
                    "zh-CN" if zh[u] else "en",
                    at.date() - timedelta(days=int(u % 700)),
                    bool(c_email[u]),
                    bool(c_sms[u]),
                    bool(c_push[u]),
                    bool(has_hook[u]),
                )
                for u in range(n_users)
            ),
        )
        copy_rows(
            conn,
            "push.items",
            ["item_id", "title", "category", "brand", "price", "in_stock"],
            (
                (item_ids[i], f"Item {i}", CATEGORIES[item_cat[i]], BRANDS[item_brand[i]], item_price[i], in_stock[i])
                for i in range(n_items)
            ),
        )
        conn.execute(
            text(
                "INSERT INTO push.model_runs (run_id, as_of, algorithm, params, train_start, train_end, metrics,"
                " baseline_metrics, artifact_path, promoted, decision) VALUES (:run, :as_of, 'svd', '{}',"
                " :start, :at, '{}', '{}', '/dev/null', true, 'promoted')"
            ),
            {"run": MODEL_RUN, "as_of": at.date(), "start": at - timedelta(days=28), "at": at},
        )
        copy_rows(
            conn,
            "push.recommendations",
            ["run_id", "user_id", "rank", "item_id", "score", "source", "reason"],
            rec_rows,
        )
        conn.execute(
            text("INSERT INTO push.published_recommendations (singleton, run_id, published_for) VALUES (true, :r, :d)"),
            {"r": MODEL_RUN, "d": at.date()},
        )
        copy_rows(
            conn,
            "push.user_profiles",
            [
                "as_of",
                "user_id",
                "top_categories",
                "top_brands",
                "category_affinity",
                "price_level",
                "recency_days",
                "frequency",
                "monetary",
                "active_days",
                "preferred_hour",
                "preferred_weekday",
                "segment",
            ],
            profile_rows,
        )
        copy_rows(
            conn,
            "push.campaigns",
            [
                "campaign_id",
                "name",
                "target_category",
                "discount_text",
                "valid_from",
                "valid_to",
                "priority",
                "channels",
                "transactional",
            ],
            [
                (
                    cid,
                    cid.replace("-", " "),
                    cat,
                    "-20%",
                    at - timedelta(days=5),
                    at + timedelta(days=7),
                    prio,
                    ch,
                    False,
                )
                for cid, cat, prio, ch in CAMPAIGNS
            ],
        )
        copy_rows(
            conn,
            "push.triggers",
            ["trigger_key", "user_id", "trigger_type", "item_id", "detected_at", "fire_at", "expires_at"],
            trigger_rows,
        )
        copy_rows(
            conn,
            "push.notification_ledger",
            [
                "idempotency_key",
                "run_key",
                "user_id",
                "channel",
                "source",
                "item_id",
                "scheduled_at",
                "transactional",
                "payload",
                "status",
                "attempts",
                "sent_at",
                "campaign_id",
                "expires_at",
            ],
            ledger_rows,
        )
        copy_rows(conn, "push.notify_user_state", ["user_id", "fatigued"], fatigued)
    return {
        "users": n_users,
        "items": n_items,
        "recommendations": len(rec_rows),
        "user_profiles": len(profile_rows),
        "campaigns": len(CAMPAIGNS),
        "triggers": len(trigger_rows),
        "ledger_history": len(ledger_rows),
        "fatigued_users": len(fatigued),
    }


def vacuum_analyze(engine) -> None:
    """Fresh statistics and no dead rows, as a production database would have."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'push'")).scalars().all()
        for table in tables:
            conn.execute(text(f"VACUUM ANALYZE push.{table}"))


# --- candidates, duplicates and the set-based upper bound ----------------------------------------


def collect_and_prepare(engine, settings: Settings, args, at: datetime, report: Report) -> list[dict]:
    """Run the candidate query once (timed); queue some of this run's messages as an earlier run
    would have (duplicates); time the set-based upper bound; return the naive loop's sample."""
    from jobs.notify import policy
    from jobs.notify.plan import _TEMP_TABLES, collect_candidates

    with engine.connect() as conn:
        with conn.begin():
            conn.execute(text(_TEMP_TABLES))
            started = time.monotonic()
            count = collect_candidates(conn, settings, at, HORIZON_HOURS, None, policy.CANDIDATE_KINDS, None)
            seconds = time.monotonic() - started
            users = conn.execute(text("SELECT count(DISTINCT user_id) FROM plan_candidates")).scalar_one()
            report("candidates", count, "candidates")
            report("candidate_users", users, "users")
            report("candidates_per_user", round(count / max(users, 1), 3), "candidates/user")
            report("candidate_query_seconds", round(seconds, 3), "s")
            report("candidate_query_rows_per_second", _rate(count, seconds), "candidates/s")
            sample = (
                conn.execute(
                    text(
                        "WITH u AS (SELECT user_id, md5(user_id || :seed) AS h FROM"
                        " (SELECT DISTINCT user_id FROM plan_candidates) AS d)"
                        " SELECT c.* FROM plan_candidates c JOIN u USING (user_id)"
                        " ORDER BY u.h, c.user_id, c.transactional DESC, c.expected_value DESC, c.candidate_key"
                        " LIMIT :n"
                    ),
                    {"seed": str(args.seed), "n": args.naive_sample},
                )
                .mappings()
                .all()
            )
            duplicates = conn.execute(
                text(
                    "INSERT INTO push.notification_ledger (idempotency_key, run_key, user_id, channel, source,"
                    " item_id, scheduled_at, transactional, payload, status, candidate_key, campaign_id,"
                    " expected_value, expires_at)"
                    " SELECT DISTINCT ON (user_id) idempotency_key,"
                    " 'bench-earlier', user_id, 'push', source, item_id, natural_at, transactional, '{}', 'pending',"
                    " candidate_key, campaign_id, expected_value, expires_at"
                    " FROM plan_candidates WHERE source = 'recommendation'"
                    " AND ('x' || substr(md5(user_id || :seed), 1, 8))::bit(32)::bigint % 10000 < :bp"
                    " ORDER BY user_id, candidate_key"
                ),
                {"seed": f"dup{args.seed}", "bp": round(HISTORY_DUPLICATE_SHARE * 10000)},
            ).rowcount
            report("ledger_queued_by_earlier_run", duplicates, "messages")
        with conn.begin():
            set_based(conn, settings, report)
        conn.execute(text("DROP TABLE IF EXISTS plan_candidates, plan_users, batch_users, batch_sched, plan_eval"))
        conn.commit()
    return [dict(row) for row in sample]


_SET_BASED = """
INSERT INTO bench_set_decisions (user_id, candidate_key, idempotency_key, decision)
WITH moment AS (
    SELECT user_id, min(natural_at) AS t FROM plan_candidates GROUP BY user_id
),
used AS (
    SELECT m.user_id, count(*) AS n
    FROM moment m
    JOIN push.notification_ledger l ON l.user_id = m.user_id
    WHERE l.status IN ('pending', 'sent') AND NOT l.transactional
      AND l.scheduled_at > m.t - interval '24 hours' AND l.scheduled_at <= m.t
    GROUP BY m.user_id
)
SELECT c.user_id, c.candidate_key, c.idempotency_key,
       CASE WHEN c.transactional OR coalesce(u.n, 0) + row_number() OVER (
                PARTITION BY c.user_id, c.transactional ORDER BY c.expected_value DESC, c.candidate_key) <= :cap
            THEN 'sent' ELSE 'capped_daily' END
FROM plan_candidates c
LEFT JOIN used u ON u.user_id = c.user_id
"""


def set_based(conn, settings: Settings, report: Report) -> None:
    """The upper bound: one INSERT ... SELECT over the collected candidates, 24 h cap only."""
    conn.execute(
        text(
            "CREATE TEMP TABLE bench_set_decisions (user_id text NOT NULL, candidate_key text NOT NULL,"
            " idempotency_key text NOT NULL, decision text NOT NULL, PRIMARY KEY (user_id, candidate_key))"
            " ON COMMIT DROP"
        )
    )
    started = time.monotonic()
    count = conn.execute(text(_SET_BASED), {"cap": settings.daily_cap}).rowcount
    seconds = time.monotonic() - started
    by_reason = dict(
        conn.execute(text("SELECT decision, count(*) FROM bench_set_decisions GROUP BY 1 ORDER BY 1")).all()
    )
    report("set_based_decisions", count, "decisions")
    report("set_based_seconds", round(seconds, 3), "s")
    report("set_based_decisions_per_second", _rate(count, seconds), "decisions/s")
    for reason, n in by_reason.items():
        report(f"set_based_reason_{reason}", n, "decisions")


# --- the naive per-row loop ----------------------------------------------------------------------


def holdout_bucket(user_id: str, salt: str) -> int:
    """``push.holdout_bucket`` in Python."""
    return int(hashlib.md5(f"{salt}:{user_id}".encode()).hexdigest()[:8], 16) % 10000


def idempotency_key(user_id: str, candidate_key: str, slot: str) -> str:
    """``push.idempotency_key`` in Python."""
    return hashlib.sha256(f"{user_id}|{candidate_key}|{slot}".encode()).hexdigest()[:32]


def naive_loop(engine, settings: Settings, sample: list[dict], at: datetime, report: Report) -> None:
    """One candidate at a time, one transaction per candidate, into scratch tables."""
    from jobs.notify import policy

    run_key = "bench-naive"
    holdout_bp = round(settings.holdout_percent * 100)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        # Regular tables shaped like the real ones (shared buffers, WAL, same indexes), in a
        # schema of their own; the outbox starts as a copy of the real one, so the same caps bind.
        cur.execute(
            f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE; CREATE SCHEMA {SCRATCH_SCHEMA};"
            f" CREATE TABLE {NAIVE_LEDGER} (LIKE push.notification_ledger INCLUDING ALL);"
            f" CREATE TABLE {NAIVE_DECISIONS} (LIKE push.notification_decisions INCLUDING ALL);"
            f" INSERT INTO {NAIVE_LEDGER} SELECT * FROM push.notification_ledger;"
            f" ANALYZE {NAIVE_LEDGER}"
        )
        raw.commit()
        counts: Counter[str] = Counter()
        statements = 0
        started = time.monotonic()
        for c in sample:
            user = c["user_id"]
            cur.execute(
                "SELECT locale, consent_push AND push_token IS NOT NULL, consent_email AND email IS NOT NULL,"
                " consent_sms AND phone IS NOT NULL, consent_webhook AND webhook_url IS NOT NULL"
                " FROM push.users WHERE user_id = %s",
                (user,),
            )
            row = cur.fetchone()
            statements += 1
            allowed = c["allowed_channels"]
            channel = next(
                (
                    ch
                    for ch, ok in zip(policy.CHANNEL_ORDER, row[1:], strict=True)
                    if ok and (allowed is None or ch in allowed)
                ),
                None,
            )
            key = c["idempotency_key"]
            decision = None
            if channel is None:
                decision = policy.SUPPRESSED_CONSENT
            elif not c["transactional"] and holdout_bucket(user, settings.holdout_salt) < holdout_bp:
                decision = policy.HOLDOUT
            else:
                cur.execute(f"SELECT 1 FROM {NAIVE_LEDGER} WHERE idempotency_key = %s", (key,))
                statements += 1
                if cur.fetchone() is not None:
                    decision = policy.DUPLICATE
                elif not c["transactional"]:
                    cur.execute(
                        f"SELECT count(*) FROM {NAIVE_LEDGER} WHERE user_id = %s AND status IN ('pending', 'sent')"
                        " AND NOT transactional AND scheduled_at > %s AND scheduled_at <= %s",
                        (user, c["natural_at"] - timedelta(hours=24), c["natural_at"]),
                    )
                    statements += 1
                    if cur.fetchone()[0] >= settings.daily_cap:
                        decision = policy.CAPPED_DAILY
                if decision is None:
                    cur.execute(
                        f"INSERT INTO {NAIVE_LEDGER} (idempotency_key, run_key, user_id, channel, source, item_id,"
                        " scheduled_at, transactional, payload, candidate_key, campaign_id, expected_value,"
                        " expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (idempotency_key) DO NOTHING",
                        (
                            key,
                            run_key,
                            user,
                            channel,
                            c["source"],
                            c["item_id"],
                            c["natural_at"],
                            c["transactional"],
                            json.dumps({"locale": row[0], "facts": {"kind": c["kind"], "reason": c["reason"]}}),
                            c["candidate_key"],
                            c["campaign_id"],
                            c["expected_value"],
                            c["expires_at"],
                        ),
                    )
                    statements += 1
                    decision = policy.SENT
            cur.execute(
                f"INSERT INTO {NAIVE_DECISIONS} (run_key, user_id, candidate_key, source, item_id, channel,"
                " expected_value, decision, idempotency_key, decided_at, campaign_id, transactional, scheduled_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (run_key, user_id, candidate_key) DO NOTHING",
                (
                    run_key,
                    user,
                    c["candidate_key"],
                    c["source"],
                    c["item_id"],
                    channel,
                    c["expected_value"],
                    decision,
                    key,
                    at,
                    c["campaign_id"],
                    c["transactional"],
                    c["natural_at"],
                ),
            )
            statements += 1
            raw.commit()
            counts[decision] += 1
        seconds = time.monotonic() - started
    finally:
        raw.rollback()
        raw.cursor().execute(f"DROP SCHEMA IF EXISTS {SCRATCH_SCHEMA} CASCADE")
        raw.commit()
        raw.close()
    report("naive_decisions", len(sample), "decisions")
    report("naive_seconds", round(seconds, 3), "s")
    report("naive_statements_per_decision", round(statements / max(len(sample), 1), 2), "statements")
    report("naive_decisions_per_second", _rate(len(sample), seconds), "decisions/s")
    for reason, n in sorted(counts.items()):
        report(f"naive_reason_{reason}", n, "decisions")


# --- the engine ---------------------------------------------------------------------------------


def engine_run(
    label: str, settings: Settings, at: datetime, batch_size: int, report: Report, workers: int | None = None
) -> dict:
    from jobs.notify.plan import plan_notifications

    started = time.monotonic()
    summary = plan_notifications(settings, at, horizon_hours=HORIZON_HOURS, batch_size=batch_size, workers=workers)
    seconds = time.monotonic() - started
    decisions = sum(summary["decisions"].values())
    report(f"{label}_seconds", round(seconds, 3), "s")
    report(f"{label}_users", summary["users"], "users")
    report(f"{label}_decisions", decisions, "decisions")
    report(f"{label}_decisions_per_second", _rate(decisions, seconds), "decisions/s")
    for reason, n in summary["decisions"].items():
        report(f"{label}_reason_{reason}", n, "decisions")
    return {
        "label": label,
        "at": at.isoformat(),
        "batch_size": batch_size,
        "workers": workers or settings.notify_workers,
        "run_key": summary["run_key"],
        "seconds": round(seconds, 3),
        "users": summary["users"],
        "decisions": decisions,
        "decisions_per_second": _rate(decisions, seconds),
        "by_reason": summary["decisions"],
    }


def forget_run(engine, run_key: str) -> None:
    """Restore the database to before a run: its outbox rows, decisions, run row and new state rows."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM push.notification_ledger WHERE run_key = :k"), {"k": run_key})
        conn.execute(text("DELETE FROM push.notification_decisions WHERE run_key = :k"), {"k": run_key})
        conn.execute(text("DELETE FROM push.notification_runs WHERE run_key = :k"), {"k": run_key})
        conn.execute(text("DELETE FROM push.notify_user_state WHERE NOT fatigued"))
    vacuum_analyze(engine)


# --- the whole benchmark ------------------------------------------------------------------------


def run_benchmark(url: str, args: argparse.Namespace) -> dict:
    """Empty the database at ``url``, build the data, measure; return the summary (also printed)."""
    from jobs.core.db import apply_migrations, make_engine, truncate_pipeline_tables

    if resolve_database_url() != url:
        raise RuntimeError("run_benchmark needs PUSH_DATABASE_URL set to the benchmark's database URL")
    engine = make_engine(url)
    apply_migrations(engine)
    truncate_pipeline_tables(engine)
    settings = bench_settings(Settings.from_env())
    report = Report()
    at = AT
    print(
        f"scale: {args.users} users, {args.items} items, ~{args.candidates_per_user} candidates/user requested,"
        f" naive sample {args.naive_sample} (seed {args.seed}); cpus {os.cpu_count()}",
        flush=True,
    )
    with engine.connect() as conn:
        report("server_version", conn.execute(text("SHOW server_version")).scalar_one(), "")
        report("server_jit", conn.execute(text("SHOW jit")).scalar_one(), "")
        # A commit's cost (the naive loop commits once per candidate) depends on these.
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            report(f"server_{setting}", conn.execute(text(f"SHOW {setting}")).scalar_one(), "")
    print("data", flush=True)
    started = time.monotonic()
    rows = build_data(engine, args, at)
    vacuum_analyze(engine)
    report("data_build_seconds", round(time.monotonic() - started, 3), "s")
    for table, n in rows.items():
        report(f"rows_{table}", n, "rows")

    print("candidates and the set-based upper bound (24 h cap only)", flush=True)
    sample = collect_and_prepare(engine, settings, args, at, report)
    vacuum_analyze(engine)

    print("naive per-row loop (one transaction per candidate)", flush=True)
    naive_loop(engine, settings, sample, at, report)

    print("engine: plan_notifications, every rule on", flush=True)
    runs = [engine_run(f"engine_b{args.batch_size}", settings, at, args.batch_size, report)]
    forget_run(engine, runs[0]["run_key"])
    runs.append(engine_run(f"engine_b{args.second_batch_size}", settings, at, args.second_batch_size, report))
    forget_run(engine, runs[1]["run_key"])
    # The same run on one session: what the split across worker sessions adds.
    runs.append(engine_run(f"engine_one_session_b{args.batch_size}", settings, at, args.batch_size, report, 1))
    same = all(run["by_reason"] == runs[0]["by_reason"] for run in runs[1:])
    report("engine_reruns_same_decisions", str(same).lower(), "(bool)")
    runs.append(
        engine_run(f"engine_next_day_b{args.batch_size}", settings, at + timedelta(days=1), args.batch_size, report)
    )

    primary = runs[0]
    naive_rate = report.figures["naive_decisions_per_second"]
    set_rate = report.figures["set_based_decisions_per_second"]
    print("ratios and targets", flush=True)
    vs_naive = report("engine_vs_naive", round(primary["decisions_per_second"] / naive_rate, 2), "x")
    report("engine_vs_set_based_upper_bound", round(primary["decisions_per_second"] / set_rate, 3), "x")
    report(
        "engine_vs_one_session",
        round(primary["decisions_per_second"] / runs[2]["decisions_per_second"], 2),
        "x",
        f"({settings.notify_workers} worker sessions / 1)",
    )
    report(
        "engine_rerun_rate_ratio",
        round(runs[1]["decisions_per_second"] / primary["decisions_per_second"], 3),
        "x",
        f"(batch {args.second_batch_size} / batch {args.batch_size})",
    )
    targets = {
        "engine_decisions_per_second": {
            "target": TARGET_DECISIONS_PER_SECOND,
            "measured": primary["decisions_per_second"],
            "met": primary["decisions_per_second"] >= TARGET_DECISIONS_PER_SECOND,
        },
        "engine_vs_naive": {
            "target": TARGET_RATIO_VS_NAIVE,
            "measured": vs_naive,
            "met": vs_naive >= TARGET_RATIO_VS_NAIVE,
        },
    }
    for name, t in targets.items():
        word = "pass" if t["met"] else "fall short"
        print(f"target {name} {t['measured']} (target >= {t['target']}): {word}", flush=True)

    summary = {
        "scale": {
            "users": args.users,
            "items": args.items,
            "candidates_per_user_requested": args.candidates_per_user,
            "naive_sample": args.naive_sample,
            "seed": args.seed,
            "horizon_hours": HORIZON_HOURS,
            "batch_sizes": [args.batch_size, args.second_batch_size],
        },
        "cpu_count": os.cpu_count(),
        "rows": rows,
        "engine": runs,
        "naive": {
            "decisions": report.figures["naive_decisions"],
            "seconds": report.figures["naive_seconds"],
            "decisions_per_second": naive_rate,
            "by_reason": _by_prefix(report.figures, "naive_reason_"),
        },
        "set_based_24h_cap": {
            "decisions": report.figures["set_based_decisions"],
            "seconds": report.figures["set_based_seconds"],
            "decisions_per_second": set_rate,
            "by_reason": _by_prefix(report.figures, "set_based_reason_"),
        },
        "targets": targets,
        "figures": report.figures,
    }
    record("bench-notify", summary)
    return summary


def _by_prefix(figures: dict, prefix: str) -> dict[str, int]:
    return {k[len(prefix) :]: v for k, v in figures.items() if k.startswith(prefix)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument(
        "--candidates-per-user",
        type=float,
        default=5.0,
        help=f"average candidates per user ({RECS_PER_USER} recommendations + 0..2 campaigns + triggers; reachable"
        f" range {_TRIGGER_MEAN + RECS_PER_USER:.1f}..{_TRIGGER_MEAN + RECS_PER_USER + 2:.1f})",
    )
    parser.add_argument("--naive-sample", type=int, default=3000, help="candidates decided by the naive loop")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=10_000, help="users per engine transaction")
    parser.add_argument("--second-batch-size", type=int, default=20000, help="batch size of the re-run")
    parser.add_argument(
        "--database-url",
        default=None,
        help="run against this database instead of the embedded .local/bench cluster (every push.* table is EMPTIED)",
    )
    args = parser.parse_args(argv)
    if args.users < 1 or args.items < 10 or args.naive_sample < 1:
        parser.error("--users and --naive-sample must be positive, --items at least 10")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # The planner logs where each worker's time goes (collect, schedule, decide): printed too.
    logging.basicConfig(format="%(message)s")
    logging.getLogger("jobs.notify.plan").setLevel(logging.INFO)
    url = to_sqlalchemy_url(args.database_url) if args.database_url else start_sandbox()
    os.environ["PUSH_DATABASE_URL"] = url
    run_benchmark(url, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
