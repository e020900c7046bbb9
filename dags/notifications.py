"""
### Notifications

Triggered when new recommendations are published (asset `published_recommendations`) and
every hour on the hour. **plan_notifications** applies the policy (consent, control group,
rolling 24 h cap, idempotency) to every candidate and writes each decision with its reason to
`push.notification_decisions` and each accepted message to the outbox
(`push.notification_ledger`); **relay_notifications** delivers pending outbox rows through
the channel adapters. Re-running a slot sends nothing twice.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task

from jobs.orchestration import DEFAULT_ARGS, RECOMMENDATIONS, START_DATE, TAGS, logical_time


@dag(
    dag_id="notifications",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=[RECOMMENDATIONS]),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "notifications"],
    doc_md=__doc__,
)
def notifications():
    @task
    def plan_notifications() -> dict:
        from jobs.core.config import Settings
        from jobs.notify.plan import plan_notifications as plan

        return plan(Settings.from_env(), logical_time(get_current_context()))

    @task
    def relay_notifications() -> dict:
        from jobs.core.config import Settings
        from jobs.notify.relay import relay_pending

        return relay_pending(Settings.from_env())

    plan_notifications() >> relay_notifications()


notifications_dag = notifications()

if __name__ == "__main__":
    notifications_dag.test()
