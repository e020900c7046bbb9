"""The FCM adapter through the real relay, against a local FCM v1 and OAuth token endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from jobs.ingest.reference import load_reference
from jobs.notify.channels import DeadTokenError, OutboundMessage, TransientDeliveryError, build_channels
from jobs.notify.fcm import FcmChannel, ServiceAccount
from jobs.notify.relay import relay_pending
from jobs.privacy.pseudonym import pseudonym
from tests.support.fcm_server import FakeFcm
from tests.support.outbox import attempts_of, ledger_row, message_row, provider_settings, seed_outbox, user_row


@pytest.fixture
def fcm() -> Iterator[FakeFcm]:
    server = FakeFcm()
    yield server
    server.stop()


@pytest.fixture
def fcm_settings(settings, fcm, tmp_path):
    return provider_settings(
        settings,
        tmp_path,
        fcm_service_account=str(fcm.key_file(tmp_path)),
        fcm_endpoint=fcm.url,
    )


def _on_fcm(engine, users: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE push.users SET push_platform = 'fcm' WHERE user_id = ANY(:u)"), {"u": users})


def test_messages_reach_fcm_with_one_access_token_a_collapse_key_and_a_ttl(empty_db, fcm_settings, fcm):
    users = [f"u{n}" for n in range(3)]
    fcm.registered |= {f"token-{u}" for u in users}
    seed_outbox(empty_db, [user_row(u) for u in users], [message_row(f"k-{u}", u) for u in users])
    _on_fcm(empty_db, users)
    linked = replace(
        fcm_settings,
        push_deep_link="https://shop.example/i/{item_id}",
        push_image_url="https://cdn.example/{item_id}.jpg",
    )

    assert relay_pending(linked) == {"sent": 3}
    assert fcm.exchanges == 1  # the access token is cached, not fetched per message
    assert {token for token, _ in fcm.shown} == {f"token-{u}" for u in users}
    message = fcm.shown[("token-u0", "k-u0")]
    assert message["notification"]["title"]
    assert message["data"] == {
        "idempotency_key": "k-u0",
        "source": "svd",
        "item_id": "i1",
        "link": "https://shop.example/i/i1",
    }
    assert message["notification"]["image"] == "https://cdn.example/i1.jpg"
    assert message["webpush"]["fcm_options"] == {"link": "https://shop.example/i/i1"}
    assert message["webpush"]["headers"]["Topic"] == "k-u0"
    assert 3000 <= int(message["android"]["ttl"].removesuffix("s")) <= 3600  # expires within the hour
    assert ledger_row(empty_db, "k-u0").status == "sent"


def test_a_dead_token_is_retired_kept_off_on_reload_and_the_next_plan_uses_email(empty_db, fcm_settings, fcm):
    from jobs.notify.plan import plan_notifications
    from tests.support.notify_data import publish

    seed_outbox(empty_db, [user_row("u1", push_token="stale-token")], [message_row("k-dead", "u1")])
    _on_fcm(empty_db, ["u1"])

    assert relay_pending(fcm_settings) == {"dead": 1}
    row = ledger_row(empty_db, "k-dead")
    assert row.status == "dead"
    assert "UNREGISTERED" in row.last_error
    assert "stale-token" not in row.last_error
    with empty_db.connect() as conn:
        dead = conn.execute(text("SELECT user_id, platform, token_key, answer FROM push.dead_tokens")).one()
        token = conn.execute(text("SELECT push_token FROM push.users WHERE user_id = 'u1'")).scalar_one()
        daily = conn.execute(text("SELECT platform, tokens FROM analytics.dead_tokens_daily")).all()
    assert (dead.user_id, dead.platform) == ("u1", "fcm")
    assert dead.token_key == pseudonym("stale-token", fcm_settings.pseudonym_key)  # the hash, never the token
    assert token is None
    assert daily == [("fcm", 1)]

    # The shop's next export still carries the token: the loader keeps it off.
    reference = fcm_settings.landing_dir / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    (reference / "users.csv").write_text(
        "user_id,email,push_token,push_platform,timezone,consent_email,consent_push\n"
        "u1,u1@example.com,stale-token,fcm,UTC,true,true\n"
    )
    (reference / "items.csv").write_text(
        "item_id,title,category,brand,price,in_stock\n" + "".join(f"i{n},Shoe {n},shoes,b,10,true\n" for n in (1, 2, 3))
    )
    (reference / "campaigns.csv").write_text(
        "campaign_id,name,target_category,discount_text,valid_from,valid_to,priority,channels,transactional\n"
    )
    counts = load_reference(fcm_settings)
    assert counts["dead_tokens_kept_off"] == 1
    # The planner falls back to the next consented channel with an address.
    publish(empty_db, ["u1"])
    at = datetime(2026, 11, 25, 12, tzinfo=UTC)
    plan_notifications(fcm_settings, at)
    with empty_db.connect() as conn:
        channels = conn.execute(text("SELECT DISTINCT channel FROM push.notification_ledger WHERE user_id = 'u1'"
                                     " AND idempotency_key <> 'k-dead'")).scalars().all()  # fmt: skip
    assert channels == ["email"]


def test_quota_unavailable_and_a_lost_response_are_retried_and_shown_once(empty_db, fcm_settings, fcm):
    users = ["busy", "flaky", "lost"]
    fcm.registered |= {f"token-{u}" for u in users}
    fcm.script["token-busy"].append((429, 1))
    fcm.script["token-flaky"].append(503)
    fcm.script["token-lost"].append("drop")
    seed_outbox(empty_db, [user_row(u) for u in users], [message_row(f"k-{u}", u) for u in users])
    _on_fcm(empty_db, users)

    assert relay_pending(fcm_settings, max_wait_seconds=3.0) == {"retry": 3, "sent": 3}
    busy = [a.attempted_at for a in attempts_of(empty_db, "k-busy")]
    assert (busy[1] - busy[0]).total_seconds() >= 0.95  # FCM's Retry-After, not the 0.05 s backoff
    # The lost response's message reached the device; the retry replaced it (same collapse key).
    assert [key for token, key in fcm.shown if token == "token-lost"] == ["k-lost"]
    assert fcm.collapsed == 1
    assert all(ledger_row(empty_db, f"k-{u}").status == "sent" for u in users)


def test_a_provider_that_answers_too_late_is_retried_and_shows_the_message_once(empty_db, fcm_settings, fcm):
    fcm.registered.add("token-slow")
    fcm.script["token-slow"].append(("hang", 3.0))  # beyond the 2 s timeout
    seed_outbox(empty_db, [user_row("slow")], [message_row("k-slow", "slow")])
    _on_fcm(empty_db, ["slow"])
    assert relay_pending(fcm_settings, max_wait_seconds=5.0) == {"retry": 1, "sent": 1}
    assert "timed out" in attempts_of(empty_db, "k-slow")[0].error
    assert list(fcm.shown) == [("token-slow", "k-slow")]


def test_an_expired_access_token_is_dropped_and_a_refused_key_is_permanent(fcm, tmp_path):
    account = ServiceAccount.from_file(fcm.key_file(tmp_path))
    channel = FcmChannel(account, fcm.url, timeout=2.0)
    fcm.registered.add("t1")
    message = OutboundMessage("k1", "u1", "push", "t1", {"title": "T", "body": "B"}, "svd", None, "fcm")
    channel.send(message)
    fcm.access_tokens.clear()  # the provider forgets it (revoked, expired early)
    with pytest.raises(TransientDeliveryError, match="401"):
        channel.send(message)
    channel.send(message)  # a fresh token was fetched
    assert channel.tokens.exchanges == 2
    with pytest.raises(DeadTokenError):
        channel.send(replace(message, address="never-registered"))
    impostor = ServiceAccount(account.project_id, "someone@else", account.private_key, "k1", account.token_uri)
    from jobs.notify.channels import PermanentDeliveryError

    with pytest.raises(PermanentDeliveryError, match="token exchange refused"):
        FcmChannel(impostor, fcm.url, timeout=2.0).send(message)
    with pytest.raises(PermanentDeliveryError, match="above FCM's 4096"):
        channel.send(replace(message, content={"title": "T", "body": "x" * 5000}))


def test_push_goes_to_the_users_platform_and_an_unconfigured_one_is_named(empty_db, fcm_settings, fcm):
    channels = build_channels(fcm_settings)
    fcm.registered.add("token-a")
    seed_outbox(
        empty_db,
        [user_row("a"), user_row("b"), user_row("c")],
        [message_row("k-a", "a"), message_row("k-b", "b"), message_row("k-c", "c")],
    )
    _on_fcm(empty_db, ["a"])
    with empty_db.begin() as conn:
        conn.execute(text("UPDATE push.users SET push_platform = 'apns' WHERE user_id = 'c'"))
    assert relay_pending(fcm_settings, channels) == {"sent": 2, "dead": 1}
    assert (fcm_settings.outbox_dir / "push" / "k-b.json").exists()  # no platform: the gateway (file sink here)
    assert "apns" in ledger_row(empty_db, "k-c").last_error
    assert [token for token, _ in fcm.shown] == ["token-a"]


def test_a_provider_rate_limit_spaces_out_its_sends(empty_db, fcm_settings, fcm):
    users = [f"r{n}" for n in range(4)]
    fcm.registered |= {f"token-{u}" for u in users}
    seed_outbox(empty_db, [user_row(u) for u in users], [message_row(f"k-{u}", u) for u in users])
    _on_fcm(empty_db, users)
    limited = replace(fcm_settings, channel_rate_limits={"fcm": 2.0})  # a bucket of 2, refilled at 2/s
    channels = build_channels(limited)
    assert set(channels["push"].limiters) == {"fcm"}
    started = time.monotonic()
    assert relay_pending(limited, channels) == {"sent": 4}
    assert time.monotonic() - started >= 0.9  # the 3rd and 4th waited for the bucket
