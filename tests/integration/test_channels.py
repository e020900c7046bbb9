"""Channels and the relay against real servers on 127.0.0.1 and a real PostgreSQL.

An aiosmtpd server stands in for the mail provider and a ``ThreadingHTTPServer`` for the
push/SMS gateway and webhook receivers. Both are scripted per request (accept, defer, reject,
hang), the gateway checks every signature with ``verify_signature`` and, like a real gateway
honouring ``Idempotency-Key``, processes each key once. Ledger rows are inserted directly, so
these tests depend on the outbox schema only, not on the planner.
"""

from __future__ import annotations

import email
import io
import ipaddress
import itertools
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import text

from jobs.notify.channels import (
    FileSink,
    HttpGatewayChannel,
    OutboundMessage,
    PermanentDeliveryError,
    SmtpChannel,
    TransientDeliveryError,
    build_channels,
    message_id_for,
    verify_signature,
)
from jobs.notify.relay import main as relay_main
from jobs.notify.relay import relay_pending
from tests.support.outbox import FACTS, attempts_of, ledger_row, message_row, seed_outbox, user_row
from tests.support.servers import SECRET, FakeGateway, GatewayRequest, MailHandler, free_port, smtp_server

TIMEOUT = 0.3


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    server = FakeGateway().start()
    yield server
    server.stop()


@pytest.fixture
def mail() -> Iterator[tuple[MailHandler, Controller]]:
    handler = MailHandler()
    with smtp_server(handler) as controller:
        yield handler, controller


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made with ``cryptography`` (no openssl binary)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "push-pipeline test SMTP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(cert_path, key_path)


def _login_checker(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"relay", b"p@ss word")
    return AuthResult(success=ok)


@pytest.fixture
def relay_settings(settings, gateway, tmp_path):
    """Gateways on 127.0.0.1, short timeouts and backoff, 3 attempts, no rate limits in the way."""
    return replace(
        settings,
        smtp_url="",
        push_gateway_url=gateway.url + "/push",
        sms_gateway_url=gateway.url + "/sms",
        gateway_secret=SECRET,
        gateway_timeout_seconds=TIMEOUT,
        retry_base_seconds=0.05,
        retry_max_seconds=0.2,
        relay_max_attempts=3,
        channel_rate_limits={},
        outbox_dir=tmp_path / "outbox",
    )


def _message_for(user_id: str = "u1", address: str | None = "bob@example.com", key: str = "k-1") -> OutboundMessage:
    return OutboundMessage(
        idempotency_key=key,
        user_id=user_id,
        channel="email",
        address=address,
        content={"title": "Picked for you", "body": "Plain body", "html": "<p>HTML body</p>"},
        source="svd",
        item_id="i1",
    )


# --- e-mail ---------------------------------------------------------------------------------


def test_email_is_delivered_as_text_and_html_with_idempotency_headers(empty_db, relay_settings, mail):
    handler, controller = mail
    smtp_settings = replace(relay_settings, smtp_url=f"smtp://127.0.0.1:{controller.port}?from=noreply@shop.example")
    seed_outbox(empty_db, [user_row("u1")], [message_row("k-email", "u1", channel="email")])

    assert relay_pending(smtp_settings) == {"sent": 1}

    [received] = handler.received
    assert received.mail_from == "noreply@shop.example"
    assert received.rcpt_tos == ["u1@example.com"]
    parsed = email.message_from_bytes(received.data, policy=policy.default)
    assert parsed["Subject"] == "Picked for you: Trail runner"
    assert parsed["To"] == "u1@example.com"
    assert parsed["Message-ID"] == message_id_for("k-email", "shop.example")
    assert parsed["X-Idempotency-Key"] == "k-email"
    assert parsed.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content() for part in parsed.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "Trail runner for 59.00, because you viewed Road runner." in parts["text/plain"]
    assert "<strong>Trail runner</strong>" in parts["text/html"]
    row = ledger_row(empty_db, "k-email")
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert [(a.attempt, a.outcome, a.channel) for a in attempts_of(empty_db, "k-email")] == [(1, "sent", "email")]


