"""Firebase Cloud Messaging (HTTP v1): the push adapter for Android and web tokens.

A message is ``POST {endpoint}/v1/projects/{project_id}/messages:send`` with an OAuth2 access
token. The token comes from the service account's key: a JWT assertion signed with its private
key (RS256, PyJWT) is exchanged at the key's ``token_uri`` for an access token, which is cached
until a minute before it expires (one exchange per hour, not per message).

Idempotency: FCM keeps no record of what it delivered, so the message carries the ledger key as
its Android ``collapse_key`` and web-push ``Topic``: a retry after a lost response replaces the
copy on the device instead of showing a second one. Its TTL is the time left until the
message's expiry, so a device offline past it never shows a stale offer.

Errors, as FCM documents them: ``UNREGISTERED`` (404), ``SENDER_ID_MISMATCH`` (403) and an
``INVALID_ARGUMENT`` (400) about the registration token mean the token is dead
(:class:`DeadTokenError`: the relay retires it); other 400s are permanent; 401 drops the cached
access token and is retried; 429 (``QUOTA_EXCEEDED``), 500 and 503 are retried after any
``Retry-After``; timeouts and lost connections are retried.

Configuration (secrets from the environment only, never the database): ``PUSH_FCM_SERVICE_ACCOUNT``
(path to the service-account JSON key), ``PUSH_FCM_ENDPOINT`` (default the Google endpoint).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    seconds_left,
)

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
DEFAULT_ENDPOINT = "https://fcm.googleapis.com"
# FCM's limit on a message's payload (notification and data together).
MAX_PAYLOAD_BYTES = 4096
_TOKEN_LIFETIME_SECONDS = 3600
_REFRESH_MARGIN_SECONDS = 60
_DEAD_TOKEN_CODES = {"UNREGISTERED", "SENDER_ID_MISMATCH"}


@dataclass(frozen=True)
class ServiceAccount:
    """The fields of a Google service-account key that FCM needs."""

    project_id: str
    client_email: str
    private_key: str
    private_key_id: str
    token_uri: str

    @classmethod
    def from_file(cls, path: str | Path) -> ServiceAccount:
        try:
            data = json.loads(Path(path).read_text())
            return cls(
                data["project_id"], data["client_email"], data["private_key"], data.get("private_key_id", ""),
                data["token_uri"],
            )  # fmt: skip
        except (OSError, ValueError, KeyError) as error:
            raise ValueError(f"PUSH_FCM_SERVICE_ACCOUNT {path}: not a service-account key ({error})") from None


class AccessTokens(CachedToken):
    """OAuth2 access tokens for a service account, exchanged once and cached until near expiry."""

    def __init__(self, account: ServiceAccount, client: httpx.Client, clock: Callable[[], float] = time.time):
        super().__init__(clock)
        self.account = account
        self._client = client

    @property
    def exchanges(self) -> int:
        return self.made

    def make(self, now: float) -> tuple[str, float]:
        token, expires_at = self._exchange(int(now))
        return token, expires_at - _REFRESH_MARGIN_SECONDS

    def _exchange(self, now: int) -> tuple[str, float]:
        claims = {
            "iss": self.account.client_email,
            "scope": FCM_SCOPE,
            "aud": self.account.token_uri,
            "iat": now,
            "exp": now + _TOKEN_LIFETIME_SECONDS,
        }
        headers = {"kid": self.account.private_key_id} if self.account.private_key_id else None
        assertion = jwt.encode(claims, self.account.private_key, algorithm="RS256", headers=headers)
        try:
            response = self._client.post(
                self.account.token_uri,
                data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion},
            )
        except httpx.TransportError as error:
            raise TransientDeliveryError(f"fcm: token exchange failed: {type(error).__name__}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientDeliveryError(
                f"fcm: token exchange answered {response.status_code}",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code != 200:
            # A revoked or wrong key: nothing a retry can fix.
            raise PermanentDeliveryError(f"fcm: token exchange refused ({response.status_code}): {response.text[:200]}")
        body = response.json()
        return body["access_token"], now + float(body.get("expires_in", _TOKEN_LIFETIME_SECONDS))


class FcmChannel:
    """The ``push`` adapter for users whose platform is ``fcm`` (Android, web via FCM)."""

    platform = "fcm"

    def __init__(
        self,
        account: ServiceAccount,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = 10.0,
        *,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = "push"
        self.account = account
        self.url = f"{endpoint.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
        # One client: its pool keeps connections to the provider open between messages.
        self._client = client or httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=8))
        self._clock = clock
        self.tokens = AccessTokens(account, self._client, clock)

    def __repr__(self) -> str:
        return f"FcmChannel(project={self.account.project_id!r}, url={self.url!r})"

    def body_for(self, message: OutboundMessage) -> dict:
        """The v1 ``messages:send`` body; raises if it is above FCM's payload limit."""
        data = {"idempotency_key": message.idempotency_key, "source": message.source}
        if message.item_id:
            data["item_id"] = message.item_id
        if message.content.get("url"):
            data["link"] = message.content["url"]
        body: dict = {
            "token": message.address,
            "notification": {"title": message.content["title"], "body": message.content["body"]},
            "data": data,
            "android": {"collapse_key": message.idempotency_key, "priority": "NORMAL"},
            "webpush": {"headers": {"Topic": message.idempotency_key[:32]}},
        }
        if message.content.get("image"):
            body["notification"]["image"] = message.content["image"]
        if str(message.content.get("url", "")).startswith("https://"):
            body["webpush"]["fcm_options"] = {"link": message.content["url"]}  # FCM takes only HTTPS here
        ttl = seconds_left(message.expires_at, self._clock())
        if ttl is not None:
            body["android"]["ttl"] = f"{ttl}s"
            body["webpush"]["headers"]["TTL"] = str(ttl)
        payload = {k: body[k] for k in ("notification", "data")}
        size = len(json.dumps(payload, ensure_ascii=False).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise PermanentDeliveryError(f"fcm: payload is {size} bytes, above FCM's {MAX_PAYLOAD_BYTES}")
        return {"message": body}

    def send(self, message: OutboundMessage) -> None:
        if not message.address:
            raise PermanentDeliveryError("fcm: the user has no push token")
        body = self.body_for(message)
        headers = {"Authorization": f"Bearer {self.tokens.get()}"}
        response = post(self._client, "fcm", self.url, json=body, headers=headers)
        if response.status_code == 200:
            return
        raise self._classify(response)

    def _classify(self, response: httpx.Response) -> Exception:
        status = response.status_code
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        codes = {d.get("errorCode") for d in error.get("details", []) if isinstance(d, dict)} - {None}
        text = str(error.get("message") or response.text[:200])
        answer = f"{status} {error.get('status', '')} {','.join(sorted(codes))}".strip()
        if codes & _DEAD_TOKEN_CODES or (status == 400 and "registration token" in text.lower()):
            return DeadTokenError(f"fcm: token is dead ({answer})", self.platform, answer)
        if status == 401:
            self.tokens.drop()
            return TransientDeliveryError("fcm: access token refused (401): a fresh one is used next time")
        if status == 429 or status >= 500:
            return TransientDeliveryError(f"fcm: {answer}", parse_retry_after(response.headers.get("Retry-After")))
        return PermanentDeliveryError(f"fcm: rejected ({answer}): {text}")
