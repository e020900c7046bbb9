"""Run the daily DAG (``dag.test()``) for one logical date in a process of its own.

A SparkContext is one per process, so a run against another Spark master than the test session's
needs a fresh interpreter: ``python -m tests.support.daily_dag_run --logical-date ...``. The
master, lake and database come from the environment (``PUSH_*``), as in production; the line it
prints starting with ``{"state"`` is a JSON object with the run's state and the master its Spark session ran on.
"""

from __future__ import annotations

import argparse
import json

from jobs.core.timeutil import parse_utc
from tests.support import ROOT


def run_daily_dag(logical_date, clean_days: int) -> str:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "daily_recommendations.py"))
    assert not bag.import_errors, bag.import_errors
    run = bag.dags["daily_recommendations"].test(logical_date=logical_date, run_conf={"clean_days": clean_days})
    return str(run.state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--logical-date", type=parse_utc, required=True)
    parser.add_argument("--clean-days", type=int, default=1)
    args = parser.parse_args(argv)
    state = run_daily_dag(args.logical_date, args.clean_days)
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    master = session.sparkContext.master if session else None
    if session:
        session.stop()
    print(json.dumps({"state": state, "master": master}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
