"""Relay pending outbox rows to their channels (the second half of the outbox pattern).

Guarantees:

- Rows are claimed one at a time with ``FOR UPDATE SKIP LOCKED``, so several relays can run at
  once without sending a row twice, and the row's new status is written in the transaction that
  claimed it, together with a row in ``push.delivery_attempts``. A crash can repeat at most the
  message in flight; it carries its idempotency key so the receiver can drop the repeat.
- Consent and the address are read from ``push.users`` in the claiming transaction: an opt-out
  committed after planning cancels the message (``cancelled``), and PII never enters the ledger.
- A row is due when ``scheduled_at <= until`` (the logical end of the slot; rows deferred by
  quiet hours wait for a later pass) and its ``next_attempt_at`` has passed. A pending row
  that would go out (at ``max(scheduled_at, as_of)``) at or after its ``expires_at`` is
  ``expired`` instead of sent.
- The payload is the render context (``{"locale": ..., "facts": {...}}``) and is rendered at
  send time; a rendering error, a missing address or a permanent provider error sends the row
  to ``dead`` at once. Transient errors (and any error a channel did not classify) are retried
  with exponential backoff and jitter, or after the provider's ``Retry-After``, until
  ``max_attempts``, then ``dead``. ``last_error`` and the attempts table keep the reason.
- Each channel is rate-limited by a token bucket (``settings.channel_rate_limits``, per relay
  process).

CLI: ``python -m jobs.notify.relay [--until ISO] [--max-wait-seconds S]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import Connection, RowMapping, text

from jobs.core.config import Settings
from jobs.core.db import load_query, make_engine
from jobs.core.timeutil import as_utc, parse_utc
from jobs.notify.channels import (
    Channel,
    DeadTokenError,
    OutboundMessage,
    PermanentDeliveryError,
    RateLimiter,
    TransientDeliveryError,
    build_channels,
    build_rate_limiters,
)
from jobs.notify.render import render_message
from jobs.privacy.pseudonym import pseudonym

log = logging.getLogger(__name__)

OUTCOMES = ("sent", "retry", "dead", "cancelled", "expired")
# A provider's Retry-After is honoured up to this many seconds (a hostile or broken receiver
# must not park a message for years).
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
_ERROR_LIMIT = 1000

CLAIM_NEXT = load_query("notify/relay_claim_next")

NEXT_RETRY_AT = """
SELECT min(next_attempt_at) FROM push.notification_ledger
WHERE status = 'pending' AND channel = ANY(CAST(:channels AS text[]))
  AND scheduled_at <= :until AND next_attempt_at > :now
"""

UPDATE_ROW = """
UPDATE push.notification_ledger
SET status = :status, attempts = attempts + :increment, last_error = :error, next_attempt_at = :next,
    sent_at = CASE WHEN :status = 'sent' THEN CAST(:at AS timestamptz) ELSE sent_at END
WHERE idempotency_key = :key
"""

# Numbered after the row's last logged attempt, so re-driving a dead letter (status reset to
# pending, attempts to 0) keeps its earlier history instead of colliding with it.
LOG_ATTEMPT = """
INSERT INTO push.delivery_attempts (idempotency_key, attempt, attempted_at, channel, outcome, error)
SELECT :key, coalesce(max(attempt), 0) + 1, :at, :channel, :outcome, :error
FROM push.delivery_attempts WHERE idempotency_key = :key
"""


class Clock(Protocol):
    """Time source of the relay: wall-clock ``now()`` (UTC) and ``sleep()``."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def backoff_seconds(attempt: int, base: float, maximum: float, rng: Callable[[], float] = random.random) -> float:
    """Delay before the retry that follows failed attempt number ``attempt`` (1-based).

    Exponential (``base * 2**(attempt-1)``, capped at ``maximum``) so a struggling provider gets
    room to recover, times a jitter factor in [0.5, 1.0] so that messages that failed together
    do not come back together.
    """
    ceiling = min(maximum, base * 2.0 ** min(max(attempt, 1) - 1, 62))
    return max(0.0, ceiling) * (0.5 + 0.5 * rng())


@dataclass(frozen=True)
class _Outcome:
    outcome: str
    error: str | None = None
    next_attempt_at: datetime | None = None
    dead_token: DeadTokenError | None = None

    @property
    def status(self) -> str:
        return "pending" if self.outcome == "retry" else self.outcome

    @property
    def counts_as_attempt(self) -> bool:
        return self.outcome in ("sent", "retry", "dead")


