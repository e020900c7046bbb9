"""A local Web Push service on 127.0.0.1 that checks what a browser's push service checks.

For each message it verifies the VAPID header (RFC 8292: ``vapid t=<JWT>, k=<key>``, the JWT
signed ES256 by that key, ``aud`` the service's origin, ``exp`` in the future and within 24 h,
``sub`` a mailto: or https: contact), requires ``TTL`` and ``Content-Encoding: aes128gcm``, and
decrypts the body with the subscription's private key and auth secret (RFC 8291) as the
browser would. A subscription shows a message once per ``Topic`` (a later one with the same
topic replaces it). Unknown subscriptions answer 410 Gone. ``script`` queues answers per
subscription id: ``(429, seconds)``, ``503`` or ``"drop"`` (deliver, then close without
answering).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeWebPush:
    def __init__(self) -> None:
        self.keys: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
        self.script: dict[str, list] = defaultdict(list)
        self.shown: dict[tuple[str, str], dict] = {}
        self.replaced = 0
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def subscribe(self, name: str) -> str:
        """A browser's subscription JSON for a new subscription ``name`` (the push token)."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self.keys[name] = (key, auth)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return json.dumps(
            {"endpoint": f"{self.origin}/push/{name}", "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}
        )

    def receive(self, name: str, headers, body: bytes) -> tuple[int, dict] | str:
        problem = self._check_vapid(headers.get("Authorization", ""))
        if problem:
            return 401, {"reason": problem}
        if headers.get("TTL") is None or headers.get("Content-Encoding") != "aes128gcm":
            return 400, {"reason": "TTL and Content-Encoding: aes128gcm are required"}
        with self._lock:
            scripted = self.script[name].pop(0) if self.script[name] else None
        if isinstance(scripted, tuple) and scripted[0] == 429:
            return 429, {"Retry-After": str(scripted[1])}
        if scripted == 503:
            return 503, {}
        if name not in self.keys:
            return 410, {}
        key, auth = self.keys[name]
        try:
            plain = http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm")
            payload = json.loads(plain)
        except Exception as error:  # what a browser would drop
            return 400, {"reason": f"cannot decrypt: {type(error).__name__}"}
        topic = headers.get("Topic") or os.urandom(8).hex()
        with self._lock:
            self.requests.append({"name": name, "ttl": int(headers["TTL"]), "urgency": headers.get("Urgency")})
            if (name, topic) in self.shown:
                self.replaced += 1
            self.shown[(name, topic)] = payload
        return "drop" if scripted == "drop" else (201, {})

    def _check_vapid(self, authorization: str) -> str | None:
        if not authorization.startswith("vapid "):
            return "no VAPID authorization"
        parts = dict(part.strip().split("=", 1) for part in authorization[len("vapid ") :].split(","))
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(parts["k"]))
            claims = jwt.decode(parts["t"], public, algorithms=["ES256"], audience=self.origin)
        except (KeyError, ValueError, jwt.PyJWTError) as error:
            return f"bad VAPID: {type(error).__name__}: {error}"
        if not 0 < claims.get("exp", 0) - time.time() <= 24 * 3600:
            return "VAPID exp must be within 24 hours"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return "VAPID sub must be a mailto: or https: contact"
        return None

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                name = self.path.rsplit("/", 1)[-1]
                answer = fake.receive(name, self.headers, body)
                if answer == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, extra = answer
                text = extra.pop("reason", "").encode()
                self.send_response(status)
                for header, value in extra.items():
                    self.send_header(header, value)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        return Handler
