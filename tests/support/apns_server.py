"""A local APNs on 127.0.0.1: an HTTP/2 server (h2, prior knowledge) that checks what Apple checks.

Each request must be ``POST /3/device/<token>`` with a provider JWT (ES256, the expected ``kid``
and team as ``iss``, issued within the hour, else 403 ``ExpiredProviderToken``), the app's
``apns-topic``, ``apns-push-type``, an ``apns-priority`` of 5 or 10, a UUID ``apns-id``, an
``apns-collapse-id`` of at most 64 bytes, a numeric ``apns-expiration`` and a JSON payload of at
most 4 KB with ``aps.alert``. A registered token shows a message once per collapse id (a later
one replaces it); ``unregistered`` tokens answer 410 ``Unregistered``, unknown ones 400
``BadDeviceToken``. ``script`` queues answers per token: ``(429, seconds)``, ``503``, ``"drop"``
(deliver, then close the connection without answering).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import defaultdict

import h2.config
import h2.connection
import h2.events
import jwt


class FakeApns:
    def __init__(self, public_key, key_id: str, team_id: str, topic: str) -> None:
        self.public_key, self.key_id, self.team_id, self.topic = public_key, key_id, team_id, topic
        self.registered: set[str] = set()
        self.unregistered: set[str] = set()
        self.script: dict[str, list] = defaultdict(list)
        self.shown: dict[tuple[str, str], dict] = {}
        self.replaced = 0
        self.requests: list[dict] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        self._running = False
        self._listener.close()

    def _accept(self) -> None:
        while self._running:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        h2conn.initiate_connection()
        conn.sendall(h2conn.data_to_send())
        streams: dict[int, dict] = {}
        try:
            while True:
                data = conn.recv(65535)
                if not data:
                    return
                for event in h2conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        streams[event.stream_id] = {"headers": dict(event.headers), "body": bytearray()}
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id]["body"] += event.data
                        h2conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        stream = streams.pop(event.stream_id)
                        answer = self.receive(stream["headers"], bytes(stream["body"]))
                        if answer == "drop":
                            conn.shutdown(socket.SHUT_RDWR)
                            return
                        status, body, extra = answer
                        payload = json.dumps(body).encode() if body else b""
                        headers = [(":status", str(status)), ("content-length", str(len(payload))), *extra.items()]
                        h2conn.send_headers(event.stream_id, headers, end_stream=not payload)
                        if payload:
                            h2conn.send_data(event.stream_id, payload, end_stream=True)
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                conn.sendall(h2conn.data_to_send())
        except OSError:
            return
        finally:
            conn.close()

    def receive(self, headers: dict, body: bytes):
        if headers.get(":method") != "POST" or not headers.get(":path", "").startswith("/3/device/"):
            return 405, {"reason": "MethodNotAllowed"}, {}
        token = headers[":path"].removeprefix("/3/device/")
        bearer = headers.get("authorization", "").removeprefix("bearer ")
        try:
            if jwt.get_unverified_header(bearer).get("kid") != self.key_id:
                return 403, {"reason": "InvalidProviderToken"}, {}
            claims = jwt.decode(bearer, self.public_key, algorithms=["ES256"], options={"require": ["iss", "iat"]})
        except jwt.PyJWTError:
            return 403, {"reason": "InvalidProviderToken"}, {}
        if claims["iss"] != self.team_id:
            return 403, {"reason": "InvalidProviderToken"}, {}
        if time.time() - claims["iat"] > 3600:
            return 403, {"reason": "ExpiredProviderToken"}, {}
        problem = self._header_problem(headers)
        if problem:
            return 400, {"reason": problem}, {}
        if len(body) > 4096:
            return 413, {"reason": "PayloadTooLarge"}, {}
        try:
            payload = json.loads(body)
            assert isinstance(payload["aps"]["alert"], dict)
        except (ValueError, KeyError, TypeError, AssertionError):
            return 400, {"reason": "PayloadEmpty"}, {}
        with self._lock:
            self.requests.append({"token": token, "headers": headers})
            scripted = self.script[token].pop(0) if self.script[token] else None
        if isinstance(scripted, tuple) and scripted[0] == 429:
            return 429, {"reason": "TooManyRequests"}, {"retry-after": str(scripted[1])}
        if scripted == 503:
            return 503, {"reason": "ServiceUnavailable"}, {}
        if token in self.unregistered:
            return 410, {"reason": "Unregistered", "timestamp": int(time.time() * 1000)}, {}
        if token not in self.registered:
            return 400, {"reason": "BadDeviceToken"}, {}
        collapse = headers.get("apns-collapse-id") or headers["apns-id"]
        with self._lock:
            if (token, collapse) in self.shown:
                self.replaced += 1
            self.shown[(token, collapse)] = payload
        if scripted == "drop":
            return "drop"
        return 200, None, {"apns-id": headers["apns-id"]}

    def _header_problem(self, headers: dict) -> str | None:
        if headers.get("apns-topic") != self.topic:
            return "DeviceTokenNotForTopic" if headers.get("apns-topic") else "MissingTopic"
        if headers.get("apns-push-type") not in ("alert", "background"):
            return "InvalidPushType"
        if headers.get("apns-priority") not in (None, "5", "10"):
            return "BadPriority"
        try:
            uuid.UUID(headers.get("apns-id", ""))
        except ValueError:
            return "BadMessageId"
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return "BadCollapseId"
        if not headers.get("apns-expiration", "0").isdigit():
            return "BadExpirationDate"
        return None
