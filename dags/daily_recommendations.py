"""
### Daily recommendations

Runs at 00:00 UTC for the day that just ended (logical time = end of the window):

1. **load_reference** - users, catalogue and campaigns snapshots into PostgreSQL; price drops
   and items back in stock versus the previous catalogue go to `push.item_changes`.
2. **clean_events** - Spark cleans the last `clean_days` days of landing files (quarantine and
   accounting in `push.ingest_runs`).
3. **validate_events** - Great Expectations suites `raw_events` and `clean_events`; failure stops the run.
4. **build_profiles** - Spark profiles + K-means segments (`push.user_profiles`, `push.segments`).
5. **train_and_evaluate** - Surprise SVD, chronological hold-out, popularity baseline, gate.
6. **publish_recommendations** - top-N for every user, swapped in atomically; updates the
   `published_recommendations` asset, which triggers the `notifications` DAG.
7. **report** - the evaluation report (HTML with plots: model metrics vs baseline, data quality,
   segments, notifications, send hours, CTR/CVR and lift) under `<local dir>/reports/`.

Re-running a date replaces exactly what that date wrote.
"""

from __future__ import annotations

import logging

from airflow.sdk import Param, dag, get_current_context, task

from jobs.orchestration import DEFAULT_ARGS, RECOMMENDATIONS, START_DATE, TAGS, fail_fast, logical_time

log = logging.getLogger(__name__)


def _settings_and_time():
    from jobs.core.config import Settings

    context = get_current_context()
    return Settings.from_env(), logical_time(context), context["params"]


@dag(
    dag_id="daily_recommendations",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "daily"],
    doc_md=__doc__,
    params={
        "clean_days": Param(1, type="integer", minimum=1, maximum=90, description="days of landing files to (re)clean")
    },
)
def daily_recommendations():
    @task
    def load_reference() -> dict:
        from jobs.ingest.reference import load_reference as load

        settings, as_of, _ = _settings_and_time()
        return load(settings, as_of)

    @task
    def clean_events() -> dict:
        from datetime import timedelta

        from jobs.core.spark import get_spark
        from jobs.ingest.clean import clean_window

        settings, as_of, params = _settings_and_time()
        with fail_fast():
            result = clean_window(get_spark(settings), settings, as_of - timedelta(days=params["clean_days"]), as_of)
        return result.counts()

    @task
    def validate_events() -> dict:
        from datetime import timedelta

        from jobs.ingest.validate import validate_clean_window

        settings, as_of, params = _settings_and_time()
        with fail_fast():
            outcomes = validate_clean_window(settings, as_of - timedelta(days=params["clean_days"]), as_of)
        return {o.suite: {"evaluated": o.evaluated, "docs": str(o.docs_path)} for o in outcomes}

    @task
    def build_profiles() -> dict:
        from jobs.core.spark import get_spark
        from jobs.profiles.job import run_profiles

        settings, as_of, _ = _settings_and_time()
        return run_profiles(get_spark(settings), settings, as_of)

    @task
    def train_and_evaluate() -> dict:
        from jobs.core.spark import get_spark
        from jobs.recs.job import train_and_evaluate as train

        settings, as_of, _ = _settings_and_time()
        return train(get_spark(settings), settings, as_of)

    @task(outlets=[RECOMMENDATIONS])
    def publish_recommendations() -> dict:
        from jobs.recs.job import publish_recommendations as publish

        settings, as_of, _ = _settings_and_time()
        return publish(settings, as_of)

    @task
    def report() -> str:
        from jobs.report.job import report_path_for, write_report

        settings, as_of, _ = _settings_and_time()
        path = write_report(settings, report_path_for(settings, as_of), until=as_of)
        log.info("Evaluation report written: %s", path)
        return str(path)

    (
        load_reference()
        >> clean_events()
        >> validate_events()
        >> build_profiles()
        >> train_and_evaluate()
        >> publish_recommendations()
        >> report()
    )


daily_recommendations_dag = daily_recommendations()

if __name__ == "__main__":
    daily_recommendations_dag.test()
