"""A campaign's audience before it runs: how many users it names, a sample, and what the policy would do.

The members come from ``push.campaign_audience`` (the same function the planner joins, so the
preview and the run cannot disagree); what would be sent, capped, held for quiet hours or
refused for consent comes from a dry run of the real planner for this campaign alone
(decided, counted and rolled back). The sample shows pseudonymous user keys, never user ids or
demographics. A campaign with no audience is previewed by its dry run alone (the taste rule).

CLI: ``python -m jobs.notify.audience --campaign spring-shoes [--at 2026-11-25T08:00:00Z] [--sample 10]``;
the notifications DAG shows the same preview for a dry run with ``campaign_id`` set.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import make_engine
from jobs.core.timeutil import parse_utc
from jobs.notify.plan import plan_notifications

_MEMBERS = """
SELECT count(*) AS members,
       (ARRAY_AGG(k.user_key ORDER BY k.user_key) FILTER (WHERE k.user_key IS NOT NULL))[1:CAST(:sample AS integer)]
           AS sample
FROM push.campaign_audience(CAST(:audience AS jsonb), CAST(:at AS timestamptz)) AS m
LEFT JOIN push.user_pseudonyms k ON k.user_id = m.user_id
"""


def preview_audience(
    settings: Settings, campaign_id: str, at: datetime, horizon_hours: int = 24, sample: int = 10
) -> dict:
    """Members, a sample of their pseudonymous keys, and the dry-run decisions of ``campaign_id`` at ``at``."""
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        audience = conn.execute(
            text("SELECT audience FROM push.campaigns WHERE campaign_id = :c"), {"c": campaign_id}
        ).one_or_none()
        if audience is None:
            raise ValueError(f"campaign {campaign_id!r} is not in push.campaigns (load campaigns.csv first)")
        definition = audience.audience
        members = None
        if definition is not None:
            members = conn.execute(
                text(_MEMBERS), {"audience": json.dumps(definition), "at": at, "sample": sample}
            ).one()
    plan = plan_notifications(settings, at, horizon_hours, campaign_id=campaign_id, kinds=("campaign",), dry_run=True)
    return {
        "campaign_id": campaign_id,
        "at": at.isoformat(),
        "audience": definition,
        "members": None if members is None else int(members.members),
        "sample_user_keys": [] if members is None else list(members.sample or []),
        "would_decide": plan["decisions"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaign", required=True)
    parser.add_argument("--at", type=parse_utc, default=datetime.now(UTC), help="ISO time, UTC (default now)")
    parser.add_argument("--horizon-hours", type=int, default=24)
    parser.add_argument("--sample", type=int, default=10)
    args = parser.parse_args(argv)
    preview = preview_audience(Settings.from_env(), args.campaign, args.at, args.horizon_hours, args.sample)
    print(json.dumps(preview, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
