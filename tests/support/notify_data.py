"""Rows of the serving tables: users, items, recommendation sets, profiles, triggers, decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from jobs.core.db import copy_rows
from jobs.recs.topn import Recommendation

USERS = [f"u{n:03d}" for n in range(40)]
AT = datetime(2026, 11, 25, 12, tzinfo=UTC)


def add_users(engine, users, timezone="UTC", push=True, email=True, sms=False, locale="en"):
    with engine.begin() as conn:
        copy_rows(
            conn,
            "push.users",
            [
                "user_id",
                "timezone",
                "locale",
                "email",
                "phone",
                "push_token",
                "consent_push",
                "consent_email",
                "consent_sms",
            ],
            [(u, timezone, locale, f"{u}@example.com", "+1555000", f"tok-{u}", push, email, sms) for u in users],
        )


def add_items(engine, count=5, category="shoes"):
    with engine.begin() as conn:
        copy_rows(
            conn,
            "push.items",
            ["item_id", "title", "category", "brand", "price", "in_stock"],
            [(f"i{n}", f"Item {n}", category, "b", 10.0 + n, True) for n in range(count)],
        )


def publish_rows(conn, rows, as_of="2026-11-25"):
    """Make model run r1, with recommendations ``rows`` (user_id, rank, item_id), the live set."""
    conn.execute(
        text(
            "INSERT INTO push.model_runs VALUES ('r1', :d, 'test', '{}', CAST(:d AS date) - 24, :d,"
            " '{}', '{}', '/dev/null', true, 'promoted')"
        ),
        {"d": as_of},
    )
    copy_rows(
        conn,
        "push.recommendations",
        ["run_id", "user_id", "rank", "item_id", "score", "source", "reason"],
        [("r1", user, rank, item, 1.0 / rank, "svd", "test") for user, rank, item in rows],
    )
    conn.execute(text("INSERT INTO push.published_recommendations VALUES (true, 'r1', :d)"), {"d": as_of})


def publish(engine, users, ranks=3):
    with engine.begin() as conn:
        publish_rows(conn, [(u, rank, f"i{rank}") for u in users for rank in range(1, ranks + 1)])


PROFILE_COLUMNS = [
    "as_of", "user_id", "top_categories", "top_brands", "category_affinity", "price_level", "recency_days",
    "frequency", "monetary", "active_days", "preferred_hour", "preferred_weekday", "segment",
]  # fmt: skip


def add_profiles(engine, rows, as_of="2026-11-20"):
    """rows: (user_id, segment, preferred_hour); every user likes shoes and brand b."""
    with engine.begin() as conn:
        copy_rows(
            conn,
            "push.user_profiles",
            PROFILE_COLUMNS,
            [(as_of, u, ["shoes"], ["b"], "{}", 0.5, 1, 1, 1, 1, h, 2, seg) for u, seg, h in rows],
        )


def add_triggers(engine, rows):
    """rows: (trigger_key, user_id, item_id, fire_at)."""
    with engine.begin() as conn:
        copy_rows(
            conn,
            "push.triggers",
            ["trigger_key", "user_id", "trigger_type", "item_id", "detected_at", "fire_at", "expires_at"],
            [
                (k, u, "cart_abandonment", i, f - timedelta(minutes=30), f, f + timedelta(hours=24))
                for k, u, i, f in rows
            ],
        )


def ledger(engine, where="true"):
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT user_id, idempotency_key, run_key, channel, scheduled_at, source FROM push.notification_ledger"
                f" WHERE {where} ORDER BY 2"
            )
        ).all()


def decisions(engine, where="true") -> dict[str, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text(f"SELECT decision, count(*) FROM push.notification_decisions WHERE {where} GROUP BY 1")
            ).all()
        )


ITEMS = 20


def recommendations_for(run_id: str, users: int, n: int = 3) -> list[Recommendation]:
    # Item and score depend on the run, so two runs' rows never look alike.
    shift = sum(map(ord, run_id)) % ITEMS
    return [
        Recommendation(f"u{u:05d}", rank, f"i{(u + rank + shift) % ITEMS}", 1.0 / rank, "svd", f'because "{run_id}", x')
        for u in range(users)
        for rank in range(1, n + 1)
    ]
