"""Relay pending outbox rows to their channels (the second half of the outbox pattern).

Rows are claimed one at a time with ``FOR UPDATE SKIP LOCKED`` so that several relays can run
at once without sending a row twice; a row is marked ``sent`` in the transaction that claimed
it. A failing send is retried on the next pass up to ``max_attempts``, then goes to ``dead``; a
message whose user withdrew consent meanwhile is ``cancelled``.

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


CLAIM_NEXT = """
SELECT l.idempotency_key, l.user_id, l.channel, l.source, l.item_id, l.payload, l.attempts,
       coalesce(CASE l.channel WHEN 'email' THEN u.consent_email WHEN 'sms' THEN u.consent_sms
                               WHEN 'push' THEN u.consent_push WHEN 'webhook' THEN u.consent_webhook END,
                false) AS consented
FROM push.notification_ledger l
LEFT JOIN push.users u ON u.user_id = l.user_id
WHERE l.status = 'pending' AND l.idempotency_key <> ALL(CAST(:skip AS text[]))
ORDER BY l.scheduled_at, l.idempotency_key
LIMIT 1
FOR UPDATE OF l SKIP LOCKED
"""


def relay_pending(settings: Settings, channels: dict[str, Channel] | None = None, max_attempts: int = 5) -> dict:
    """Deliver every pending outbox message once; return counts by outcome.

    One message per transaction: a crash can repeat at most the message in flight, and the
    idempotency key travels with it so the receiving side can drop that repeat. Consent is
    read again in the claiming transaction, so an opt-out committed after planning still wins.
    Messages that fail are retried on the next pass, not in this one.
    """
    channels = channels or default_channels(settings)
    engine = make_engine(settings.database_url)
    counts: Counter[str] = Counter()
    failed_this_pass: list[str] = []
    while True:
        with engine.begin() as conn:
            row = conn.execute(text(CLAIM_NEXT), {"skip": failed_this_pass}).mappings().one_or_none()
            if row is None:
                break
            key = row["idempotency_key"]
            if not row["consented"]:
                conn.execute(
                    text(
                        "UPDATE push.notification_ledger SET status = 'cancelled', last_error = 'consent withdrawn'"
                        " WHERE idempotency_key = :k"
                    ),
                    {"k": key},
                )
                counts["cancelled"] += 1
                continue
            message = OutboundMessage(
                key, row["user_id"], row["channel"], row["source"], row["item_id"], row["payload"]
            )
            try:
                channels[row["channel"]].send(message)
            except Exception as error:  # any channel failure is recorded, never lost
                status = "dead" if row["attempts"] + 1 >= max_attempts else "pending"
                conn.execute(
                    text(
                        "UPDATE push.notification_ledger SET attempts = attempts + 1, status = :s,"
                        " last_error = :e WHERE idempotency_key = :k"
                    ),
                    {"s": status, "e": repr(error)[:1000], "k": key},
                )
                failed_this_pass.append(key)
                counts["failed" if status == "pending" else "dead"] += 1
                continue
            conn.execute(
                text(
                    "UPDATE push.notification_ledger SET attempts = attempts + 1, status = 'sent',"
                    " sent_at = clock_timestamp(), last_error = NULL WHERE idempotency_key = :k"
                ),
                {"k": key},
            )
            counts["sent"] += 1
    summary = dict(counts)
    log.info("relay: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    print(json.dumps(relay_pending(Settings.from_env())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
