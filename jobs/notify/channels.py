"""Delivery channels behind one small interface.

Each adapter takes an :class:`OutboundMessage` and either returns (the provider accepted it) or
raises. The relay only needs to know whether a failure is worth retrying, so adapters translate
their protocol's errors into :class:`TransientDeliveryError` (retry later, optionally after a
``retry_after`` the provider asked for) or :class:`PermanentDeliveryError` (retrying cannot help);
anything else an adapter raises is treated as transient by the relay.

Adapters:

- :class:`FileSink`: the demo channel, one JSON file per idempotency key, so a re-delivery
  overwrites instead of duplicating (the exactly-once effect real gateways get from the key).
- :class:`SmtpChannel`: e-mail over SMTP (optionally STARTTLS and AUTH), multipart text + HTML,
  with a ``Message-ID`` derived from the idempotency key so that a repeat is recognisable.
- :class:`HttpGatewayChannel`: signed JSON POSTs to a push/SMS gateway or to a user's webhook,
  carrying the key in an ``Idempotency-Key`` header. Receivers check the signature with
  :func:`verify_signature`.

:class:`RateLimiter` is the token bucket the relay applies per channel, and
:func:`build_channels` picks the adapters from :class:`~jobs.core.config.Settings`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import math
import os
import re
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

if TYPE_CHECKING:
    from jobs.core.config import Settings

CHANNEL_NAMES = ("push", "email", "sms", "webhook")
SIGNATURE_PREFIX = "sha256="
# Statuses after which the same request may succeed later (timeouts, conflicts with an
# in-flight request carrying the same idempotency key, throttling, "too early").
RETRYABLE_HTTP_STATUSES = frozenset({408, 409, 425, 429})
# Longest error detail (characters) kept from a provider's reply.
_DETAIL_LIMIT = 300
# Most bytes read from a successful reply (webhook receivers are not trusted).
_RESPONSE_LIMIT = 64 * 1024


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message on its way to a provider.

    Attributes:
        idempotency_key: The ledger key; providers use it to drop repeats of the same message.
        user_id: Recipient's pipeline id.
        channel: ``push``, ``email``, ``sms`` or ``webhook``.
        address: E-mail address, phone number, push token or webhook URL, read from
            ``push.users`` at send time so that the ledger never stores PII; ``None`` when the
            user has none for this channel.
        content: ``title`` and ``body`` (and ``html`` for e-mail).
        source: Why the message exists (recommendation, campaign, trigger, ...).
        item_id: The item the message is about, if any.
        platform: For ``push``, the user's push platform (``fcm``, ``gateway``; ``None`` is the
            gateway), which picks the provider.
        expires_at: When the message stops being worth showing (providers get it as a TTL).
    """

    idempotency_key: str
    user_id: str
    channel: str
    address: str | None
    content: dict
    source: str
    item_id: str | None
    platform: str | None = None
    expires_at: datetime | None = None


class DeliveryError(Exception):
    """A provider refused or could not take a message."""


