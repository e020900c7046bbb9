"""The APNs adapter through the real relay, against a local HTTP/2 server that checks the
provider token and the headers as Apple does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from jobs.notify.apns import ApnsChannel, apns_id
from jobs.notify.channels import OutboundMessage, TransientDeliveryError
from jobs.notify.relay import relay_pending
from tests.support.apns_server import FakeApns
from tests.support.outbox import attempts_of, ledger_row, message_row, provider_settings, seed_outbox, user_row

TOPIC = "com.shop.app"


@pytest.fixture
def key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def apns(key) -> Iterator[FakeApns]:
    server = FakeApns(key.public_key(), "KEY123", "TEAM45", TOPIC)
    yield server
    server.stop()


@pytest.fixture
def apns_settings(settings, apns, key, tmp_path):
    path = tmp_path / "AuthKey_KEY123.p8"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return provider_settings(
        settings,
        tmp_path,
        apns_key=str(path),
        apns_key_id="KEY123",
        apns_team_id="TEAM45",
        apns_topic=TOPIC,
        apns_endpoint=apns.url,
    )


def _on_apns(engine, users: list[str]) -> None:
    seed_outbox(engine, [user_row(u) for u in users], [message_row(f"k-{u}", u) for u in users])
    with engine.begin() as conn:
        conn.execute(text("UPDATE push.users SET push_platform = 'apns' WHERE user_id = ANY(:u)"), {"u": users})


def test_messages_go_as_streams_of_one_http2_connection_with_one_provider_token(empty_db, apns_settings, apns):
    users = [f"u{n}" for n in range(4)]
    apns.registered |= {f"token-{u}" for u in users}
    _on_apns(empty_db, users)
    linked = replace(
        apns_settings, push_deep_link="shop://item/{item_id}", push_image_url="https://cdn.example/{item_id}.jpg"
    )
    assert relay_pending(linked) == {"sent": 4}
    assert apns.connections == 1
    first = apns.requests[0]["headers"]
    assert first["apns-topic"] == TOPIC
    assert first["apns-push-type"] == "alert"
    assert first["apns-priority"] == "5"
    assert first["apns-id"] == apns_id("k-u0")
    assert first["apns-collapse-id"] == "k-u0"
    assert len({r["headers"]["authorization"] for r in apns.requests}) == 1  # the provider token is reused
    payload = apns.shown[("token-u0", "k-u0")]
    assert payload["aps"]["alert"]["title"]
    assert payload["idempotency_key"] == "k-u0"
    assert (payload["link"], payload["image"], payload["aps"]["mutable-content"]) == (
        "shop://item/i1",
        "https://cdn.example/i1.jpg",
        1,
    )


def test_an_unregistered_or_bad_token_is_retired(empty_db, apns_settings, apns):
    apns.unregistered.add("token-gone")
    _on_apns(empty_db, ["gone", "bad"])
    assert relay_pending(apns_settings) == {"dead": 2}
    with empty_db.connect() as conn:
        dead = dict(conn.execute(text("SELECT user_id, answer FROM push.dead_tokens")).all())
    assert dead == {"gone": "410 Unregistered", "bad": "400 BadDeviceToken"}


def test_throttling_outages_and_a_lost_answer_are_retried_and_shown_once(empty_db, apns_settings, apns):
    users = ["busy", "down", "lost"]
    apns.registered |= {f"token-{u}" for u in users}
    apns.script["token-busy"].append((429, 1))
    apns.script["token-down"].append(503)
    apns.script["token-lost"].append("drop")
    _on_apns(empty_db, users)
    assert relay_pending(apns_settings, max_wait_seconds=3.0) == {"retry": 3, "sent": 3}
    busy = [a.attempted_at for a in attempts_of(empty_db, "k-busy")]
    assert (busy[1] - busy[0]).total_seconds() >= 0.95
    assert [collapse for token, collapse in apns.shown if token == "token-lost"] == ["k-lost"]
    assert apns.replaced == 1
    assert all(ledger_row(empty_db, f"k-{u}").status == "sent" for u in users)


def test_an_old_provider_token_is_replaced(apns_settings, apns):
    now = [1_000_000.0]
    channel = ApnsChannel(apns_settings.apns_key, "KEY123", "TEAM45", TOPIC, apns.url, 2.0, clock=lambda: now[0])
    apns.registered.add("t1")
    message = OutboundMessage("k1", "u1", "push", "t1", {"title": "T", "body": "B"}, "svd", None, "apns")
    with pytest.raises(TransientDeliveryError, match="expired"):
        channel.send(message)  # a clock far in the past: Apple calls the token expired
    now[0] = __import__("time").time()
    channel.send(message)
    assert channel.tokens.made == 2