def test_starttls_and_login_over_a_trusted_certificate(certificate):
    handler = MailHandler()
    options = {
        "tls_context": certificate.server_context(),
        "require_starttls": True,
        "authenticator": _login_checker,
        "auth_required": True,
    }
    with smtp_server(handler, **options) as controller:
        channel = SmtpChannel.from_url(
            f"smtp://relay:p%40ss%20word@127.0.0.1:{controller.port}?starttls=1&from=noreply@shop.example",
            timeout=2.0,
            ssl_context=certificate.client_context(),
        )
        channel.send(_message_for())
    [received] = handler.received
    assert (received.tls, received.authenticated) == (True, True)
    assert received.rcpt_tos == ["bob@example.com"]


def test_tls_problems_are_permanent_with_a_clear_reason(certificate, mail):
    _, plain = mail
    # 1. starttls=1 against a server that does not offer STARTTLS: never fall back to clear text.
    no_tls = SmtpChannel("127.0.0.1", plain.port, "noreply@shop.example", starttls=True, timeout=2.0)
    with pytest.raises(PermanentDeliveryError, match="does not offer STARTTLS; refusing to send in clear text"):
        no_tls.send(_message_for())

    handler = MailHandler()
    with smtp_server(handler, tls_context=certificate.server_context(), require_starttls=True) as secure:
        # 2. A certificate the client does not trust (system store only).
        untrusted = SmtpChannel("127.0.0.1", secure.port, "noreply@shop.example", starttls=True, timeout=2.0)
        with pytest.raises(PermanentDeliveryError, match="TLS certificate not trusted"):
            untrusted.send(_message_for())
        # 3. A server that requires STARTTLS, a client configured without it: 530 from the server.
        clear = SmtpChannel("127.0.0.1", secure.port, "noreply@shop.example", timeout=2.0)
        with pytest.raises(PermanentDeliveryError, match="530"):
            clear.send(_message_for())
    assert handler.received == []


def test_smtp_replies_and_hangs_are_classified(mail):
    handler, controller = mail
    channel = SmtpChannel("127.0.0.1", controller.port, "noreply@shop.example", timeout=TIMEOUT)
    handler.script.extend(["451", "550", "hang"])
    with pytest.raises(TransientDeliveryError, match=r"451 4\.3\.0"):
        channel.send(_message_for())
    with pytest.raises(PermanentDeliveryError, match=r"550 5\.1\.1"):
        channel.send(_message_for())
    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match="timed out"):
        channel.send(_message_for())
    assert time.monotonic() - started < TIMEOUT + 1.0  # the client's timeout, not the 1.5 s hang
    with pytest.raises(PermanentDeliveryError, match="no e-mail address"):
        channel.send(_message_for(address=None))
    closed = SmtpChannel("127.0.0.1", free_port(), "noreply@shop.example", timeout=TIMEOUT)
    with pytest.raises(TransientDeliveryError, match="ConnectionRefusedError"):
        closed.send(_message_for())
    assert handler.received == []


def test_smtp_deferral_is_retried_and_rejection_is_dead_lettered_without_the_address(empty_db, relay_settings, mail):
    handler, controller = mail
    smtp_settings = replace(relay_settings, smtp_url=f"smtp://127.0.0.1:{controller.port}?from=noreply@shop.example")
    seed_outbox(empty_db, [user_row("u1"), user_row("u2")], [message_row("k-a", "u1", "email")])
    handler.script.extend(["451"])
    assert relay_pending(smtp_settings, max_wait_seconds=2.0) == {"sent": 1, "retry": 1}
    assert [a.outcome for a in attempts_of(empty_db, "k-a")] == ["retry", "sent"]
    assert len(handler.received) == 1

    seed_outbox(empty_db, [], [message_row("k-b", "u2", "email")])
    handler.script.extend(["550"])
    assert relay_pending(smtp_settings, max_wait_seconds=2.0) == {"dead": 1}
    row = ledger_row(empty_db, "k-b")
    assert (row.status, row.attempts) == ("dead", 1)
    assert "550 5.1.1 <<address>>: recipient unknown" in row.last_error
    assert "u2@example.com" not in row.last_error
    assert [(a.outcome, a.error) for a in attempts_of(empty_db, "k-b")] == [("dead", row.last_error)]