class TransientDeliveryError(DeliveryError):
    """A failure that may go away: retry later.

    Args:
        message: What went wrong (kept as the ledger's ``last_error``).
        retry_after: Seconds the provider asked us to wait (``Retry-After``), if it said.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """A failure that retrying cannot fix (bad address, rejected content, configuration)."""


class DeadTokenError(PermanentDeliveryError):
    """The provider says the device token (or subscription) will never work again.

    The relay retires the token (``push.dead_tokens``) so that no plan picks it again.

    Args:
        message: What went wrong.
        platform: Whose token (``fcm``, ...).
        answer: The provider's answer, as recorded (status and error code, no token).
    """

    def __init__(self, message: str, platform: str, answer: str) -> None:
        super().__init__(message)
        self.platform = platform
        self.answer = answer


class Channel(Protocol):
    """What the relay needs from a delivery adapter."""

    name: str

    def send(self, message: OutboundMessage) -> None:
        """Deliver ``message`` or raise (see the module docstring for the error contract)."""
        ...


# --- file sink ------------------------------------------------------------------------------

_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


@dataclass
class FileSink:
    """Writes messages as JSON files under ``folder/<channel>/<idempotency_key>.json``.

    A repeat of the same key overwrites the same file, which gives the exactly-once effect a
    real provider gets from the idempotency key. Keys that are not plain file names are hashed
    so a key can never point outside the folder.
    """

    folder: Path
    name: str = "file"

    def send(self, message: OutboundMessage) -> None:
        key = message.idempotency_key
        stem = key if _SAFE_FILE_NAME.fullmatch(key) else hashlib.sha256(key.encode()).hexdigest()
        target = Path(self.folder) / message.channel / f"{stem}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        # A private temporary name per writer, so two relays repeating the same key never
        # interleave their bytes; os.replace makes the final file appear atomically.
        partial = target.with_name(f".{stem}.{os.getpid()}.{threading.get_ident()}.tmp")
        record = asdict(message)
        if message.expires_at is not None:
            record["expires_at"] = message.expires_at.isoformat()
        partial.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(partial, target)


# --- SMTP -----------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}


def message_id_for(idempotency_key: str, domain: str) -> str:
    """A stable RFC 5322 ``Message-ID`` for a key, so a repeated send carries the same id."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    return f"<{digest}@{domain}>"


