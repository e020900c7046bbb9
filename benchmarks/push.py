"""Benchmark: relay throughput through each push provider, beside the file sink.

For each channel (the file sink as the yardstick, then FCM, APNs and Web Push through their
real adapters to the local providers of the test suite), ``--messages`` pending push messages
for as many users on that platform are written into a sandbox database, and one relay pass
(``relay_pending``: claim, render, send, record, one message per transaction) delivers them.
Printed: messages per second per channel and the ratio to the file sink's, then one JSON line.

The local providers run as threads of this process, sharing its two cores and its GIL with the
relay (Web Push's service decrypts every message, as a browser would): the provider figures are
lower bounds of what the relay does against remote providers, where the waiting is network.

``python -m benchmarks.push [--messages 10000]`` (``make bench-push``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text

from benchmarks.figures import Report, record
from devenv.localdb import start_sandbox
from jobs.core.config import Settings
from jobs.core.db import apply_migrations, copy_rows, make_engine
from jobs.notify.relay import relay_pending
from tests.support.apns_server import FakeApns
from tests.support.fcm_server import FakeFcm
from tests.support.outbox import FACTS
from tests.support.webpush_server import FakeWebPush


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def seed(engine, platform: str, tokens: list[str]) -> None:
    """Users on ``platform`` with the given tokens and one pending push message each."""
    now = datetime.now(UTC)
    users = [f"{platform}-{n:06d}" for n in range(len(tokens))]
    payload = json.dumps({"locale": "en", "facts": FACTS})
    with engine.begin() as conn:
        for table in ("delivery_attempts", "notification_ledger", "dead_tokens", "users"):
            conn.execute(text(f"DELETE FROM push.{table}"))
        copy_rows(
            conn,
            "push.users",
            ["user_id", "push_token", "push_platform", "consent_push", "timezone", "locale"],
            [
                (u, t, None if platform == "file" else platform, True, "UTC", "en")
                for u, t in zip(users, tokens, strict=True)
            ],
        )
        copy_rows(
            conn,
            "push.notification_ledger",
            ["idempotency_key", "run_key", "user_id", "channel", "source", "item_id", "scheduled_at", "payload",
             "expires_at"],
            [(f"k-{u}", "bench-push", u, "push", "recommendation", "i1", now - timedelta(minutes=1), payload,
              now + timedelta(hours=6)) for u in users],
        )  # fmt: skip


def run(settings: Settings, engine, platform: str, tokens: list[str], report: Report) -> dict:
    seed(engine, platform, tokens)
    started = time.perf_counter()
    outcome = relay_pending(settings, until=datetime.now(UTC))
    seconds = time.perf_counter() - started
    rate = len(tokens) / seconds
    report(f"{platform}: messages/s", round(rate, 1), "", f"{outcome} in {seconds:.1f} s")
    return {"messages": len(tokens), "seconds": round(seconds, 2), "per_second": round(rate, 1), "outcome": outcome}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    args = parser.parse_args(argv)
    url = start_sandbox("bench-push")
    os.environ["PUSH_DATABASE_URL"] = url
    engine = make_engine(url)
    apply_migrations(engine)
    folder = Path(tempfile.mkdtemp(prefix="bench-push-"))
    base = replace(
        Settings.from_env(),
        smtp_url="",
        push_gateway_url="",
        gateway_secret="",
        channel_rate_limits={},
        outbox_dir=folder / "outbox",
        relay_max_attempts=3,
    )
    report = Report()
    n = args.messages
    result: dict = {"messages_per_channel": n}
    result["file"] = run(base, engine, "file", [f"t{i}" for i in range(n)], report)

    fcm = FakeFcm()
    fcm.registered |= {f"fcm-{i}" for i in range(n)}
    settings = replace(base, fcm_service_account=str(fcm.key_file(folder)), fcm_endpoint=fcm.url)
    result["fcm"] = run(settings, engine, "fcm", [f"fcm-{i}" for i in range(n)], report)
    fcm.stop()

    key = ec.generate_private_key(ec.SECP256R1())
    (folder / "apns.p8").write_bytes(_pem(key))
    apns = FakeApns(key.public_key(), "KEY1", "TEAM1", "com.shop.app")
    apns.registered |= {f"apns-{i}" for i in range(n)}
    settings = replace(
        base, apns_key=str(folder / "apns.p8"), apns_key_id="KEY1", apns_team_id="TEAM1",
        apns_topic="com.shop.app", apns_endpoint=apns.url,
    )  # fmt: skip
    result["apns"] = {
        **run(settings, engine, "apns", [f"apns-{i}" for i in range(n)], report),
        "connections": apns.connections,
    }
    apns.stop()

    service = FakeWebPush()
    (folder / "vapid.pem").write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    settings = replace(base, webpush_vapid_key=str(folder / "vapid.pem"), webpush_subject="mailto:ops@shop.example")
    subscriptions = [service.subscribe(f"w{i}") for i in range(n)]
    result["webpush"] = run(settings, engine, "webpush", subscriptions, report)
    service.stop()

    for channel in ("fcm", "apns", "webpush"):
        result[channel]["vs_file_sink"] = round(result[channel]["per_second"] / result["file"]["per_second"], 3)
        report(f"{channel}: vs the file sink", result[channel]["vs_file_sink"], "x")
    record("push", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
