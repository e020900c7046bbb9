"""Outbox rows for the relay: users with addresses and consent, pending ledger messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

FACTS = {
    "item_title": "Trail runner",
    "category": "shoes",
    "price": "59.00",
    "reason": "because you viewed Road runner",
    "discount_text": None,
    "rank": 1,  # templates ignore facts they do not use
}


def user_row(user_id: str, **overrides) -> dict:
    row = {
        "user_id": user_id,
        "email": f"{user_id}@example.com",
        "phone": "+15550000001",
        "push_token": f"token-{user_id}",
        "webhook_url": None,
        "consent_email": True,
        "consent_sms": True,
        "consent_push": True,
        "consent_webhook": True,
    }
    row.update(overrides)
    return row


def message_row(key: str, user_id: str, channel: str = "push", **overrides) -> dict:
    now = datetime.now(UTC)
    row = {
        "idempotency_key": key,
        "run_key": "test-run",
        "user_id": user_id,
        "channel": channel,
        "source": "svd",
        "item_id": "i1",
        "scheduled_at": now - timedelta(minutes=1),
        "payload": {"locale": "en", "facts": FACTS},
        "expires_at": now + timedelta(hours=1),
        "next_attempt_at": None,
    }
    row.update(overrides)
    row["payload"] = json.dumps(row["payload"], ensure_ascii=False)
    return row


def seed_outbox(engine, users: list[dict], messages: list[dict]) -> None:
    with engine.begin() as conn:
        if users:
            conn.execute(
                text(
                    "INSERT INTO push.users (user_id, email, phone, push_token, webhook_url, consent_email,"
                    " consent_sms, consent_push, consent_webhook) VALUES (:user_id, :email, :phone, :push_token,"
                    " :webhook_url, :consent_email, :consent_sms, :consent_push, :consent_webhook)"
                ),
                users,
            )
        if messages:
            conn.execute(
                text(
                    "INSERT INTO push.notification_ledger (idempotency_key, run_key, user_id, channel, source,"
                    " item_id, scheduled_at, payload, expires_at, next_attempt_at) VALUES (:idempotency_key,"
                    " :run_key, :user_id, :channel, :source, :item_id, :scheduled_at, CAST(:payload AS jsonb),"
                    " :expires_at, :next_attempt_at)"
                ),
                messages,
            )


def ledger_row(engine, key: str):
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT status, attempts, last_error, next_attempt_at, sent_at FROM push.notification_ledger"
                " WHERE idempotency_key = :k"
            ),
            {"k": key},
        ).one()


def attempts_of(engine, key: str) -> list:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT attempt, outcome, error, attempted_at, channel FROM push.delivery_attempts"
                " WHERE idempotency_key = :k ORDER BY attempt"
            ),
            {"k": key},
        ).all()


def provider_settings(settings, tmp_path, **providers):
    """Settings for relaying to local providers: no gateway or SMTP, a 2 s timeout, quick
    backoff, 3 attempts, no rate limits in the way, and ``providers``' settings."""
    from dataclasses import replace

    return replace(
        settings,
        smtp_url="",
        push_gateway_url="",
        gateway_secret="",
        gateway_timeout_seconds=2.0,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        relay_max_attempts=3,
        channel_rate_limits={},
        outbox_dir=tmp_path / "outbox",
        **providers,
    )