def relay_pending(
    settings: Settings,
    channels: dict[str, Channel] | None = None,
    until: datetime | None = None,
    max_attempts: int | None = None,
    max_wait_seconds: float = 0.0,
    clock: Clock | None = None,
    as_of: datetime | None = None,
) -> dict[str, int]:
    """Deliver the due outbox messages; return how many attempts ended in each outcome.

    Counts are per attempt, and only outcomes that occurred appear: a message that failed
    twice and then went through in the same pass adds ``retry: 2, sent: 1``.

    Args:
        settings: Database, retry, timeout and rate-limit settings.
        channels: Adapter per channel name (default: :func:`~jobs.notify.channels.build_channels`).
            Only rows of these channels are sent; expired rows of any channel are expired.
        until: Logical end of the slot (default: now). Rows scheduled later are left alone.
        as_of: The logical time of the pass (default: ``until``). A due row goes out at
            ``max(scheduled_at, as_of)``; if it expires by then it becomes ``expired``. Passing
            an ``until`` ahead of ``as_of`` delivers a whole planned horizon (a backfill or a
            demo) as if each message went out at its scheduled time.
        max_attempts: Attempts before a message is dead-lettered (default
            ``settings.relay_max_attempts``).
        max_wait_seconds: With 0 each row is attempted at most once per pass and retries wait
            for a later pass. Above 0, when nothing is due the pass sleeps until the earliest
            retry if it falls due within ``max_wait_seconds`` of the pass's start, so one pass
            can run a whole retry sequence (the pass stays bounded by this budget).
        clock: Time source (default: the system clock).

    Returns:
        E.g. ``{"sent": 38, "retry": 1, "cancelled": 1}`` (keys from :data:`OUTCOMES`).
    """
    clock = clock or SystemClock()
    channels = build_channels(settings) if channels is None else channels
    max_attempts = settings.relay_max_attempts if max_attempts is None else max_attempts
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
    limiters = build_rate_limiters(settings.channel_rate_limits)
    engine = make_engine(settings.database_url)
    started = clock.now()
    until = started if until is None else as_utc(until)
    as_of = until if as_of is None else as_utc(as_of)
    deadline = started + timedelta(seconds=max(0.0, max_wait_seconds))
    names = sorted(channels)
    counts: Counter[str] = Counter()
    tried_this_pass: list[str] = []
    while True:
        now = clock.now()
        with engine.begin() as conn:
            row = (
                conn.execute(
                    text(CLAIM_NEXT),
                    {"skip": tried_this_pass, "channels": names, "until": until, "as_of": as_of, "now": now},
                )
                .mappings()
                .one_or_none()
            )
            if row is not None:
                result = _deliver(conn, row, channels, limiters, settings, max_attempts, clock, now)
                counts[result.outcome] += 1
                if result.outcome == "retry" and max_wait_seconds <= 0:
                    tried_this_pass.append(row["idempotency_key"])
                continue
            if max_wait_seconds <= 0:
                break
            next_retry = conn.execute(
                text(NEXT_RETRY_AT), {"channels": names, "until": until, "now": now}
            ).scalar_one_or_none()
        if next_retry is None or next_retry > deadline:
            break
        # A millisecond past the retry time, so the next claim sees the row as due.
        clock.sleep(max(0.0, (next_retry - clock.now()).total_seconds()) + 0.001)
    summary = {outcome: counts[outcome] for outcome in OUTCOMES if counts[outcome]}
    log.info("relay until %s: %s", until.isoformat(), summary)
    return summary


def _deliver(
    conn: Connection,
    row: RowMapping,
    channels: dict[str, Channel],
    limiters: dict[str, RateLimiter],
    settings: Settings,
    max_attempts: int,
    clock: Clock,
    attempted_at: datetime,
) -> _Outcome:
    """Decide and record the fate of one claimed row inside the claiming transaction."""
    key, channel_name = row["idempotency_key"], row["channel"]
    if row["expired"]:
        result = _Outcome("expired", "expired before delivery")
    elif not row["consented"]:
        result = _Outcome("cancelled", "consent withdrawn")
    elif not row["address"]:
        result = _Outcome("dead", f"no {channel_name} address for the user")
    else:
        try:
            content = message_content(channel_name, row["payload"])
            if channel_name == "push":
                content = {**content, **push_links(settings, row["item_id"])}
        except Exception as error:  # a template or payload problem never fixes itself
            result = _Outcome("dead", f"render failed: {type(error).__name__}: {error}")
        else:
            message = OutboundMessage(
                idempotency_key=key,
                user_id=row["user_id"],
                channel=channel_name,
                address=row["address"],
                content=content,
                source=row["source"],
                item_id=row["item_id"],
                platform=row["platform"],
                expires_at=row["expires_at"],
            )
            result = _send(
                message,
                channels[channel_name],
                limiters.get(channel_name),
                settings,
                attempt=row["attempts"] + 1,
                max_attempts=max_attempts,
                clock=clock,
            )
    error = _redact(result.error, row["address"])
    conn.execute(
        text(UPDATE_ROW),
        {
            "status": result.status,
            "increment": 1 if result.counts_as_attempt else 0,
            "error": error,
            "next": result.next_attempt_at,
            "at": clock.now() if result.outcome == "sent" else None,
            "key": key,
        },
    )
    conn.execute(
        text(LOG_ATTEMPT),
        {"key": key, "at": attempted_at, "channel": channel_name, "outcome": result.outcome, "error": error},
    )
    if result.dead_token is not None:
        retire_token(conn, row["user_id"], result.dead_token, row["address"], key, settings.pseudonym_key)
    if result.outcome == "dead":
        log.warning("dead letter %s (%s) after %d attempt(s): %s", key, channel_name, row["attempts"] + 1, error)
    return result


