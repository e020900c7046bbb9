"""What the DAG tasks of notification call: triggers, feedback, planning, relaying, alerts."""

from __future__ import annotations

from datetime import datetime

from jobs.core.config import Settings
from jobs.core.spark import get_spark
from jobs.notify import feedback, triggers
from jobs.notify.audience import preview_audience
from jobs.notify.channels import OutboundMessage, SmtpChannel
from jobs.notify.plan import plan_notifications
from jobs.notify.relay import relay_pending

__all__ = [
    "collect_feedback",
    "detect_triggers",
    "plan_notifications",
    "preview_audience",
    "relay_pending",
    "send_alert_email",
]


def detect_triggers(settings: Settings, until: datetime) -> dict:
    """Abandoned carts, browse intent, price drops and items back in stock, up to ``until``."""
    return triggers.detect_triggers(get_spark(settings), settings, until)


def collect_feedback(settings: Settings, start: datetime, end: datetime) -> dict:
    """Opens, clicks and purchases that landed in [start, end), joined to the messages they answer."""
    return feedback.run_feedback(get_spark(settings), settings, start, end)


def send_alert_email(summary: str, detail: str, key: str) -> int:
    """E-mail an alert to every ``PUSH_ALERT_EMAILS`` address; return how many were sent.

    It goes through the same SMTP provider as the e-mail channel (``PUSH_SMTP_URL``), with an
    idempotency key per address, so a retried callback does not send it twice.
    """
    settings = Settings.from_env()
    if not settings.alert_emails or not settings.smtp_url:
        return 0
    channel = SmtpChannel.from_url(settings.smtp_url, timeout=10.0)
    for address in settings.alert_emails:
        channel.send(
            OutboundMessage(
                idempotency_key=f"alert:{key}:{address}",
                user_id="operations",
                channel="email",
                address=address,
                content={"title": f"[push-pipeline] {summary}", "body": f"{summary}\n\n{detail}\n"},
                source="alert",
                item_id=None,
            )
        )
    return len(settings.alert_emails)
