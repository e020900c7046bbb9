"""Local servers that stand in for providers: a scripted HTTP gateway and an SMTP server.

The HTTP gateway checks every signature with ``verify_signature`` and, like a real gateway
honouring ``Idempotency-Key``, processes each key once. Both reply as scripted per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from jobs.notify.channels import verify_signature

SECRET = "gateway-test-secret"


# --- the scripted HTTP gateway --------------------------------------------------------------


@dataclass(frozen=True)
class GatewayRequest:
    path: str
    key: str
    verified: bool
    raw: bytes
    headers: dict
    body: dict
    at: float


class FakeGateway:
    """A push/SMS gateway or webhook receiver whose reply to each request is scripted.

    Script entries (consumed in arrival order, default ``("ok",)``): ``("ok",)``,
    ``("status", code)``, ``("status", code, {"Header": "value"})`` and ``("slow", seconds)``
    (sleep past the client's timeout, then 503). Requests with a bad signature get 401. An
    accepted key is processed once; repeats are acknowledged and counted as duplicates.
    """

    def __init__(self, secret: str = SECRET, port: int = 0, delay_seconds: float = 0.0) -> None:
        self.secret = secret
        # Every request waits this long before its reply (a gateway under load).
        self.delay_seconds = delay_seconds
        self.script: deque[tuple] = deque()
        self.requests: list[GatewayRequest] = []
        self.delivered: dict[str, dict] = {}
        self.duplicates = 0
        self.on_request: Callable[[GatewayRequest], None] | None = None
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                gateway._handle(self)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGateway:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def respond(self, *behaviours: tuple) -> None:
        self.script.extend(behaviours)

    def keys(self) -> Counter:
        return Counter(request.key for request in self.requests)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        verified = verify_signature(
            self.secret,
            handler.headers.get("X-Push-Timestamp", ""),
            raw,
            handler.headers.get("X-Push-Signature", ""),
            tolerance_seconds=60,
        )
        request = GatewayRequest(
            path=handler.path,
            key=handler.headers.get("Idempotency-Key", ""),
            verified=verified,
            raw=raw,
            headers=dict(handler.headers.items()),
            body=json.loads(raw),
            at=time.monotonic(),
        )
        with self._lock:
            behaviour = self.script.popleft() if self.script else ("ok",)
            self.requests.append(request)
        if self.on_request is not None:
            self.on_request(request)
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        if not verified:
            self._reply(handler, 401, {"error": "bad signature"})
        elif behaviour[0] == "slow":
            time.sleep(behaviour[1])
            self._reply(handler, 503, {"error": "too slow"})
        elif behaviour[0] == "status":
            headers = behaviour[2] if len(behaviour) > 2 else {}
            self._reply(handler, behaviour[1], {"error": f"scripted {behaviour[1]}"}, headers)
        else:
            with self._lock:
                duplicate = request.key in self.delivered
                if duplicate:
                    self.duplicates += 1
                else:
                    self.delivered[request.key] = request.body
            self._reply(handler, 200, {"status": "duplicate" if duplicate else "accepted"})

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: dict, headers: dict | None = None) -> None:
        payload = json.dumps(body).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)


# --- the scripted SMTP server ---------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    tls: bool
    authenticated: bool


@dataclass
class MailHandler:
    """aiosmtpd handler: records accepted mail; scripted ``451``, ``550`` or ``hang`` replies to DATA."""

    script: deque = field(default_factory=deque)
    received: list[ReceivedMail] = field(default_factory=list)
    hang_seconds: float = 1.5

    async def handle_DATA(self, server, session, envelope) -> str:
        behaviour = self.script.popleft() if self.script else "ok"
        if behaviour == "451":
            return "451 4.3.0 Mailbox busy, try again later"
        if behaviour == "550":
            return f"550 5.1.1 <{envelope.rcpt_tos[0]}>: recipient unknown"
        if behaviour == "hang":
            await asyncio.sleep(self.hang_seconds)
        self.received.append(
            ReceivedMail(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                tls=session.ssl is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 2.0.0 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def smtp_server(handler: MailHandler, port: int | None = None, **smtp_options) -> Iterator[Controller]:
    controller = Controller(handler, hostname="127.0.0.1", port=port or free_port(), **smtp_options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
