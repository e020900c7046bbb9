"""Channel building blocks without a network: rate limiter, backoff, signatures, wiring, parsing."""

from __future__ import annotations

import email.message
import io
import json
import smtplib
import socket
import urllib.error
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs.core.config import Settings
from jobs.notify.channels import (
    FileSink,
    HttpGatewayChannel,
    OutboundMessage,
    PermanentDeliveryError,
    RateLimiter,
    SmtpChannel,
    TransientDeliveryError,
    build_channels,
    build_rate_limiters,
    classify_http_error,
    classify_smtp_error,
    message_id_for,
    parse_retry_after,
    sign_payload,
    verify_signature,
)
from jobs.notify.relay import backoff_seconds, message_content

SECRET = "unit-secret"
FACTS = {
    "item_title": "Trail runner",
    "category": "shoes",
    "price": "59.00",
    "reason": "because",
    "discount_text": None,
}


class FakeClock:
    """Monotonic seconds that only move when the limiter sleeps (or the test advances them)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _message(**overrides) -> OutboundMessage:
    fields = {
        "idempotency_key": "k-1",
        "user_id": "u1",
        "channel": "push",
        "address": "token-u1",
        "content": {"title": "Title", "body": "Body"},
        "source": "svd",
        "item_id": "i1",
    }
    fields.update(overrides)
    return OutboundMessage(**fields)


# --- rate limiter ---------------------------------------------------------------------------


def test_rate_limiter_allows_a_burst_then_paces_at_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(10.0, burst=3, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire() for _ in range(6)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.1, 0.1, 0.1])
    assert clock.now == pytest.approx(100.3)


def test_rate_limiter_refills_while_idle_but_never_beyond_the_burst():
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=2, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire(), limiter.acquire()] == [0.0, 0.0]
    clock.now += 60.0  # a long idle period refills only up to the burst
    assert [limiter.acquire(), limiter.acquire()] == [0.0, 0.0]
    assert limiter.acquire() == pytest.approx(0.5)
    clock.now += 0.25  # half a token back
    assert limiter.acquire() == pytest.approx(0.25)


@given(
    rate=st.floats(min_value=0.5, max_value=500.0),
    burst=st.integers(min_value=1, max_value=20),
    calls=st.integers(min_value=1, max_value=60),
)
def test_rate_limiter_never_exceeds_burst_plus_rate_times_elapsed(rate, burst, calls):
    clock = FakeClock()
    limiter = RateLimiter(rate, burst=burst, clock=clock, sleep=clock.sleep)
    for _ in range(calls):
        limiter.acquire()
    elapsed = clock.now - 100.0
    assert calls <= burst + rate * elapsed + 1e-6
    assert elapsed <= max(0.0, (calls - burst) / rate) + 1e-6  # and waits no longer than needed


def test_rate_limiter_rejects_nonsense_and_build_skips_unlimited_channels():
    with pytest.raises(ValueError, match="rate_per_second"):
        RateLimiter(0)
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(5, burst=0.5)
    assert RateLimiter(0.2).burst == 1.0
    limiters = build_rate_limiters({"push": 200.0, "email": 0.0, "sms": 20.0})
    assert sorted(limiters) == ["push", "sms"]
    assert (limiters["push"].rate, limiters["push"].burst) == (200.0, 200.0)


# --- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_from_the_base_with_jitter_between_half_and_full():
    assert [backoff_seconds(n, 2.0, 300.0, rng=lambda: 1.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]
    assert [backoff_seconds(n, 2.0, 300.0, rng=lambda: 0.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_seconds(20, 2.0, 300.0, rng=lambda: 1.0) == 300.0
    assert backoff_seconds(10_000, 2.0, 300.0, rng=lambda: 0.0) == 150.0  # no overflow


@given(
    attempt=st.integers(min_value=1, max_value=5_000),
    base=st.floats(min_value=0.0, max_value=60.0),
    maximum=st.floats(min_value=0.0, max_value=3_600.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
def test_backoff_stays_within_bounds(attempt, base, maximum, jitter):
    ceiling = min(maximum, base * 2.0 ** min(attempt - 1, 62))
    delay = backoff_seconds(attempt, base, maximum, rng=lambda: jitter)
    assert 0.5 * ceiling - 1e-9 <= delay <= ceiling + 1e-9
    assert delay <= maximum + 1e-9


# --- signatures and Retry-After -------------------------------------------------------------


def test_signature_round_trip_and_every_kind_of_tampering():
    body = b'{"idempotency_key":"k-1"}'
    signature = sign_payload(SECRET, "1700000000", body)
    assert signature.startswith("sha256=")
    assert len(signature) == len("sha256=") + 64
    assert verify_signature(SECRET, "1700000000", body, signature, 300, now=1_700_000_100)
    assert not verify_signature("other", "1700000000", body, signature, 300, now=1_700_000_100)
    assert not verify_signature(SECRET, "1700000000", body + b" ", signature, 300, now=1_700_000_100)
    assert not verify_signature(SECRET, "1700000001", body, signature, 300, now=1_700_000_100)  # replayed
    assert not verify_signature(SECRET, "1700000000", body, signature, 300, now=1_700_000_301)  # stale
    assert not verify_signature(SECRET, "1700000000", body, signature, 300, now=1_699_999_699)  # from the future
    assert not verify_signature(SECRET, "17e8", body, signature, 300, now=1_700_000_000)
    assert not verify_signature(SECRET, "1700000000", body, signature.removeprefix("sha256="), 300, now=1_700_000_000)
    assert not verify_signature(SECRET, "1700000000", body, "sha256=é", 300, now=1_700_000_000)
    assert not verify_signature("", "1700000000", body, sign_payload("", "1700000000", body), 300, now=1_700_000_000)


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=40), timestamp=st.integers(0, 2**40))
def test_any_signed_body_verifies_with_its_secret(body, secret, timestamp):
    signature = sign_payload(secret, str(timestamp), body)
    assert verify_signature(secret, str(timestamp), body, signature, 5, now=timestamp)


def test_retry_after_accepts_seconds_and_http_dates_and_ignores_garbage():
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=120), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(120.0)
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=now.timestamp()) == 0.0
    for bad in (None, "", "soon", "inf", "nan"):
        assert parse_retry_after(bad) is None


# --- error classification -------------------------------------------------------------------


def _http_error(status: int, headers: dict | None = None, body: bytes = b"oops") -> urllib.error.HTTPError:
    message = email.message.Message()
    for name, value in (headers or {}).items():
        message[name] = value
    return urllib.error.HTTPError("http://gw/push", status, "Reason", message, io.BytesIO(body))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, PermanentDeliveryError),
        (401, PermanentDeliveryError),
        (404, PermanentDeliveryError),
        (410, PermanentDeliveryError),
        (302, PermanentDeliveryError),
        (408, TransientDeliveryError),
        (409, TransientDeliveryError),
        (429, TransientDeliveryError),
        (500, TransientDeliveryError),
        (503, TransientDeliveryError),
    ],
)
def test_http_statuses_are_classified(status, kind):
    error = classify_http_error(_http_error(status), "push gateway")
    assert type(error) is kind
    assert f"HTTP {status}" in str(error)


def test_retry_after_travels_with_the_transient_error():
    error = classify_http_error(_http_error(429, {"Retry-After": "7"}, b'{"error":"slow down"}'))
    assert isinstance(error, TransientDeliveryError)
    assert error.retry_after == 7.0
    assert "slow down" in str(error)
    assert classify_http_error(_http_error(503)).retry_after is None


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (smtplib.SMTPDataError(451, b"try later"), TransientDeliveryError, "451 try later"),
        (smtplib.SMTPDataError(554, b"spam"), PermanentDeliveryError, "554 spam"),
        (smtplib.SMTPSenderRefused(553, b"bad sender", "a@b"), PermanentDeliveryError, "553"),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), PermanentDeliveryError, "535"),
        (smtplib.SMTPAuthenticationError(454, b"temporary auth failure"), TransientDeliveryError, "454"),
        (smtplib.SMTPRecipientsRefused({"a@b": (450, b"greylisted")}), TransientDeliveryError, "450 greylisted"),
        (smtplib.SMTPRecipientsRefused({"a@b": (550, b"no such user")}), PermanentDeliveryError, "550"),
        (smtplib.SMTPServerDisconnected("gone"), TransientDeliveryError, "connection lost"),
        (smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported"), PermanentDeliveryError, "AUTH"),
        (TimeoutError("timed out"), TransientDeliveryError, "timed out"),
        (socket.gaierror("name unknown"), TransientDeliveryError, "gaierror"),
        (ConnectionRefusedError(111, "refused"), TransientDeliveryError, "ConnectionRefusedError"),
    ],
)
def test_smtp_errors_are_classified(error, kind, text):
    classified = classify_smtp_error(error, "SMTP mx:25")
    assert type(classified) is kind
    assert text in str(classified)
    assert str(classified).startswith("SMTP mx:25")


# --- SMTP URL and MIME ----------------------------------------------------------------------


def test_smtp_url_is_parsed_with_decoding_and_defaults():
    channel = SmtpChannel.from_url(
        "smtp://mailer%40shop:p%40ss%20word@smtp.example.com:2525?starttls=1&from=noreply@shop.example&timeout=4.5"
    )
    assert (channel.host, channel.port, channel.sender) == ("smtp.example.com", 2525, "noreply@shop.example")
    assert (channel.username, channel.password, channel.starttls, channel.timeout) == (
        "mailer@shop",
        "p@ss word",
        True,
        4.5,
    )
    assert "p@ss word" not in repr(channel)
    plain = SmtpChannel.from_url("smtp://localhost?from=a@b.example", timeout=3.0)
    assert (plain.port, plain.username, plain.password, plain.starttls, plain.timeout) == (25, None, None, False, 3.0)
    assert SmtpChannel.from_url("smtp://mx.example?starttls=true&from=a@b.example").port == 587


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("smtps://mx.example:465?from=a@b.example", "smtp://"),
        ("http://mx.example?from=a@b.example", "smtp://"),
        ("smtp://mx.example", "from="),
        ("smtp://?from=a@b.example", "no host"),
        ("smtp://mx.example?from=nobody", "e-mail address"),
    ],
)
def test_bad_smtp_urls_say_what_is_wrong(url, problem):
    with pytest.raises(ValueError, match=problem):
        SmtpChannel.from_url(url)


def test_email_has_stable_message_id_and_single_line_subject():
    channel = SmtpChannel("mx.example", 25, "noreply@shop.example")
    message = _message(channel="email", address="bob@example.com", content={"title": "Two\nlines", "body": "B"})
    built = channel.build_email(message)
    assert built["Subject"] == "Two lines"
    assert built["Message-ID"] == message_id_for("k-1", "shop.example") == channel.build_email(message)["Message-ID"]
    assert built["X-Idempotency-Key"] == "k-1"
    assert built.get_content_type() == "text/plain"  # no HTML rendered: no empty alternative
    with pytest.raises(PermanentDeliveryError, match="invalid header"):
        channel.build_email(replace(message, address="bob@example.com\r\nBcc: eve@example.com"))


# --- HTTP request shape ---------------------------------------------------------------------


def test_gateway_request_is_signed_json_with_the_idempotency_key():
    channel = HttpGatewayChannel("push", "https://gw.example/v1/push", SECRET, 2.0, clock=lambda: 1_764_000_000.25)
    request = channel.request_for(_message())
    headers = {name.lower(): value for name, value in request.header_items()}
    assert request.full_url == "https://gw.example/v1/push"
    assert request.get_method() == "POST"
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == "k-1"
    assert headers["x-push-timestamp"] == "1764000000"
    assert verify_signature(SECRET, "1764000000", request.data, headers["x-push-signature"], 5, now=1_764_000_000)
    assert json.loads(request.data) == {
        "idempotency_key": "k-1",
        "user_id": "u1",
        "channel": "push",
        "address": "token-u1",
        "title": "Title",
        "body": "Body",
        "source": "svd",
        "item_id": "i1",
        "sent_at": "2025-11-24T16:00:00.250000+00:00",
    }
    assert SECRET not in repr(channel)


def test_webhook_posts_to_the_message_address_and_only_over_http():
    channel = HttpGatewayChannel("webhook", None, SECRET)
    assert channel.request_for(_message(channel="webhook", address="https://hooks.example/u1")).full_url == (
        "https://hooks.example/u1"
    )
    for address in ("file:///etc/passwd", "ftp://x.example/", "not a url", None):
        with pytest.raises(PermanentDeliveryError):
            channel.request_for(_message(channel="webhook", address=address))


def test_gateway_needs_a_secret_and_an_http_url():
    with pytest.raises(ValueError, match="secret"):
        HttpGatewayChannel("push", "https://gw.example", "")
    with pytest.raises(ValueError, match="http"):
        HttpGatewayChannel("push", "gw.example/push", SECRET)


# --- wiring ---------------------------------------------------------------------------------


def test_build_channels_defaults_to_the_file_sink(tmp_path):
    settings = replace(
        Settings(), smtp_url="", push_gateway_url="", sms_gateway_url="", gateway_secret="", outbox_dir=tmp_path
    )
    channels = build_channels(settings)
    assert sorted(channels) == ["email", "push", "sms", "webhook"]
    assert all(isinstance(channel, FileSink) and channel.folder == tmp_path for channel in channels.values())


def test_build_channels_uses_configured_providers(tmp_path):
    settings = replace(
        Settings(),
        smtp_url="smtp://u:p@mx.example:587?starttls=1&from=noreply@shop.example",
        push_gateway_url="https://gw.example/push",
        sms_gateway_url="",
        gateway_secret=SECRET,
        gateway_timeout_seconds=1.5,
        outbox_dir=tmp_path,
    )
    channels = build_channels(settings)
    email_channel, push, sms, webhook = (channels[name] for name in ("email", "push", "sms", "webhook"))
    assert isinstance(email_channel, SmtpChannel)
    assert (email_channel.host, email_channel.port, email_channel.starttls, email_channel.timeout) == (
        "mx.example",
        587,
        True,
        1.5,
    )
    assert isinstance(push, HttpGatewayChannel)
    assert (push.name, push.url, push.timeout) == ("push", "https://gw.example/push", 1.5)
    assert isinstance(sms, FileSink)
    assert isinstance(webhook, HttpGatewayChannel)
    assert (webhook.name, webhook.url) == ("webhook", None)


def test_a_gateway_url_without_a_secret_is_refused(tmp_path):
    settings = replace(Settings(), push_gateway_url="https://gw.example/push", gateway_secret="", outbox_dir=tmp_path)
    with pytest.raises(ValueError, match="secret"):
        build_channels(settings)


# --- file sink and payloads -----------------------------------------------------------------


def test_file_sink_overwrites_by_key_and_never_leaves_its_folder(tmp_path):
    sink = FileSink(tmp_path)
    sink.send(_message(content={"title": "first", "body": "b"}))
    sink.send(_message(content={"title": "second", "body": "b"}))
    files = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*") if path.is_file())
    assert files == [Path("push/k-1.json")]
    assert json.loads((tmp_path / "push" / "k-1.json").read_text())["content"]["title"] == "second"
    sink.send(_message(idempotency_key="../../escape"))
    assert not (tmp_path.parent / "escape.json").exists()
    assert len(list((tmp_path / "push").glob("*.json"))) == 2


def test_payload_facts_are_rendered_and_old_payloads_pass_through():
    rendered = message_content("email", {"locale": "en", "facts": {**FACTS, "unused": 1}})
    assert rendered["title"] == "Picked for you: Trail runner"
    assert "html" in rendered
    assert message_content("push", {"facts": FACTS})["title"] == "Picked for you: Trail runner"  # locale defaults
    assert message_content("push", {"title": "T", "body": "B"}) == {"title": "T", "body": "B"}
    for bad in ({"facts": ["not", "a", "dict"]}, {"title": "no body"}, ["not a dict"]):
        with pytest.raises(ValueError, match="payload"):
            message_content("push", bad)
