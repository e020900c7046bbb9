"""A local stand-in for FCM HTTP v1 and Google's OAuth token endpoint, on 127.0.0.1.

It checks what the real services check: the token endpoint verifies the service account's JWT
assertion (RS256 with the account's public key, issuer, audience, scope, at most an hour) and
issues short-lived access tokens; ``messages:send`` requires a live access token for the right
project and a well-formed message (a token, a string title and body, string data values) and
answers with FCM's error bodies. Devices are simulated: a registered token shows a message once
per collapse key (what Android does with ``collapse_key``), an unknown token is
``UNREGISTERED``. ``script`` queues answers per token: ``(429, seconds)`` for QUOTA_EXCEEDED with
Retry-After, ``503`` for UNAVAILABLE, ``("hang", seconds)`` to answer late, ``"drop"`` to
deliver and then close the connection without answering (a lost response).
"""

from __future__ import annotations

import json
import secrets
import socket
import threading
import time
import urllib.parse
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from jobs.notify.fcm import FCM_SCOPE

PROJECT = "shop-test"


class FakeFcm:
    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.public_key = key.public_key()
        self.client_email = f"push@{PROJECT}.iam.gserviceaccount.com"
        self.registered: set[str] = set()
        self.script: dict[str, list] = defaultdict(list)
        self.access_tokens: dict[str, float] = {}
        self.exchanges = 0
        self.requests: list[dict] = []
        self.shown: dict[tuple[str, str], dict] = {}
        self.collapsed = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.token_uri = self.url + "/token"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def key_file(self, folder: Path) -> Path:
        """The service-account JSON a shop would download, pointing at this token endpoint."""
        path = folder / "service-account.json"
        account = {
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "k1",
            "private_key": self.private_pem,
            "client_email": self.client_email,
            "token_uri": self.token_uri,
        }
        path.write_text(json.dumps(account))
        return path

    # --- the two services -------------------------------------------------------------------
    def exchange(self, form: dict) -> tuple[int, dict]:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self.public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                issuer=self.client_email,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            return 400, {"error": "invalid_grant", "error_description": str(error)}
        if claims.get("scope") != FCM_SCOPE or claims["exp"] - claims["iat"] > 3600:
            return 400, {"error": "invalid_scope"}
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.access_tokens[token] = time.time() + 3600
            self.exchanges += 1
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def send(self, path: str, authorization: str, body: dict) -> tuple[int, dict, dict] | str:
        bearer = authorization.removeprefix("Bearer ")
        if self.access_tokens.get(bearer, 0) < time.time():
            return 401, _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials."), {}
        if path != f"/v1/projects/{PROJECT}/messages:send":
            return 404, _error(404, "NOT_FOUND", "unknown project"), {}
        message = body.get("message") if isinstance(body, dict) else None
        problem = _invalid(message)
        if problem:
            return 400, _error(400, "INVALID_ARGUMENT", problem), {}
        token = message["token"]
        with self._lock:
            self.requests.append(message)
            scripted = self.script[token].pop(0) if self.script[token] else None
        if isinstance(scripted, tuple) and scripted[0] == 429:
            return 429, _error(429, "RESOURCE_EXHAUSTED", "quota", "QUOTA_EXCEEDED"), {"Retry-After": str(scripted[1])}
        if scripted == 503:
            return 503, _error(503, "UNAVAILABLE", "try later", "UNAVAILABLE"), {}
        if isinstance(scripted, tuple) and scripted[0] == "hang":
            time.sleep(scripted[1])  # answers after the client gave up
        if token not in self.registered:
            return 404, _error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"), {}
        collapse = message.get("android", {}).get("collapse_key") or secrets.token_hex(8)
        with self._lock:
            if (token, collapse) in self.shown:
                self.collapsed += 1  # the device replaces its copy: still shown once
            self.shown[(token, collapse)] = message
        if scripted == "drop":
            return "drop"
        return 200, {"name": f"projects/{PROJECT}/messages/{secrets.token_hex(8)}"}, {}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/token":
                    status, body, headers = *fake.exchange(dict(urllib.parse.parse_qsl(raw.decode()))), {}
                else:
                    try:
                        parsed = json.loads(raw)
                    except ValueError:
                        parsed = None
                    answer = fake.send(self.path, self.headers.get("Authorization", ""), parsed)
                    if answer == "drop":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    status, body, headers = answer
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _error(code: int, status: str, message: str, fcm_code: str | None = None) -> dict:
    details = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": fcm_code}]
    return {"error": {"code": code, "message": message, "status": status, "details": details if fcm_code else []}}


def _invalid(message) -> str | None:
    """What FCM would say is wrong with a message, or None."""
    if not isinstance(message, dict) or not isinstance(message.get("token"), str) or not message["token"]:
        return "The registration token is not a valid FCM registration token"
    note = message.get("notification", {})
    if not isinstance(note.get("title"), str) or not isinstance(note.get("body"), str):
        return "notification title and body must be strings"
    data = message.get("data", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return "data must only contain string values"
    ttl = message.get("android", {}).get("ttl")
    if ttl is not None and not (isinstance(ttl, str) and ttl.endswith("s") and ttl[:-1].isdigit()):
        return "Invalid value at 'message.android.ttl'"
    return None