# --- HTTP gateway ---------------------------------------------------------------------------


def test_gateway_errors_are_retried_with_backoff_until_sent(empty_db, relay_settings, gateway):
    seed_outbox(empty_db, [user_row("u1")], [message_row("k-push", "u1")])
    gateway.respond(("status", 500), ("status", 500))

    result = relay_pending(replace(relay_settings, relay_max_attempts=5), max_wait_seconds=3.0)

    assert result == {"sent": 1, "retry": 2}
    attempts = attempts_of(empty_db, "k-push")
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "retry"), (2, "retry"), (3, "sent")]
    assert "HTTP 500" in attempts[0].error
    assert attempts[2].error is None
    # Full-jitter bounds: the n-th wait is in [0.5, 1.0] x base x 2**(n-1).
    gaps = [(b.attempted_at - a.attempted_at).total_seconds() for a, b in itertools.pairwise(attempts)]
    # Upper bounds leave room for a loaded machine; the lower bounds are the real check.
    assert 0.025 <= gaps[0] < 0.05 + 1.5
    assert 0.05 <= gaps[1] < 0.1 + 1.5
    row = ledger_row(empty_db, "k-push")
    assert (row.status, row.attempts, row.last_error, row.next_attempt_at) == ("sent", 3, None, None)
    assert gateway.keys() == {"k-push": 3}
    assert all(request.verified for request in gateway.requests)
    delivered = gateway.delivered["k-push"]
    assert delivered == {
        "idempotency_key": "k-push",
        "user_id": "u1",
        "channel": "push",
        "address": "token-u1",
        "title": "Picked for you: Trail runner",
        "body": "Trail runner for 59.00, because you viewed Road runner.",
        "source": "svd",
        "item_id": "i1",
        "sent_at": delivered["sent_at"],
    }
    assert gateway.requests[0].path == "/push"
    assert gateway.requests[0].headers["Content-Type"] == "application/json"
    assert gateway.requests[0].headers["Idempotency-Key"] == "k-push"


def test_retry_after_from_the_gateway_is_honoured(empty_db, relay_settings, gateway):
    seed_outbox(empty_db, [user_row("u1")], [message_row("k-429", "u1")])
    gateway.respond(("status", 429, {"Retry-After": "1"}))

    assert relay_pending(relay_settings) == {"retry": 1}
    row = ledger_row(empty_db, "k-429")
    [first] = attempts_of(empty_db, "k-429")
    waited = (row.next_attempt_at - first.attempted_at).total_seconds()
    assert 1.0 <= waited < 3.0  # the gateway's 1 s, not the 0.05 s backoff
    assert relay_pending(relay_settings) == {}  # not due yet

    assert relay_pending(relay_settings, max_wait_seconds=2.0) == {"sent": 1}
    first_request, second_request = gateway.requests
    assert second_request.at - first_request.at >= 0.95
    assert [a.outcome for a in attempts_of(empty_db, "k-429")] == ["retry", "sent"]


def test_slow_gateway_times_out_and_is_dead_lettered_with_nothing_lost(empty_db, relay_settings, gateway):
    seed_outbox(empty_db, [user_row("u1")], [message_row("k-slow", "u1")])
    gateway.respond(("slow", 0.6), ("slow", 0.6), ("slow", 0.6))

    started = time.monotonic()
    assert relay_pending(relay_settings, max_wait_seconds=3.0) == {"retry": 2, "dead": 1}
    assert time.monotonic() - started < 3 * (TIMEOUT + 0.3) + 0.5

    row = ledger_row(empty_db, "k-slow")
    assert (row.status, row.attempts, row.next_attempt_at) == ("dead", 3, None)
    assert "timed out after 0.3s" in row.last_error
    assert "gave up after 3 attempts" in row.last_error
    attempts = attempts_of(empty_db, "k-slow")
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "retry"), (2, "retry"), (3, "dead")]
    assert all("timed out" in a.error for a in attempts)
    assert gateway.keys() == {"k-slow": 3}
    assert gateway.delivered == {}


