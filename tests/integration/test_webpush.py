"""The Web Push adapter through the real relay, against a local push service that verifies
VAPID and decrypts the payload with the subscription's keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from jobs.notify.relay import relay_pending
from jobs.notify.webpush import WebPushChannel
from tests.support.outbox import attempts_of, ledger_row, message_row, provider_settings, seed_outbox, user_row
from tests.support.webpush_server import FakeWebPush


@pytest.fixture
def service() -> Iterator[FakeWebPush]:
    server = FakeWebPush()
    yield server
    server.stop()


@pytest.fixture
def vapid_key(tmp_path):
    path = tmp_path / "vapid.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


@pytest.fixture
def push_settings(settings, vapid_key, tmp_path):
    return provider_settings(
        settings,
        tmp_path,
        fcm_service_account="",
        webpush_vapid_key=str(vapid_key),
        webpush_subject="mailto:ops@shop.example",
    )


def _subscribed(engine, service: FakeWebPush, users: list[str], unsubscribed: tuple[str, ...] = ()) -> None:
    seed_outbox(
        engine,
        [user_row(u, push_token=service.subscribe(u)) for u in users],
        [message_row(f"k-{u}", u) for u in users],
    )
    with engine.begin() as conn:
        conn.execute(text("UPDATE push.users SET push_platform = 'webpush' WHERE user_id = ANY(:u)"), {"u": users})
    for user in unsubscribed:
        service.keys.pop(user)  # the browser unsubscribed: the service answers 410 Gone


def test_messages_are_signed_encrypted_and_decrypted_by_the_subscriber(empty_db, push_settings, service):
    _subscribed(empty_db, service, ["a", "b"])
    assert relay_pending(push_settings) == {"sent": 2}
    payload = service.shown[("a", "k-a")]
    assert payload["idempotency_key"] == "k-a"
    assert payload["title"]
    assert payload["body"]
    assert payload["item_id"] == "i1"
    assert all(3000 <= r["ttl"] <= 3600 and r["urgency"] == "normal" for r in service.requests)


def test_a_gone_or_malformed_subscription_is_retired(empty_db, push_settings, service):
    _subscribed(empty_db, service, ["gone"], unsubscribed=("gone",))
    seed_outbox(empty_db, [user_row("junk", push_token="not a subscription")], [message_row("k-junk", "junk")])
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE push.users SET push_platform = 'webpush' WHERE user_id = 'junk'"))
    assert relay_pending(push_settings) == {"dead": 2}
    with empty_db.connect() as conn:
        dead = dict(conn.execute(text("SELECT user_id, answer FROM push.dead_tokens")).all())
        tokens = conn.execute(text("SELECT count(push_token) FROM push.users")).scalar_one()
    assert dead == {"gone": "410", "junk": "malformed subscription"}
    assert tokens == 0
    assert "410" in ledger_row(empty_db, "k-gone").last_error


def test_throttling_outages_and_a_lost_answer_are_retried_and_shown_once(empty_db, push_settings, service):
    _subscribed(empty_db, service, ["busy", "down", "lost"])
    service.script["busy"].append((429, 1))
    service.script["down"].append(503)
    service.script["lost"].append("drop")
    assert relay_pending(push_settings, max_wait_seconds=3.0) == {"retry": 3, "sent": 3}
    busy = [a.attempted_at for a in attempts_of(empty_db, "k-busy")]
    assert (busy[1] - busy[0]).total_seconds() >= 0.95  # the service's Retry-After
    assert [topic for name, topic in service.shown if name == "lost"] == ["k-lost"]
    assert service.replaced == 1  # the retry replaced the first copy (same Topic)


def test_a_subject_that_is_no_contact_is_refused(vapid_key):
    with pytest.raises(ValueError, match="mailto"):
        WebPushChannel(str(vapid_key), "ops@shop.example")
