"""
### Stream supervisor

Keeps the real-time trigger job (`python -m jobs.stream.job`, Spark Structured Streaming over the
landing folder) running and watches it, every hour:

1. **ensure_stream_running** - starts the job in its own process group if the pid file under
   `<local>/stream/` names no live job (its output goes to `<local>/stream/stream.log`).
2. **check_stream_health** - reads the job's per-batch metrics (`push.stream_batches`): last batch
   age while files keep landing, processing lag (file landing to recorded decisions), input vs
   processed rows/s and state size. Fails with the reason when the stream stalls or falls behind.

The job itself decides through the same policy engine as the `notifications` DAG, with one
planning run per micro-batch; its triggers share keys with the hourly detector, so neither path
sends a trigger twice.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from dags.orchestration import DEFAULT_ARGS, START_DATE, TAGS


@dag(
    dag_id="stream_supervisor",
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=[*TAGS, "stream"],
    doc_md=__doc__,
)
def stream_supervisor():
    @task
    def ensure_stream_running() -> dict:
        from jobs.core.config import Settings
        from jobs.stream.tasks import ensure_running

        return ensure_running(Settings.from_env())

    @task
    def check_stream_health(started: dict) -> dict:
        from airflow.sdk.exceptions import AirflowException

        from jobs.core.config import Settings
        from jobs.stream.tasks import check_health

        report = check_health(Settings.from_env())
        if not report.healthy:
            raise AirflowException(report.message())
        return {"started": started["started"], **report.figures}

    check_stream_health(ensure_stream_running())


stream_supervisor_dag = stream_supervisor()

if __name__ == "__main__":
    stream_supervisor_dag.test()