def test_rejected_request_is_dead_lettered_at_once(empty_db, relay_settings, gateway):
    seed_outbox(empty_db, [user_row("u1"), user_row("u2")], [message_row("k-400", "u1"), message_row("k-302", "u2")])
    gateway.respond(("status", 400), ("status", 302, {"Location": "http://127.0.0.1:9/elsewhere"}))

    assert relay_pending(relay_settings, max_wait_seconds=2.0) == {"dead": 2}

    row = ledger_row(empty_db, "k-400")
    assert (row.status, row.attempts) == ("dead", 1)
    assert "HTTP 400" in row.last_error
    assert "scripted 400" in row.last_error
    assert "redirects are not followed" in ledger_row(empty_db, "k-302").last_error
    assert gateway.keys() == {"k-400": 1, "k-302": 1}


def test_a_delivered_message_reaches_the_gateway_once(empty_db, relay_settings, gateway):
    users = [user_row(f"u{n}") for n in range(3)]
    seed_outbox(empty_db, users, [message_row(f"k-{n}", f"u{n}") for n in range(3)])

    assert relay_pending(relay_settings) == {"sent": 3}
    later = datetime.now(UTC) + timedelta(hours=2)
    assert relay_pending(relay_settings) == {}
    assert relay_pending(relay_settings, until=later, max_wait_seconds=1.0) == {}

    assert gateway.keys() == {"k-0": 1, "k-1": 1, "k-2": 1}
    assert gateway.duplicates == 0


def test_two_racing_relays_deliver_every_message_exactly_once(empty_db, relay_settings, gateway):
    count = 200
    users = [user_row(f"u{n:03d}") for n in range(count)]
    seed_outbox(empty_db, users, [message_row(f"k-{n:03d}", f"u{n:03d}") for n in range(count)])
    barrier = threading.Barrier(2)
    results, errors = [], []

    def relay() -> None:
        try:
            barrier.wait()
            results.append(relay_pending(relay_settings))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(result.get("sent", 0) for result in results) == count
    assert all(set(result) <= {"sent"} for result in results)
    assert gateway.keys() == {f"k-{n:03d}": 1 for n in range(count)}
    assert gateway.duplicates == 0
    with empty_db.connect() as conn:
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM push.notification_ledger GROUP BY 1")).all())
        logged = dict(conn.execute(text("SELECT outcome, count(*) FROM push.delivery_attempts GROUP BY 1")).all())
    assert statuses == {"sent": count}
    assert logged == {"sent": count}


def test_opt_out_while_pending_cancels_and_never_delivers(empty_db, relay_settings, gateway):
    now = datetime.now(UTC)
    users = [user_row(f"u{n}") for n in range(4)]
    messages = [message_row(f"k-{n}", f"u{n}", scheduled_at=now - timedelta(minutes=10 - n)) for n in range(4)]
    seed_outbox(empty_db, users, messages)
    with empty_db.begin() as conn:  # opted out after planning, before the relay
        conn.execute(text("UPDATE push.users SET consent_push = false WHERE user_id = 'u1'"))

    def opt_out_u3_during_the_pass(request: GatewayRequest) -> None:
        if request.key == "k-0":
            with empty_db.begin() as conn:
                conn.execute(text("UPDATE push.users SET consent_push = false WHERE user_id = 'u3'"))

    gateway.on_request = opt_out_u3_during_the_pass

    assert relay_pending(relay_settings) == {"sent": 2, "cancelled": 2}

    assert set(gateway.keys()) == {"k-0", "k-2"}
    for key in ("k-1", "k-3"):
        row = ledger_row(empty_db, key)
        assert (row.status, row.attempts, row.last_error) == ("cancelled", 0, "consent withdrawn")
        assert [a.outcome for a in attempts_of(empty_db, key)] == ["cancelled"]


