"""Notification run report: what each planning run decided, delivered and earned, and its lift.

A thin reader of the view ``analytics.notification_run_report`` (migration 0005), one row per
planning run. Its measures:

- ``users``, ``candidates``: users decided for and candidate messages considered by the run.
- ``queued``: decisions that put a message into the outbox (``sent`` + ``deferred_quiet_hours``);
  ``deferred`` is the part queued for the end of the user's quiet hours.
- One column per suppression reason (``suppressed_consent``, ``holdout``, ``duplicate``,
  ``expired`` (including ``expired_quiet_hours``), ``capped_min_gap``, ``capped_daily``,
  ``capped_weekly``, ``capped_channel``, ``capped_campaign``, and, last of the view's columns,
  ``skipped_uplift``) and ``other_decisions`` for codes the view does not know, so that
  ``candidates = queued + suppressions + other_decisions``.
- What became of the queued messages in the outbox: ``delivered``, ``dead``, ``cancelled``
  (consent withdrawn before sending), ``expired_in_outbox``, ``pending``.
- Engagement of delivered messages within the feedback step's attribution window
  (``push.message_outcomes``): ``opens``, ``clicks``, ``conversions``, ``revenue``;
  ``ctr = clicks / delivered`` and ``cvr = conversions / delivered``.
- Lift against the control group (``push.decision_outcomes``, intent to treat: one row per run
  and user; treatment = decided for and not held out, control = held out). With
  ``p1 = treatment_conversions / treatment_users`` and ``p2`` likewise for control:

  - ``absolute_lift = p1 - p2``, 95 % Wald interval
    ``p1 - p2 -/+ 1.96 * sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2)``;
  - ``relative_lift = p1 / p2 - 1``, 95 % Katz interval from the log risk ratio
    ``exp(ln(p1 / p2) -/+ 1.96 * sqrt((1 - p1) / (n1 p1) + (1 - p2) / (n2 p2))) - 1``.

  The Wald interval is a normal approximation: with few conversions per arm it is too narrow,
  so read it together with ``treatment_conversions`` and ``control_conversions``.

Ratios are NULL (``null`` in JSON), never a division error, where a denominator is 0: rates
without users, lift without a control group, the relative lift when the control rate is 0 and
the Katz interval when either rate is 0.

CLI: ``python -m jobs.notify.report [--run-key KEY]`` prints the run (or the latest 20 runs,
newest first) as JSON; exit status 1 when a requested run does not exist.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import make_engine

LATEST_RUNS = 20

_ONE_RUN = "SELECT * FROM analytics.notification_run_report WHERE run_key = :run_key"
_LATEST = "SELECT * FROM analytics.notification_run_report ORDER BY logical_time DESC, run_key DESC LIMIT :limit"


def notification_report(settings: Settings, run_key: str | None = None) -> list[dict]:
    """Rows of ``analytics.notification_run_report`` as dicts (column name -> value).

    Args:
        settings: pipeline settings (the database).
        run_key: one run; ``None`` for the latest :data:`LATEST_RUNS` runs, newest first.

    Returns:
        ``[]`` when the run does not exist (or there are no runs), else one dict per run.
    """
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        if run_key is None:
            result = conn.execute(text(_LATEST), {"limit": LATEST_RUNS})
        else:
            result = conn.execute(text(_ONE_RUN), {"run_key": run_key})
        return [dict(row) for row in result.mappings()]


def _json_value(value):
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-key", default=None, help="report this run (default: the latest 20 runs)")
    args = parser.parse_args(argv)
    rows = notification_report(Settings.from_env(), args.run_key)
    print(json.dumps(rows, indent=2, default=_json_value))
    if args.run_key is not None and not rows:
        print(f"no notification run {args.run_key!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
