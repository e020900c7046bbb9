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

from airflow.sdk import Param, dag, task

from dags.orchestration import DEFAULT_ARGS, RECOMMENDATIONS, START_DATE, TAGS, fail_fast, run_context

log = logging.getLogger(__name__)


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
        from jobs.ingest.tasks import load_reference as load

        run = run_context()
        return load(run.settings, run.at)

    @task
    def clean_events() -> dict:
        from jobs.ingest.tasks import clean

        run = run_context()
        with fail_fast():
            return clean(run.settings, *run.window(days=run.params["clean_days"]))

    @task
    def validate_events() -> dict:
        from jobs.ingest.tasks import validate

        run = run_context()
        with fail_fast():
            return validate(run.settings, *run.window(days=run.params["clean_days"]))

    @task
    def build_profiles() -> dict:
        from jobs.profiles.tasks import build_profiles as build

        run = run_context()
        return build(run.settings, run.at)

    @task
    def train_and_evaluate() -> dict:
        from jobs.recs.tasks import train_and_evaluate as train

        run = run_context()
        return train(run.settings, run.at)

    @task(outlets=[RECOMMENDATIONS])
    def publish_recommendations() -> dict:
        from jobs.recs.tasks import publish_recommendations as publish

        run = run_context()
        return publish(run.settings, run.at)

    @task
    def report() -> str:
        from jobs.report.tasks import write_daily_report

        run = run_context()
        path = write_daily_report(run.settings, run.at)
        log.info("Evaluation report written: %s", path)
        return path

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