class SmtpChannel:
    """E-mail over SMTP with ``smtplib``: one connection per message, multipart text + HTML.

    SMTP 4xx replies, lost connections and timeouts raise :class:`TransientDeliveryError`;
    5xx replies, a missing address and TLS problems (no STARTTLS offered, an untrusted
    certificate) raise :class:`PermanentDeliveryError`, because retrying the same message
    cannot fix them.

    Args:
        host: SMTP server.
        port: SMTP port (587 for submission with STARTTLS, 25 for relays).
        sender: Envelope and ``From`` address.
        username: Login, if the server wants AUTH.
        password: Password for ``username``.
        starttls: Upgrade the connection with STARTTLS before AUTH and MAIL; the message is
            never sent in clear text when this is set.
        timeout: Seconds for connecting and for each server reply.
        ssl_context: TLS settings for STARTTLS (default: system trust store, hostname check).
        name: Channel name used in logs.
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "email",
    ) -> None:
        if not sender or "@" not in sender:
            raise ValueError(f"SMTP sender must be an e-mail address, got {sender!r}")
        self.host = host
        self.port = int(port)
        self.sender = sender
        self.username = username
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.name = name

    def __repr__(self) -> str:
        return (
            f"SmtpChannel(host={self.host!r}, port={self.port}, sender={self.sender!r}, "
            f"username={self.username!r}, starttls={self.starttls}, timeout={self.timeout})"
        )

    @classmethod
    def from_url(
        cls, url: str, *, timeout: float | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> SmtpChannel:
        """Build a channel from ``smtp://user:pass@host:port?starttls=1&from=noreply@example.com``.

        User and password may be percent-encoded. The port defaults to 587 with STARTTLS and to
        25 without. ``timeout`` in the query overrides the ``timeout`` argument.

        Raises:
            ValueError: The URL is not ``smtp://``, has no host or no ``from`` address.
        """
        parts = urlsplit(url)
        if parts.scheme != "smtp":
            raise ValueError(f"SMTP URL must start with smtp://, got scheme {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("SMTP URL has no host")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        sender = query.get("from")
        if not sender:
            raise ValueError("SMTP URL needs a sender: add ?from=noreply@example.com")
        starttls = query.get("starttls", "0").strip().lower() in _TRUE
        if "timeout" in query:
            timeout = float(query["timeout"])
        return cls(
            host=parts.hostname,
            port=parts.port or (587 if starttls else 25),
            sender=sender,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            starttls=starttls,
            timeout=10.0 if timeout is None else timeout,
            ssl_context=ssl_context,
        )

    def build_email(self, message: OutboundMessage) -> EmailMessage:
        """The MIME message for ``message`` (text, plus an HTML alternative when rendered)."""
        if not message.address:
            raise PermanentDeliveryError("email: the user has no e-mail address")
        content = message.content
        email = EmailMessage()
        try:
            email["From"] = self.sender
            email["To"] = message.address
            # A subject is one line: a template's line breaks must not become header injection.
            email["Subject"] = " ".join(str(content.get("title", "")).split())
            email["Date"] = formatdate(usegmt=True)
            email["Message-ID"] = message_id_for(message.idempotency_key, self.sender.rsplit("@", 1)[1])
            email["X-Idempotency-Key"] = message.idempotency_key
        except ValueError as error:
            raise PermanentDeliveryError(f"email: invalid header: {error}") from None
        email.set_content(str(content.get("body", "")))
        if content.get("html"):
            email.add_alternative(str(content["html"]), subtype="html")
        return email

    def send(self, message: OutboundMessage) -> None:
        email = self.build_email(message)
        where = f"SMTP {self.host}:{self.port}"
        client: smtplib.SMTP | None = None
        try:
            # Host given to the constructor (not to connect()): STARTTLS checks the certificate
            # against the host smtplib remembers from there.
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            client.ehlo()
            if self.starttls:
                if not client.has_extn("starttls"):
                    raise PermanentDeliveryError(
                        f"{where} does not offer STARTTLS; refusing to send in clear text (starttls=1)"
                    )
                client.starttls(context=self.ssl_context or ssl.create_default_context())
                client.ehlo()
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(email, from_addr=self.sender, to_addrs=[message.address])
        except DeliveryError:
            if client is not None:
                client.close()
            raise
        except Exception as error:
            if client is not None:
                client.close()
            raise classify_smtp_error(error, where) from None
        # The server has accepted the message: a failing QUIT must not turn that into a retry
        # (which would send it twice).
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def classify_smtp_error(error: Exception, where: str = "SMTP") -> DeliveryError:
    """Translate an ``smtplib``/socket error into a transient or permanent delivery error."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        replies = list(error.recipients.values())
        detail = "; ".join(f"{code} {_text(reply)}" for code, reply in replies)
        if replies and all(400 <= code < 500 for code, _ in replies):
            return TransientDeliveryError(f"{where} deferred the recipient: {detail}")
        return PermanentDeliveryError(f"{where} refused the recipient: {detail}")
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return PermanentDeliveryError(f"{where}: {error}")
    if isinstance(error, smtplib.SMTPResponseException):
        reply = f"{error.smtp_code} {_text(error.smtp_error)}"
        if 500 <= error.smtp_code < 600:
            return PermanentDeliveryError(f"{where} rejected the message: {reply}")
        return TransientDeliveryError(f"{where} deferred the message: {reply}")
    if isinstance(error, ssl.SSLCertVerificationError):
        return PermanentDeliveryError(f"{where}: TLS certificate not trusted: {error.verify_message}")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return TransientDeliveryError(f"{where}: connection lost: {error}")
    if isinstance(error, TimeoutError):
        return TransientDeliveryError(f"{where}: timed out")
    if isinstance(error, (OSError, smtplib.SMTPException)):
        return TransientDeliveryError(f"{where}: {type(error).__name__}: {error}")
    return TransientDeliveryError(f"{where}: unexpected {type(error).__name__}: {error}")


def _text(value: bytes | str) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text[:_DETAIL_LIMIT]


# --- signed HTTP gateways and webhooks ------------------------------------------------------


def sign_payload(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``"<timestamp>.<body bytes>"``.

    The timestamp is inside the signed bytes so that a captured request cannot be replayed
    later with a fresh timestamp.
    """
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_seconds: float = 300.0,
    now: float | None = None,
) -> bool:
    """Check a request's ``X-Push-Signature`` the way a receiver should.

    Args:
        secret: The shared secret.
        timestamp: The ``X-Push-Timestamp`` header (unix seconds).
        body: The raw request body, exactly as received.
        signature: The ``X-Push-Signature`` header (``sha256=<hex>``).
        tolerance_seconds: Largest accepted distance between the timestamp and ``now``; bounds
            how long a captured request can be replayed.
        now: Current unix time (default: ``time.time()``).

    Returns:
        True only for a well-formed, fresh timestamp and a matching signature (compared in
        constant time, so the comparison leaks nothing about the expected value).
    """
    if not secret or not timestamp or not signature:
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_seconds:
        return False
    try:
        expected = sign_payload(secret, timestamp, body)
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("utf-8", "replace"))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay seconds or an HTTP date).

    Returns ``None`` for a missing or unreadable value, never a negative or infinite delay.
    """
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow redirects: a signed POST must not be replayed (or turned into a GET) elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl) -> None:
        return None