def test_expiry_and_scheduled_time_are_respected(empty_db, relay_settings, gateway):
    now = datetime.now(UTC)
    users = [user_row(f"u{n}") for n in range(4)]
    messages = [
        message_row("k-expired", "u0", expires_at=now - timedelta(seconds=1)),
        message_row("k-later", "u1", scheduled_at=now + timedelta(hours=1), expires_at=now + timedelta(hours=3)),
        # Waiting for a retry that would come after its expiry: expired now, not retried.
        message_row(
            "k-waiting", "u2", next_attempt_at=now + timedelta(hours=1), expires_at=now + timedelta(minutes=30)
        ),
        message_row("k-due", "u3"),
    ]
    seed_outbox(empty_db, users, messages)

    assert relay_pending(relay_settings, until=now) == {"sent": 1, "expired": 1}
    assert (ledger_row(empty_db, "k-expired").status, ledger_row(empty_db, "k-waiting").status) == (
        "expired",
        "pending",
    )
    assert [(a.outcome, a.error) for a in attempts_of(empty_db, "k-expired")] == [
        ("expired", "expired before delivery")
    ]
    later = ledger_row(empty_db, "k-later")
    assert (later.status, later.attempts) == ("pending", 0)
    assert attempts_of(empty_db, "k-later") == []

    assert relay_pending(relay_settings, until=now + timedelta(hours=2)) == {"sent": 1, "expired": 1}
    assert ledger_row(empty_db, "k-waiting").status == "expired"
    assert ledger_row(empty_db, "k-later").status == "sent"
    assert gateway.keys() == {"k-due": 1, "k-later": 1}


def test_signature_is_verified_with_the_right_secret_and_rejected_with_a_wrong_one(empty_db, relay_settings, gateway):
    seed_outbox(empty_db, [user_row("u1"), user_row("u2")], [message_row("k-good", "u1")])
    assert relay_pending(relay_settings) == {"sent": 1}
    good = gateway.requests[0]
    assert good.verified
    assert verify_signature(
        SECRET, good.headers["X-Push-Timestamp"], good.raw, good.headers["X-Push-Signature"], tolerance_seconds=60
    )
    assert not verify_signature(
        "other", good.headers["X-Push-Timestamp"], good.raw, good.headers["X-Push-Signature"], tolerance_seconds=60
    )

    seed_outbox(empty_db, [], [message_row("k-forged", "u2")])
    assert relay_pending(replace(relay_settings, gateway_secret="wrong-secret")) == {"dead": 1}
    assert not gateway.requests[1].verified
    assert "HTTP 401" in ledger_row(empty_db, "k-forged").last_error
    assert set(gateway.delivered) == {"k-good"}


def test_webhooks_go_to_the_users_own_url_and_unconfigured_channels_to_files(empty_db, relay_settings, gateway):
    settings = replace(relay_settings, push_gateway_url="")
    users = [user_row("u1", webhook_url=gateway.url + "/hooks/u1"), user_row("u2", webhook_url="ftp://example.com/x")]
    messages = [
        message_row("k-hook", "u1", "webhook"),
        message_row("k-ftp", "u2", "webhook"),
        message_row("k-file", "u1"),
    ]
    seed_outbox(empty_db, users, messages)

    assert relay_pending(settings) == {"sent": 2, "dead": 1}

    [request] = gateway.requests
    assert (request.path, request.key, request.verified) == ("/hooks/u1", "k-hook", True)
    assert request.body["address"] == gateway.url + "/hooks/u1"
    assert "must be an http(s):// URL" in ledger_row(empty_db, "k-ftp").last_error
    written = json.loads((settings.outbox_dir / "push" / "k-file.json").read_text())
    assert written["address"] == "token-u1"
    assert written["content"]["title"] == "Picked for you: Trail runner"


