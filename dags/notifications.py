"""
### Notifications

Triggered when new recommendations are published (asset `published_recommendations`: plans
the next 24 hours of send moments) and every hour on the hour (plans the users whose best hour
is now, and every trigger due this hour).

1. **plan_notifications** - collects candidates (top recommendations, targeted campaigns,
   triggers: abandoned carts, browse intent, price drops, back in stock), then applies the
   policy in PostgreSQL, in order: consent, control group, idempotency, quiet hours (deferral),
   frequency caps (min gap, 24 h, 7 d, per channel, per campaign; fatigued users get lower
   caps); the highest expected value wins. Every decision is a row in
   `push.notification_decisions` with its reason; accepted messages go to the outbox
   (`push.notification_ledger`) in the same transaction.
2. **relay_notifications** - delivers due outbox rows through the channel adapters (SMTP,
   signed HTTP gateways, file sink), with retries, backoff and dead letters.

Params: `horizon_hours` (default 24 for asset-triggered runs, else 1), `campaign_id` (plan one
campaign only), `dry_run` (decide and count, record and send nothing), `relay_ahead_hours`
(also deliver messages scheduled up to that many hours after the logical time: backfills and
demos). Re-running a run decides nothing twice and sends nothing twice.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from dags.orchestration import DEFAULT_ARGS, RECOMMENDATIONS, START_DATE, TAGS, planning_horizon, run_context


@dag(
    dag_id="notifications",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=[RECOMMENDATIONS]),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "notifications"],
    doc_md=__doc__,
    params={
        "horizon_hours": Param(
            None, type=["null", "integer"], minimum=1, maximum=48, description="plan send moments this far ahead"
        ),
        "campaign_id": Param(None, type=["null", "string"], description="plan only this campaign"),
        "dry_run": Param(False, type="boolean", description="decide and count; record and send nothing"),
        "relay_ahead_hours": Param(
            0, type="integer", minimum=0, maximum=48, description="also deliver messages scheduled this far ahead"
        ),
    },
)
def notifications():
    @task
    def plan_notifications() -> dict:
        from jobs.notify.tasks import plan_notifications as plan

        run = run_context()
        if run.params["dry_run"] and run.params["campaign_id"]:
            from jobs.notify.tasks import preview_audience

            # A campaign's dry run previews its audience: size, a sample, what would be decided.
            preview = preview_audience(run.settings, run.params["campaign_id"], run.at, planning_horizon(run))
            return {"dry_run": True, "audience_preview": preview}
        return plan(
            run.settings,
            run.at,
            planning_horizon(run),
            campaign_id=run.params["campaign_id"],
            dry_run=run.params["dry_run"],
        )

    @task
    def relay_notifications(plan: dict) -> dict:
        from datetime import timedelta

        from jobs.notify.tasks import relay_pending

        if plan["dry_run"]:
            return {"skipped": "dry run"}
        run = run_context()
        until = run.at + timedelta(hours=run.params["relay_ahead_hours"])
        return relay_pending(run.settings, until=until, as_of=run.at)

    relay_notifications(plan_notifications())


notifications_dag = notifications()

if __name__ == "__main__":
    notifications_dag.test()
