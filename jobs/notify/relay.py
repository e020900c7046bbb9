"""Relay pending outbox rows to their channels (the second half of the outbox pattern).

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` so that several relays can run at once
without sending a row twice; a row is marked ``sent`` in the transaction that claimed it.
A failing send is retried on the next pass up to ``max_attempts``, then goes to ``dead``.

CLI: ``python -m jobs.notify.relay``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter

from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import make_engine
from jobs.notify.channels import Channel, FileSink, OutboundMessage

log = logging.getLogger(__name__)


def default_channels(settings: Settings) -> dict[str, Channel]:
    """Every channel goes to the file sink until real gateways are configured."""
    sink = FileSink(settings.outbox_dir)
    return dict.fromkeys(("push", "email", "sms", "webhook"), sink)


def relay_pending(
    settings: Settings, channels: dict[str, Channel] | None = None, batch_size: int = 500, max_attempts: int = 5
) -> dict:
    channels = channels or default_channels(settings)
    engine = make_engine(settings.database_url)
    counts: Counter[str] = Counter()
    while True:
        with engine.begin() as conn:
            rows = (
                conn.execute(
                    text(
                        "SELECT idempotency_key, user_id, channel, source, item_id, payload, attempts"
                        " FROM push.notification_ledger WHERE status = 'pending'"
                        " ORDER BY scheduled_at, idempotency_key LIMIT :n FOR UPDATE SKIP LOCKED"
                    ),
                    {"n": batch_size},
                )
                .mappings()
                .all()
            )
            if not rows:
                break
            for row in rows:
                message = OutboundMessage(
                    row["idempotency_key"],
                    row["user_id"],
                    row["channel"],
                    row["source"],
                    row["item_id"],
                    row["payload"],
                )
                try:
                    channels[row["channel"]].send(message)
                except Exception as error:
                    status = "dead" if row["attempts"] + 1 >= max_attempts else "pending"
                    conn.execute(
                        text(
                            "UPDATE push.notification_ledger SET attempts = attempts + 1, status = :s,"
                            " last_error = :e WHERE idempotency_key = :k"
                        ),
                        {"s": status, "e": repr(error)[:1000], "k": row["idempotency_key"]},
                    )
                    counts["failed" if status == "pending" else "dead"] += 1
                    continue
                conn.execute(
                    text(
                        "UPDATE push.notification_ledger SET attempts = attempts + 1, status = 'sent',"
                        " sent_at = clock_timestamp(), last_error = NULL WHERE idempotency_key = :k"
                    ),
                    {"k": row["idempotency_key"]},
                )
                counts["sent"] += 1
        if counts["failed"]:
            break  # retry failures on the next scheduled pass, not in a tight loop
    summary = dict(counts)
    log.info("relay: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    print(json.dumps(relay_pending(Settings.from_env())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
