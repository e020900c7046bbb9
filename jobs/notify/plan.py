"""Decide which candidate messages are sent, applying the policy in order, and fill the outbox.

Per user, in one transaction holding that user's advisory lock (so two planners racing over
the same users cannot both pass the cap): read consent, then for each candidate by expected
value: control group -> replay/duplicate check -> rolling 24 h cap -> ledger insert. Every
decision is logged in ``push.notification_decisions`` with its reason. Keys derive from the
logical time, so a re-run of the same slot decides identically and sends nothing new.

CLI: ``python -m jobs.notify.plan --at 2026-11-25T00:00:00Z``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter, defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from jobs.core.config import Settings
from jobs.core.db import load_query, make_engine
from jobs.core.timeutil import parse_utc
from jobs.notify import policy
from jobs.notify.policy import Candidate
from jobs.notify.render import render_message

log = logging.getLogger(__name__)
CAP_WINDOW = timedelta(hours=24)


def run_key_for(at: datetime) -> str:
    return f"notify-{at:%Y%m%dT%H%M}"


def load_candidates(conn: Connection, at: datetime) -> dict[str, list[tuple[Candidate, dict]]]:
    """Candidates per user, each with the facts its message is rendered from."""
    rows = conn.execute(text(load_query("notification_candidates")), {"as_of": at}).mappings().all()
    by_user: dict[str, list[tuple[Candidate, dict]]] = defaultdict(list)
    for row in rows:
        candidate = Candidate(
            user_id=row["user_id"],
            source=row["source"],
            item_id=row["item_id"],
            expected_value=float(row["expected_value"]),
            transactional=bool(row["transactional"]),
            campaign_id=row["campaign_id"],
            discount_text=row["discount_text"],
        )
        facts = {
            "item_title": row["title"],
            "category": row["category"],
            "price": f"{float(row['price']):.2f}",
            "reason": row["reason"],
            "discount_text": row["discount_text"],
        }
        by_user[row["user_id"]].append((candidate, facts))
    return by_user


def _decide_user(
    conn: Connection, settings: Settings, user_id: str, candidates, at: datetime, run_key: str
) -> list[dict]:
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:u))"), {"u": user_id})
    user = (
        conn.execute(
            text(
                "SELECT locale, consent_email AS email, consent_sms AS sms, consent_push AS push,"
                " consent_webhook AS webhook FROM push.users WHERE user_id = :u"
            ),
            {"u": user_id},
        )
        .mappings()
        .one_or_none()
    )
    channel = policy.choose_channel(dict(user)) if user else None
    holdout = policy.in_holdout(user_id, settings.holdout_salt, settings.holdout_percent)
    slot = f"{at:%Y-%m-%d}"
    decisions = []
    ordered = policy.order_candidates([c for c, _ in candidates])
    facts_of = {c.candidate_key: f for c, f in candidates}
    for candidate in ordered:
        key = policy.idempotency_key(user_id, candidate.candidate_key, slot)
        if channel is None:
            decision = policy.SUPPRESSED_CONSENT
        elif holdout:
            decision = policy.HOLDOUT
        else:
            earlier = conn.execute(
                text("SELECT run_key FROM push.notification_ledger WHERE idempotency_key = :k"), {"k": key}
            ).scalar_one_or_none()
            if earlier is not None:
                # Recorded by this very run before (a retry): replay the decision; by another: duplicate.
                decision = policy.SENT if earlier == run_key else policy.DUPLICATE
            elif not candidate.transactional and policy.exceeds_rolling_cap(
                _send_times_near(conn, user_id, at), at, settings.daily_cap, CAP_WINDOW
            ):
                decision = policy.CAPPED_DAILY
            else:
                message = render_message(channel, user["locale"], facts_of[candidate.candidate_key])
                conn.execute(
                    text(
                        "INSERT INTO push.notification_ledger (idempotency_key, run_key, user_id, channel, source,"
                        " item_id, scheduled_at, transactional, payload) VALUES (:k, :run, :u, :ch, :src, :item, :at,"
                        " :tx, CAST(:payload AS jsonb)) ON CONFLICT (idempotency_key) DO NOTHING"
                    ),
                    {
                        "k": key,
                        "run": run_key,
                        "u": user_id,
                        "ch": channel,
                        "src": candidate.source,
                        "item": candidate.item_id,
                        "at": at,
                        "tx": candidate.transactional,
                        "payload": json.dumps(message, ensure_ascii=False),
                    },
                )
                decision = policy.SENT
        decisions.append(
            {
                "run_key": run_key,
                "user_id": user_id,
                "candidate_key": candidate.candidate_key,
                "source": candidate.source,
                "item_id": candidate.item_id,
                "channel": channel,
                "expected_value": candidate.expected_value,
                "decision": decision,
                "idempotency_key": key,
                "decided_at": at,
            }
        )
    conn.execute(
        text(
            "INSERT INTO push.notification_decisions (run_key, user_id, candidate_key, source, item_id, channel,"
            " expected_value, decision, idempotency_key, decided_at) VALUES (:run_key, :user_id, :candidate_key,"
            " :source, :item_id, :channel, :expected_value, :decision, :idempotency_key, :decided_at)"
            " ON CONFLICT (run_key, user_id, candidate_key) DO UPDATE SET decision = EXCLUDED.decision,"
            " channel = EXCLUDED.channel, expected_value = EXCLUDED.expected_value, item_id = EXCLUDED.item_id,"
            " idempotency_key = EXCLUDED.idempotency_key, decided_at = EXCLUDED.decided_at"
        ),
        decisions,
    )
    return decisions


def _send_times_near(conn: Connection, user_id: str, at: datetime) -> list[datetime]:
    """Times of the user's non-transactional messages within one cap window either side of ``at``."""
    return (
        conn.execute(
            text(
                "SELECT scheduled_at FROM push.notification_ledger WHERE user_id = :u AND NOT transactional"
                " AND scheduled_at > :since AND scheduled_at < :until"
            ),
            {"u": user_id, "since": at - CAP_WINDOW, "until": at + CAP_WINDOW},
        )
        .scalars()
        .all()
    )


def plan_notifications(settings: Settings, at: datetime) -> dict:
    """Decide for every user with candidates at ``at``; return counts by decision."""
    run_key = run_key_for(at)
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        by_user = load_candidates(conn, at)
    counts: Counter[str] = Counter()
    for user_id in sorted(by_user):
        with engine.begin() as conn:
            for decision in _decide_user(conn, settings, user_id, by_user[user_id], at, run_key):
                counts[decision["decision"]] += 1
    summary = {"run_key": run_key, "users": len(by_user), "decisions": dict(sorted(counts.items()))}
    log.info("notification plan: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--at", type=parse_utc, required=True, help="logical decision time (UTC)")
    args = parser.parse_args(argv)
    print(json.dumps(plan_notifications(Settings.from_env(), args.at)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
