"""
### Erase a user

Manual only (no schedule). Param `user_id`: the user to erase.

1. **erase_user** - records the keyed hash of the id in `push.erased_users` (the suppression list
   the users loader and the cleaner consult, so re-runs do not bring the user back), deletes the
   user's rows from every table of schemas `push` and `analytics` (PII in `push.users`, profiles,
   recommendations, triggers, decisions, outbox and deliveries, feedback, outcomes, quarantined
   lines naming them), rewrites the lake's Parquet files without them, deletes model artifacts
   trained on them and their outbox files, then searches every table and file again and fails,
   naming the places, if the id is still anywhere.

Running it again for the same user is harmless. The run's params keep the id in Airflow's
metadata: `make erase-user USER=...` does the same without an Airflow run.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from dags.orchestration import DEFAULT_ARGS, START_DATE, TAGS, run_context


@dag(
    dag_id="erase_user",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "privacy"],
    doc_md=__doc__,
    params={"user_id": Param("", type="string", minLength=1, description="the user to erase everywhere")},
)
def erase_user():
    @task
    def erase_user_everywhere() -> dict:
        from jobs.privacy.tasks import erase_user as erase

        run = run_context()
        return erase(run.settings, run.params["user_id"], run.at)

    erase_user_everywhere()


erase_user_dag = erase_user()

if __name__ == "__main__":
    erase_user_dag.test()
