"""Apple Push Notification service over HTTP/2: the push adapter for iOS devices.

``POST {endpoint}/3/device/{token}`` on one HTTP/2 connection (httpx with h2: every message is
a stream of it, which is how Apple wants providers to send), with a provider token: an ES256
JWT (``iss`` the team id, ``kid`` the key id) signed with the shop's ``.p8`` key, made once and
reused until it is 50 minutes old (Apple refuses tokens older than an hour and throttles
providers that make them more often than every 20 minutes).

Headers: ``apns-topic`` (the app's bundle id), ``apns-push-type: alert``, ``apns-priority: 5``
(deliver at a convenient time: marketing, not a call), ``apns-expiration`` (the message's
expiry, unix seconds), ``apns-collapse-id`` and ``apns-id`` from the ledger key, so a retry of a
message Apple already took replaces it on the device instead of showing a second copy. The
payload (``aps.alert`` title and body, ``aps.sound``, the key, item and link) must stay within
Apple's 4 KB.

Answers: 200 sent; 410 ``Unregistered`` and 400 ``BadDeviceToken`` / ``DeviceTokenNotForTopic``
mean the token is dead (:class:`DeadTokenError`); 403 ``ExpiredProviderToken`` makes a new
provider token and retries; 429 and 5xx are retried after any ``Retry-After``; other 4xx are
permanent. Configuration: ``PUSH_APNS_KEY`` (the .p8 file), ``PUSH_APNS_KEY_ID``,
``PUSH_APNS_TEAM_ID``, ``PUSH_APNS_TOPIC``, ``PUSH_APNS_ENDPOINT`` (production by default).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt

from jobs.notify.channels import (
    CachedToken,
    DeadTokenError,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    parse_retry_after,
    post,
)

PRODUCTION = "https://api.push.apple.com"
MAX_PAYLOAD_BYTES = 4096
TOKEN_MAX_AGE_SECONDS = 50 * 60
_DEAD_REASONS = {"Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic"}


def apns_id(idempotency_key: str) -> str:
    """A UUID from the ledger key (Apple's ``apns-id`` format), the same on every retry."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"push-pipeline:{idempotency_key}"))


class ProviderTokens(CachedToken):
    """The provider JWT, made once and reused until it is ``TOKEN_MAX_AGE_SECONDS`` old."""

    def __init__(self, key_pem: str, key_id: str, team_id: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self._key, self.key_id, self.team_id = key_pem, key_id, team_id

    def make(self, now: float) -> tuple[str, float]:
        token = jwt.encode(
            {"iss": self.team_id, "iat": int(now)}, self._key, algorithm="ES256", headers={"kid": self.key_id}
        )
        return token, now + TOKEN_MAX_AGE_SECONDS


class ApnsChannel:
    """The ``push`` adapter for users whose platform is ``apns``."""

    name = "push"
    platform = "apns"

    def __init__(
        self,
        key_path: str,
        key_id: str,
        team_id: str,
        topic: str,
        endpoint: str = PRODUCTION,
        timeout: float = 10.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not (key_id and team_id and topic):
            raise ValueError("APNs needs PUSH_APNS_KEY_ID, PUSH_APNS_TEAM_ID and PUSH_APNS_TOPIC with PUSH_APNS_KEY")
        self.topic = topic
        self.endpoint = endpoint.rstrip("/")
        self.tokens = ProviderTokens(Path(key_path).read_text(), key_id, team_id, clock)
        # HTTP/2 only: one connection, one stream per message. Over http:// (a local test
        # server) that is HTTP/2 with prior knowledge; Apple's endpoint negotiates it over TLS.
        self._client = httpx.Client(http1=False, http2=True, timeout=timeout)

    def __repr__(self) -> str:
        return f"ApnsChannel(topic={self.topic!r}, endpoint={self.endpoint!r})"

    def payload_for(self, message: OutboundMessage) -> bytes:
        payload = {
            "aps": {"alert": {"title": message.content["title"], "body": message.content["body"]}, "sound": "default"},
            "idempotency_key": message.idempotency_key,
        }
        if message.item_id:
            payload["item_id"] = message.item_id
        if message.content.get("url"):
            payload["link"] = message.content["url"]
        if message.content.get("image"):
            # The app's notification service extension downloads it (it runs only with mutable-content).
            payload["image"] = message.content["image"]
            payload["aps"]["mutable-content"] = 1
        body = json.dumps(payload, ensure_ascii=False).encode()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise PermanentDeliveryError(f"apns: payload is {len(body)} bytes, above Apple's {MAX_PAYLOAD_BYTES}")
        return body

    def send(self, message: OutboundMessage) -> None:
        if not message.address:
            raise PermanentDeliveryError("apns: the user has no device token")
        headers = {
            "authorization": f"bearer {self.tokens.get()}",
            "apns-topic": self.topic,
            "apns-push-type": "alert",
            "apns-priority": "5",
            "apns-id": apns_id(message.idempotency_key),
            "apns-collapse-id": message.idempotency_key[:64],
            "content-type": "application/json",
        }
        if message.expires_at is not None:
            headers["apns-expiration"] = str(int(message.expires_at.timestamp()))
        url = f"{self.endpoint}/3/device/{message.address}"
        response = post(self._client, "apns", url, content=self.payload_for(message), headers=headers)
        if response.status_code == 200:
            return
        raise self._classify(response)

    def _classify(self, response: httpx.Response) -> Exception:
        status = response.status_code
        try:
            reason = str(response.json().get("reason", ""))
        except ValueError:
            reason = ""
        answer = f"{status} {reason}".strip()
        if status == 410 or reason in _DEAD_REASONS:
            return DeadTokenError(f"apns: token is dead ({answer})", self.platform, answer)
        if status == 403 and reason == "ExpiredProviderToken":
            self.tokens.drop()
            return TransientDeliveryError("apns: provider token expired: a new one is used next time")
        if status == 429 or status >= 500:
            return TransientDeliveryError(f"apns: {answer}", parse_retry_after(response.headers.get("retry-after")))
        return PermanentDeliveryError(f"apns: rejected ({answer})")
