"""Web Push (RFC 8030 / 8291 / 8292): the push adapter for browsers subscribed directly.

A user on ``webpush`` keeps their browser's subscription as their push token: the JSON the
browser's ``PushManager.subscribe()`` returns, ``{"endpoint": ..., "keys": {"p256dh": ...,
"auth": ...}}``. Each message is encrypted for that subscription (aes128gcm) and signed with
the shop's VAPID key (an ES256 JWT for the endpoint's origin), both by pywebpush, over one
``requests`` session so connections to a push service are reused. Headers: ``TTL`` (time left
to the message's expiry), ``Urgency: normal`` and ``Topic`` (the ledger key: a retry replaces
an undelivered copy instead of adding a second).

Answers: 201 (or any 2xx) sent; 404 / 410 the subscription is gone (:class:`DeadTokenError`, the
relay retires it); 413 too large, other 4xx (a VAPID or request problem) permanent; 429 and
5xx retried after any ``Retry-After``; timeouts and connection errors retried. A token that is
not a subscription is retired too: it can never work.

Configuration: ``PUSH_WEBPUSH_VAPID_KEY`` (path to the VAPID private key, PEM) and
``PUSH_WEBPUSH_SUBJECT`` (``mailto:`` or ``https:`` contact the push services may use).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import requests
from py_vapid import Vapid
from pywebpush import WebPushException, webpush

from jobs.notify.channels import (
    DeadTokenError,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    parse_retry_after,
    seconds_left,
)

# RFC 8291: one aes128gcm record of 4096 bytes holds at most 3993 bytes of plaintext.
MAX_PAYLOAD_BYTES = 3993


def parse_subscription(token: str) -> dict:
    """The subscription JSON of a push token; ValueError when it is not one."""
    try:
        subscription = json.loads(token)
    except ValueError:
        raise ValueError("not a JSON subscription") from None
    keys = subscription.get("keys") if isinstance(subscription, dict) else None
    if not (
        isinstance(subscription, dict)
        and isinstance(subscription.get("endpoint"), str)
        and subscription["endpoint"].startswith(("https://", "http://"))
        and isinstance(keys, dict)
        and isinstance(keys.get("p256dh"), str)
        and isinstance(keys.get("auth"), str)
    ):
        raise ValueError("a subscription needs an http(s) endpoint and keys p256dh and auth")
    return subscription


class WebPushChannel:
    """The ``push`` adapter for users whose platform is ``webpush``."""

    name = "push"
    platform = "webpush"

    def __init__(
        self, vapid_key_path: str, subject: str, timeout: float = 10.0, *, clock: Callable[[], float] = time.time
    ) -> None:
        if not subject.startswith(("mailto:", "https:")):
            raise ValueError(f"PUSH_WEBPUSH_SUBJECT must be a mailto: or https: contact, got {subject!r}")
        self.vapid = Vapid.from_file(private_key_file=vapid_key_path)
        self.subject = subject
        self.timeout = timeout
        self._clock = clock
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"WebPushChannel(subject={self.subject!r})"

    def payload_for(self, message: OutboundMessage) -> str:
        payload = {
            "title": message.content["title"],
            "body": message.content["body"],
            "idempotency_key": message.idempotency_key,
            "item_id": message.item_id,
            "url": message.content.get("url"),
            "image": message.content.get("image"),
        }
        text = json.dumps(payload, ensure_ascii=False)
        size = len(text.encode())
        if size > MAX_PAYLOAD_BYTES:
            raise PermanentDeliveryError(
                f"webpush: payload is {size} bytes, above the {MAX_PAYLOAD_BYTES} one record holds"
            )
        return text

    def send(self, message: OutboundMessage) -> None:
        if not message.address:
            raise PermanentDeliveryError("webpush: the user has no subscription")
        try:
            subscription = parse_subscription(message.address)
        except ValueError as error:
            raise DeadTokenError(f"webpush: {error}", self.platform, "malformed subscription") from None
        ttl = seconds_left(message.expires_at, self._clock()) or 0
        try:
            webpush(
                subscription,
                data=self.payload_for(message),
                vapid_private_key=self.vapid,
                # A fresh dict each time: pywebpush writes the endpoint's origin and an expiry into it.
                vapid_claims={"sub": self.subject},
                ttl=ttl,
                timeout=self.timeout,
                headers={"Urgency": "normal", "Topic": message.idempotency_key[:32]},
                requests_session=self._session,
            )
        except WebPushException as error:
            raise self._classify(error) from None
        except requests.Timeout:
            raise TransientDeliveryError("webpush: timed out") from None
        except requests.RequestException as error:
            raise TransientDeliveryError(f"webpush: connection failed: {type(error).__name__}") from None

    def _classify(self, error: WebPushException) -> Exception:
        status = error.status_code
        if status is None:
            return PermanentDeliveryError(f"webpush: {error.message}")
        answer = f"{status}"
        if status in (404, 410):
            return DeadTokenError(f"webpush: subscription is gone ({status})", self.platform, answer)
        if status == 429 or status >= 500:
            return TransientDeliveryError(f"webpush: {status}", parse_retry_after(error.retry_after))
        return PermanentDeliveryError(f"webpush: rejected ({status}): {error.response.text[:200]}")
