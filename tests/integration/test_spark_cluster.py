"""The daily DAG on a real Spark standalone cluster gives the same results as local mode.

A master and one worker (2 cores, 1 GB) from the pip pyspark distribution listen on 127.0.0.1.
The daily DAG runs twice for one logical date on one generated data set, each run into a lake of
its own: once in this process on the test session's local Spark, once in a fresh process whose
only difference is ``PUSH_SPARK_MASTER=spark://127.0.0.1:<port>``. Every table the DAG writes,
the clean Parquet lake and the training ratings must hold the same values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from sqlalchemy import text

from jobs.core.db import truncate_pipeline_tables
from simulation.synthetic import GeneratorConfig, generate
from tests.support import ROOT
from tests.support.daily_dag_run import run_daily_dag
from tests.support.spark_standalone import standalone_cluster

pytestmark = pytest.mark.slow

LOGICAL = datetime(2026, 11, 21, tzinfo=UTC)
DAYS = 2
# Everything the daily DAG writes to PostgreSQL (the artifact path names the lake, so it differs).
TABLES = {
    "ingest_runs": "SELECT * FROM push.ingest_runs ORDER BY 1, 2",
    "quarantine": "SELECT * FROM push.quarantine ORDER BY source_file, line_no",
    "daily_event_summary": "SELECT * FROM push.daily_event_summary ORDER BY 1, 2, 3",
    "validation_runs": "SELECT suite, window_start, window_end, success, evaluated, failed, failures"
    " FROM push.validation_runs ORDER BY 1, 2",
    "user_profiles": "SELECT * FROM push.user_profiles ORDER BY as_of, user_id",
    "segments": "SELECT * FROM push.segments ORDER BY as_of, segment",
    "model_runs": "SELECT run_id, as_of, algorithm, params, train_start, train_end, metrics, baseline_metrics,"
    " promoted, decision FROM push.model_runs ORDER BY run_id",
    "recommendations": "SELECT * FROM push.recommendations ORDER BY run_id, user_id, rank",
    "published": "SELECT * FROM push.published_recommendations",
    "item_changes": "SELECT * FROM push.item_changes ORDER BY 1, 2, 3",
}


def _tables(engine) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        frames = {}
        for name, sql in TABLES.items():
            result = conn.execute(text(sql))
            frames[name] = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    return frames


def _lake(lake_dir) -> dict[str, pd.DataFrame]:
    clean = pd.read_parquet(lake_dir / "clean" / "events")
    clean = clean.astype({"landing_date": str, "landing_hour": int})
    ratings = pd.read_parquet(next((lake_dir / "models").glob("*/ratings.parquet")))
    return {
        "clean_events": clean.sort_values("event_id").reset_index(drop=True),
        "ratings": ratings.sort_values(["user_id", "item_id"]).reset_index(drop=True),
    }


def _outputs(engine, lake_dir) -> dict[str, pd.DataFrame]:
    return {**_tables(engine), **_lake(lake_dir)}


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster") / "landing"
    generate(GeneratorConfig(users=60, items=50, days=DAYS, seed=5, end_date=date(2026, 11, 20)), folder)
    return folder


def test_daily_dag_on_a_standalone_cluster_matches_local_mode(
    landing, tmp_path, engine, airflow_db, spark, monkeypatch
):
    monkeypatch.setenv("PUSH_LANDING_DIR", str(landing))
    monkeypatch.setenv("PUSH_LAKE_DIR", str(tmp_path / "lake-local"))
    # Small data: fewer, larger tasks and a narrower k search keep both runs short.
    monkeypatch.setenv("PUSH_KMEANS_K_MAX", "3")
    monkeypatch.setenv("PUSH_SPARK_SHUFFLE_PARTITIONS", "2")
    truncate_pipeline_tables(engine)
    assert run_daily_dag(LOGICAL, DAYS) == "success"
    assert spark.sparkContext.master.startswith("local")
    local = _outputs(engine, tmp_path / "lake-local")

    truncate_pipeline_tables(engine)
    with standalone_cluster(tmp_path / "spark", cores=2) as cluster:
        env = dict(os.environ)
        env.update(
            {
                "PUSH_SPARK_MASTER": cluster.master_url,
                "PUSH_LAKE_DIR": str(tmp_path / "lake-cluster"),
                "PUSH_SPARK_DRIVER_MEMORY": "1g",
            }
        )
        result = subprocess.run(
            [sys.executable, "-m", "tests.support.daily_dag_run", "--logical-date", LOGICAL.isoformat(),
             "--clean-days", str(DAYS)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        with urllib.request.urlopen(f"{cluster.web_url}/json/", timeout=5) as response:
            master_state = json.load(response)
    outcome = json.loads([line for line in result.stdout.splitlines() if line.startswith('{"state"')][-1])
    assert outcome == {"state": "success", "master": cluster.master_url}
    # The application really ran on the cluster's executor, and finished.
    finished = [app for app in master_state["completedapps"] if app["name"] == "push-pipeline"]
    assert len(finished) == 1
    assert finished[0]["cores"] == 2
    on_cluster = _outputs(engine, tmp_path / "lake-cluster")

    assert len(local["clean_events"]) > 400
    assert len(local["recommendations"]) == 60 * 10
    assert local["segments"]["size"].sum() == len(local["user_profiles"]) > 40
    for name, expected in local.items():
        pd.testing.assert_frame_equal(on_cluster[name], expected, check_exact=False, rtol=1e-9, obj=name)