def test_unrenderable_payloads_and_missing_addresses_are_dead_letters(empty_db, relay_settings, gateway):
    no_title = {k: v for k, v in FACTS.items() if k != "item_title"}
    users = [user_row("u1"), user_row("u2", push_token=None), user_row("u3")]
    messages = [
        message_row("k-render", "u1", payload={"locale": "en", "facts": no_title}),
        message_row("k-nobody", "u2"),
        message_row("k-legacy", "u3", payload={"title": "Already rendered", "body": "As planned"}),
    ]
    seed_outbox(empty_db, users, messages)

    assert relay_pending(relay_settings) == {"sent": 1, "dead": 2}

    render = ledger_row(empty_db, "k-render")
    assert (render.status, render.attempts) == ("dead", 1)
    assert "render failed: UndefinedError" in render.last_error
    assert "item_title" in render.last_error
    assert ledger_row(empty_db, "k-nobody").last_error == "no push address for the user"
    assert gateway.keys() == {"k-legacy": 1}
    assert (gateway.delivered["k-legacy"]["title"], gateway.delivered["k-legacy"]["body"]) == (
        "Already rendered",
        "As planned",
    )


def test_unclassified_channel_errors_are_transient_and_retried_on_a_later_pass(empty_db, relay_settings):
    class Broken:
        name = "broken"

        def send(self, message: OutboundMessage) -> None:
            raise ConnectionError("gateway down")

    seed_outbox(empty_db, [user_row("u1")], [message_row("k-broken", "u1")])
    settings = replace(relay_settings, retry_base_seconds=0.0, retry_max_seconds=0.0)
    channels = {"push": Broken()}

    assert relay_pending(settings, channels, max_attempts=2) == {"retry": 1}  # once per pass
    assert ledger_row(empty_db, "k-broken").last_error == "ConnectionError: gateway down"
    assert relay_pending(settings, channels, max_attempts=2) == {"dead": 1}
    assert relay_pending(settings, channels, max_attempts=2) == {}
    row = ledger_row(empty_db, "k-broken")
    assert (row.status, row.attempts) == ("dead", 2)
    assert row.last_error == "ConnectionError: gateway down (gave up after 2 attempts)"


def test_the_rate_limit_spaces_out_sends(empty_db, relay_settings, gateway):
    count = 30
    seed_outbox(
        empty_db, [user_row(f"u{n}") for n in range(count)], [message_row(f"k-{n:02d}", f"u{n}") for n in range(count)]
    )
    # A bucket of 20 at 20/s: 30 sends need at least (30 - 20) / 20 = 0.5 s, however fast the gateway.
    assert relay_pending(replace(relay_settings, channel_rate_limits={"push": 20.0})) == {"sent": count}
    span = gateway.requests[-1].at - gateway.requests[0].at
    assert 0.45 <= span < 3.0


def test_http_channel_connection_errors_are_transient():
    channel = HttpGatewayChannel("push", f"http://127.0.0.1:{free_port()}/push", SECRET, timeout=TIMEOUT)
    message = replace(_message_for(), channel="push", address="token-u1")
    with pytest.raises(TransientDeliveryError, match="cannot connect"):
        channel.send(message)
    with pytest.raises(PermanentDeliveryError, match="no address"):
        channel.send(replace(message, address=None))


def test_cli_relays_with_the_configured_channels(empty_db, settings):
    now = datetime.now(UTC)
    seed_outbox(empty_db, [user_row("u1")], [message_row("k-cli", "u1", scheduled_at=now + timedelta(minutes=30))])
    output = io.StringIO()
    with redirect_stdout(output):
        assert relay_main(["--until", (now + timedelta(hours=1)).isoformat()]) == 0
    assert json.loads(output.getvalue()) == {"sent": 1}
    channels = build_channels(settings)
    assert isinstance(channels["push"], FileSink)
    assert (Path(settings.outbox_dir) / "push" / "k-cli.json").exists()
