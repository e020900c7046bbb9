"""
### Hourly events

Every hour, for the hour that just ended: Spark cleans the landing files of that hour
(quarantine + accounting), then Great Expectations validates the raw batch and the clean
rows it produced. A failing
suite stops the run before anything downstream; success updates the `clean_events` asset.
Then **detect_triggers** finds abandoned carts, browse bursts, price drops and items back in
stock (`push.triggers`, keyed so a trigger exists once), **refresh_recent_intent** rebuilds
each user's recent intent (viewed or carted in the last hour / 24 h, not bought:
`push.recent_intent`) from the interactions detect_triggers just merged, **refresh_recommendations**
folds the events since the live model was trained into the lists of the users who acted (items
they bought or carted leave their lists at once), and **collect_feedback** stores
notification opens, clicks and purchases and refreshes outcomes, send-time estimates and
fatigue caps. The hourly `notifications` run picks the triggers up.
Re-running an hour overwrites exactly that hour's clean partition and leaves triggers and
feedback as they were. The `hours` param (default 1) widens the window to the last N hours, to
catch up after an outage.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag, task

from dags.orchestration import CLEAN_EVENTS, DEFAULT_ARGS, START_DATE, TAGS, fail_fast, run_context


@dag(
    dag_id="hourly_events",
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "hourly"],
    doc_md=__doc__,
    dagrun_timeout=timedelta(minutes=55),
    params={
        "hours": Param(
            1,
            type="integer",
            minimum=1,
            maximum=72,
            description="hours before the logical time to (re)clean and collect feedback from: more than 1"
            " catches up after an outage",
        )
    },
)
def hourly_events():
    @task
    def clean_hour() -> dict:
        from jobs.ingest.tasks import clean

        run = run_context()
        with fail_fast():
            return clean(run.settings, *run.window(hours=run.params["hours"]))

    @task(outlets=[CLEAN_EVENTS])
    def validate_hour() -> dict:
        from jobs.ingest.tasks import validate

        run = run_context()
        with fail_fast():
            return validate(run.settings, *run.window(hours=run.params["hours"]))

    @task
    def detect_triggers() -> dict:
        from jobs.notify.tasks import detect_triggers as detect

        run = run_context()
        return detect(run.settings, run.at)

    @task
    def refresh_recent_intent() -> dict:
        from jobs.profiles.tasks import run_recent_intent

        run = run_context()
        return run_recent_intent(run.settings, run.at)

    @task
    def refresh_recommendations() -> dict:
        from jobs.recs.tasks import refresh_recommendations as refresh

        run = run_context()
        return refresh(run.settings, run.at)

    @task
    def collect_feedback() -> dict:
        from jobs.notify.tasks import collect_feedback as collect

        run = run_context()
        return collect(run.settings, *run.window(hours=run.params["hours"]))

    (
        clean_hour()
        >> validate_hour()
        >> detect_triggers()
        >> refresh_recent_intent()
        >> refresh_recommendations()
        >> collect_feedback()
    )


hourly_events_dag = hourly_events()

if __name__ == "__main__":
    hourly_events_dag.test()