class HttpGatewayChannel:
    """Signed JSON POSTs to a push/SMS gateway, or to the user's own webhook.

    The body is JSON with ``idempotency_key, user_id, channel, address, title, body, source,
    item_id, sent_at``. Headers: ``Idempotency-Key`` (the gateway drops repeats),
    ``X-Push-Timestamp`` (unix seconds) and ``X-Push-Signature`` (see :func:`sign_payload`).
    2xx is success; 408/409/425/429, 5xx, timeouts and connection errors are transient
    (a numeric or HTTP-date ``Retry-After`` is passed on); redirects and other 4xx are
    permanent.

    Args:
        name: Channel name (``push``, ``sms``, ``webhook``), also sent in the payload.
        url: The gateway endpoint; ``None`` posts to each message's address (webhooks), which
            must then be an ``http(s)://`` URL.
        secret: Shared HMAC secret; required, an unsigned request could be forged by anyone.
        timeout: Seconds for connecting and for each read.
        clock: Unix-time source for the signature timestamp (tests pin it).
    """

    def __init__(
        self,
        name: str,
        url: str | None,
        secret: str,
        timeout: float = 10.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError(f"{name}: a gateway secret is required to sign requests (PUSH_GATEWAY_SECRET)")
        if url is not None:
            _check_http_url(url, f"{name} gateway URL")
        self.name = name
        self.url = url
        self._secret = secret
        self.timeout = timeout
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"HttpGatewayChannel(name={self.name!r}, url={self.url!r}, timeout={self.timeout})"

    def request_for(self, message: OutboundMessage) -> urllib.request.Request:
        """The signed request that :meth:`send` would make for ``message``."""
        if not message.address:
            raise PermanentDeliveryError(f"{self.name}: the user has no address for this channel")
        target = self.url
        if target is None:
            try:
                _check_http_url(message.address, "webhook URL")
            except ValueError as error:
                raise PermanentDeliveryError(f"{self.name}: {error}") from None
            target = message.address
        now = self._clock()
        body = json.dumps(
            {
                "idempotency_key": message.idempotency_key,
                "user_id": message.user_id,
                "channel": message.channel,
                "address": message.address,
                "title": message.content.get("title"),
                "body": message.content.get("body"),
                "source": message.source,
                "item_id": message.item_id,
                "sent_at": datetime.fromtimestamp(now, UTC).isoformat(),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        timestamp = str(int(now))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
            "X-Push-Timestamp": timestamp,
            "X-Push-Signature": sign_payload(self._secret, timestamp, body),
            "User-Agent": "push-pipeline-relay/1",
        }
        return urllib.request.Request(target, data=body, headers=headers, method="POST")

    def send(self, message: OutboundMessage) -> None:
        request = self.request_for(message)
        where = f"{self.name} gateway"
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(_RESPONSE_LIMIT)  # the reply is not needed; a receiver cannot make us read forever
        except urllib.error.HTTPError as error:
            raise classify_http_error(error, where) from None
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise PermanentDeliveryError(f"{where}: TLS certificate not trusted: {reason.verify_message}") from None
            if isinstance(reason, TimeoutError):
                raise TransientDeliveryError(f"{where}: timed out after {self.timeout:g}s") from None
            raise TransientDeliveryError(f"{where}: cannot connect: {reason}") from None
        except TimeoutError:
            raise TransientDeliveryError(f"{where}: timed out after {self.timeout:g}s") from None
        except (OSError, http.client.HTTPException) as error:
            raise TransientDeliveryError(f"{where}: {type(error).__name__}: {error}") from None


def classify_http_error(error: urllib.error.HTTPError, where: str = "gateway") -> DeliveryError:
    """Translate an HTTP error reply into a transient or permanent delivery error."""
    try:
        detail = _text(error.read(_DETAIL_LIMIT)).strip()
    except (OSError, http.client.HTTPException):
        detail = ""
    finally:
        error.close()
    status = error.code
    summary = f"{where} answered HTTP {status} {error.reason}" + (f": {detail}" if detail else "")
    if status in RETRYABLE_HTTP_STATUSES or status >= 500:
        retry_after = parse_retry_after(error.headers.get("Retry-After") if error.headers else None)
        return TransientDeliveryError(summary, retry_after=retry_after)
    if 300 <= status < 400:
        return PermanentDeliveryError(f"{where} answered HTTP {status} (redirects are not followed)")
    return PermanentDeliveryError(summary)


def _check_http_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http(s):// URL with a host")


# --- rate limiting --------------------------------------------------------------------------


class RateLimiter:
    """Token bucket: on average ``rate_per_second`` sends, bursts of up to ``burst``.

    Providers throttle (and eventually block) senders that exceed their agreed rate, so the
    relay waits here rather than collecting 429s. Waiting callers reserve their token first and
    then sleep outside the lock, so threads sharing a limiter are served in arrival order.

    Args:
        rate_per_second: Sustained rate (> 0).
        burst: Bucket size (>= 1); default ``max(1, rate_per_second)``. The bucket starts full.
        clock: Monotonic seconds (tests pass a fake).
        sleep: How to wait (tests pass a fake that advances the fake clock).
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_per_second > 0:
            raise ValueError(f"rate_per_second must be > 0, got {rate_per_second}")
        self.rate = float(rate_per_second)
        self.burst = float(max(1.0, rate_per_second) if burst is None else burst)
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting if the bucket is empty; return the seconds waited."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


def build_rate_limiters(limits: dict[str, float]) -> dict[str, RateLimiter]:
    """One limiter per channel with a positive rate; channels without one are not limited."""
    return {channel: RateLimiter(rate) for channel, rate in limits.items() if rate and rate > 0}


# --- shared by the push providers -------------------------------------------------------------


class CachedToken:
    """A provider credential made by :meth:`make` and reused, across threads, until the renewal
    time ``make`` returned; :meth:`drop` forgets it (the provider refused it). ``made`` counts them."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.made = 0

    def make(self, now: float) -> tuple[str, float]:
        """A new credential at unix time ``now`` and when to make the next one."""
        raise NotImplementedError

    def get(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._renew_at:
                self._token, self._renew_at = self.make(now)
                self.made += 1
            return self._token

    def drop(self) -> None:
        with self._lock:
            self._token = None


def post(client: httpx.Client, where: str, url: str, **request) -> httpx.Response:
    """``client.post`` (httpx) with timeouts and connection failures as :class:`TransientDeliveryError`."""
    try:
        return client.post(url, **request)
    except httpx.TimeoutException:
        raise TransientDeliveryError(f"{where}: timed out") from None
    except httpx.TransportError as error:
        raise TransientDeliveryError(f"{where}: connection failed: {type(error).__name__}") from None


def seconds_left(expires_at: datetime | None, now: float) -> int | None:
    """Whole seconds from ``now`` (unix time) to ``expires_at``, at least 0; None without an expiry."""
    if expires_at is None:
        return None
    return max(0, int((expires_at - datetime.fromtimestamp(now, UTC)).total_seconds()))


# --- wiring ---------------------------------------------------------------------------------


# What to set for each push platform's provider.
PROVIDER_SETTINGS = {
    "fcm": "set PUSH_FCM_SERVICE_ACCOUNT",
    "webpush": "set PUSH_WEBPUSH_VAPID_KEY and PUSH_WEBPUSH_SUBJECT",
    "apns": "set PUSH_APNS_KEY, PUSH_APNS_KEY_ID, PUSH_APNS_TEAM_ID and PUSH_APNS_TOPIC",
}


class PushRouter:
    """The ``push`` channel: each message goes to the provider of the user's push platform.

    Users without a platform (snapshots from before ``push_platform`` existed) and those on
    ``gateway`` use ``default`` (the signed gateway, or the file sink); a platform whose provider
    is not configured is a permanent error naming the setting to fix. Built only when a
    provider is configured: with none, ``default`` takes every push message.
    """

    name = "push"

    def __init__(
        self, default: Channel, providers: dict[str, Channel], limiters: dict[str, RateLimiter] | None = None
    ) -> None:
        self.default = default
        self.providers = providers
        # Per provider, within the push channel's own limit (each provider has its own quota).
        self.limiters = limiters or {}

    def __repr__(self) -> str:
        return f"PushRouter(default={self.default!r}, providers={self.providers!r})"

    def send(self, message: OutboundMessage) -> None:
        platform = message.platform or "gateway"
        if platform == "gateway":
            return self.default.send(message)
        provider = self.providers.get(platform)
        if provider is None:
            setting = PROVIDER_SETTINGS.get(platform, "no adapter exists for it yet")
            raise PermanentDeliveryError(f"push: the user's platform is {platform!r}: {setting}")
        if platform in self.limiters:
            self.limiters[platform].acquire()
        return provider.send(message)


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The adapter for each channel from the settings; unconfigured channels use the file sink.

    - ``email``: :class:`SmtpChannel` when ``smtp_url`` is set.
    - ``push`` / ``sms``: :class:`HttpGatewayChannel` to ``push_gateway_url`` /
      ``sms_gateway_url`` when set (then ``gateway_secret`` is required); ``push`` is a
      :class:`PushRouter` that sends users on ``fcm`` through ``jobs.notify.fcm`` when
      ``fcm_service_account`` is set, and users on ``webpush`` through ``jobs.notify.webpush``
      when ``webpush_vapid_key`` is set, and users on ``apns`` through ``jobs.notify.apns``
      when ``apns_key`` is set.
    - ``webhook``: :class:`HttpGatewayChannel` posting to each user's own URL when
      ``gateway_secret`` is set (webhook receivers need a signature to trust the request).
    """
    sink = FileSink(Path(settings.outbox_dir))
    timeout = settings.gateway_timeout_seconds
    secret = settings.gateway_secret
    channels: dict[str, Channel] = dict.fromkeys(CHANNEL_NAMES, sink)
    if settings.smtp_url:
        channels["email"] = SmtpChannel.from_url(settings.smtp_url, timeout=timeout)
    if settings.push_gateway_url:
        channels["push"] = HttpGatewayChannel("push", settings.push_gateway_url, secret, timeout)
    if settings.sms_gateway_url:
        channels["sms"] = HttpGatewayChannel("sms", settings.sms_gateway_url, secret, timeout)
    if secret:
        channels["webhook"] = HttpGatewayChannel("webhook", None, secret, timeout)
    providers: dict[str, Channel] = {}
    if settings.fcm_service_account:
        from jobs.notify.fcm import FcmChannel, ServiceAccount

        account = ServiceAccount.from_file(settings.fcm_service_account)
        providers["fcm"] = FcmChannel(account, settings.fcm_endpoint, timeout)
    if settings.webpush_vapid_key:
        from jobs.notify.webpush import WebPushChannel

        providers["webpush"] = WebPushChannel(settings.webpush_vapid_key, settings.webpush_subject, timeout)
    if settings.apns_key:
        from jobs.notify.apns import ApnsChannel

        providers["apns"] = ApnsChannel(
            settings.apns_key,
            settings.apns_key_id,
            settings.apns_team_id,
            settings.apns_topic,
            settings.apns_endpoint,
            timeout,
        )
    if providers:  # without any, every push goes to the gateway or the file sink, as before
        limits = {name: rate for name, rate in settings.channel_rate_limits.items() if name in providers}
        channels["push"] = PushRouter(channels["push"], providers, build_rate_limiters(limits))
    return channels
