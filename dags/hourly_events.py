"""
### Hourly events

Every hour, for the hour that just ended: Spark cleans the landing files of that hour
(quarantine + accounting), then Great Expectations validates the raw batch and the clean
rows it produced. A failing
suite stops the run before anything downstream; success updates the `clean_events` asset.
Then **detect_triggers** finds abandoned carts, browse bursts, price drops and items back in
stock (`push.triggers`, keyed so a trigger exists once), **refresh_recent_intent** rebuilds
each user's recent intent (viewed or carted in the last hour / 24 h, not bought:
`push.recent_intent`) from the interactions detect_triggers just merged, and **collect_feedback** stores
notification opens, clicks and purchases and refreshes outcomes, send-time estimates and
fatigue caps. The hourly `notifications` run picks the triggers up.
Re-running an hour overwrites exactly that hour's clean partition and leaves triggers and
feedback as they were.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag, get_current_context, task

from jobs.orchestration import CLEAN_EVENTS, DEFAULT_ARGS, START_DATE, TAGS, fail_fast, logical_time


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
)
def hourly_events():
    @task
    def clean_hour() -> dict:
        from jobs.core.config import Settings
        from jobs.core.spark import get_spark
        from jobs.ingest.clean import clean_window

        settings, end = Settings.from_env(), logical_time(get_current_context())
        with fail_fast():
            result = clean_window(get_spark(settings), settings, end - timedelta(hours=1), end)
        return result.counts()

    @task(outlets=[CLEAN_EVENTS])
    def validate_hour() -> dict:
        from jobs.core.config import Settings
        from jobs.ingest.validate import validate_clean_window

        settings, end = Settings.from_env(), logical_time(get_current_context())
        with fail_fast():
            outcomes = validate_clean_window(settings, end - timedelta(hours=1), end)
        return {o.suite: {"evaluated": o.evaluated, "docs": str(o.docs_path)} for o in outcomes}

    @task
    def detect_triggers() -> dict:
        from jobs.core.config import Settings
        from jobs.core.spark import get_spark
        from jobs.notify.triggers import detect_triggers as detect

        settings, end = Settings.from_env(), logical_time(get_current_context())
        return detect(get_spark(settings), settings, end)

    @task
    def refresh_recent_intent() -> dict:
        from jobs.core.config import Settings
        from jobs.profiles.intent import run_recent_intent

        return run_recent_intent(Settings.from_env(), logical_time(get_current_context()))

    @task
    def collect_feedback() -> dict:
        from jobs.core.config import Settings
        from jobs.core.spark import get_spark
        from jobs.notify.feedback import run_feedback

        settings, end = Settings.from_env(), logical_time(get_current_context())
        return run_feedback(get_spark(settings), settings, end - timedelta(hours=1), end)

    clean_hour() >> validate_hour() >> detect_triggers() >> refresh_recent_intent() >> collect_feedback()


hourly_events_dag = hourly_events()

if __name__ == "__main__":
    hourly_events_dag.test()