def retire_token(conn: Connection, user_id: str, dead: DeadTokenError, token: str, key: str, secret: str) -> None:
    """Record a dead token (by its keyed hash, never the token) and take it off the user.

    Future plans then fall back to the user's next consented channel, and the reference loader
    keeps the token off even when the next users snapshot still carries it.
    """
    conn.execute(
        text(
            "INSERT INTO push.dead_tokens (user_id, platform, token_key, answer, idempotency_key)"
            " VALUES (:user, :platform, :token_key, :answer, :key) ON CONFLICT (platform, token_key) DO NOTHING"
        ),
        {"user": user_id, "platform": dead.platform, "token_key": pseudonym(token, secret), "answer": dead.answer,
         "key": key},
    )  # fmt: skip
    conn.execute(
        text("UPDATE push.users SET push_token = NULL WHERE user_id = :user AND push_token = :token"),
        {"user": user_id, "token": token},
    )


def _send(
    message: OutboundMessage,
    channel: Channel,
    limiter: RateLimiter | None,
    settings: Settings,
    *,
    attempt: int,
    max_attempts: int,
    clock: Clock,
) -> _Outcome:
    """Send one message (after the rate limit) and turn the result into an outcome."""
    if limiter is not None:
        limiter.acquire()
    try:
        channel.send(message)
    except DeadTokenError as error:
        return _Outcome("dead", str(error), dead_token=error)
    except PermanentDeliveryError as error:
        return _Outcome("dead", str(error))
    except Exception as error:  # transient, or unclassified (treated as transient): retry
        classified = isinstance(error, TransientDeliveryError)
        description = str(error) if classified else f"{type(error).__name__}: {error}"
        if attempt >= max_attempts:
            return _Outcome("dead", f"{description} (gave up after {attempt} attempts)")
        retry_after = error.retry_after if classified else None
        if retry_after is not None:
            delay = min(max(0.0, retry_after), MAX_RETRY_AFTER_SECONDS)
        else:
            delay = backoff_seconds(attempt, settings.retry_base_seconds, settings.retry_max_seconds)
        return _Outcome("retry", description, clock.now() + timedelta(seconds=delay))
    return _Outcome("sent")


def push_links(settings: Settings, item_id: str | None) -> dict[str, str]:
    """The deep link and image of a push message about ``item_id`` (``PUSH_DEEP_LINK``,
    ``PUSH_IMAGE_URL``: patterns with ``{item_id}``, URL-quoted); none without an item or a pattern."""
    if not item_id:
        return {}
    quoted = urllib.parse.quote(item_id, safe="")
    links = {"url": settings.push_deep_link, "image": settings.push_image_url}
    return {name: pattern.replace("{item_id}", quoted) for name, pattern in links.items() if pattern}


def message_content(channel: str, payload: dict) -> dict:
    """Title/body (and HTML for e-mail) for a ledger payload.

    New payloads hold the render context ``{"locale": "en", "facts": {...}}`` and are rendered
    now, so the wording follows the templates in force at send time. Older payloads without
    ``facts`` are already rendered and used as they are.

    Raises:
        ValueError: The payload has neither usable facts nor a title and body.
        jinja2.TemplateError: A template needs a fact the payload lacks.
    """
    if not isinstance(payload, dict):
        raise ValueError(f"payload must be a JSON object, got {type(payload).__name__}")
    if "facts" not in payload:
        if not isinstance(payload.get("title"), str) or not isinstance(payload.get("body"), str):
            raise ValueError("pre-rendered payload needs string 'title' and 'body'")
        return payload
    facts = payload["facts"]
    if not isinstance(facts, dict):
        raise ValueError(f"payload 'facts' must be a JSON object, got {type(facts).__name__}")
    return render_message(channel, payload.get("locale") or "en", facts)


def _redact(error: str | None, address: str | None) -> str | None:
    """Cut the error to size and blank out the address, which providers like to echo back."""
    if error is None:
        return None
    if address:
        error = error.replace(address, "<address>")
    return error[:_ERROR_LIMIT]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--until", type=parse_utc, default=None, help="logical end of the slot (ISO-8601, default now)")
    parser.add_argument(
        "--max-wait-seconds", type=float, default=0.0, help="wait this long for retries falling due (default 0)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(json.dumps(relay_pending(Settings.from_env(), until=args.until, max_wait_seconds=args.max_wait_seconds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
