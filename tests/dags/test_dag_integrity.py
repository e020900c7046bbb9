"""DagBag integrity: every DAG imports, is documented, tagged, retried and alerting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT

EXPECTED = {"daily_recommendations", "erase_user", "hourly_events", "notifications", "stream_supervisor"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors_and_all_dags_present(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_dag_conventions(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.doc_md
    assert dag.doc_md.strip().startswith("###")
    assert "push-notifications" in dag.tags
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert str(dag.start_date.tzinfo) in ("UTC", "Timezone('UTC')", "+00:00")
    for task in dag.tasks:
        assert task.owner == "data-platform"
        assert task.on_failure_callback, f"{dag_id}.{task.task_id} has no failure callback"
        assert task.retry_exponential_backoff


def test_notifications_run_on_published_recommendations_and_hourly(dagbag):
    dag = dagbag.dags["notifications"]
    assert "published_recommendations" in str(dag.timetable.asset_condition)
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"


def test_parsing_touches_no_database_and_starts_no_spark():
    """Parse the DAG folder with every database URL pointing at a closed port."""
    code = (
        "import sys, time; t = time.monotonic();"
        "from airflow.dag_processing.dagbag import DagBag;"
        f"bag = DagBag(dag_folder={str(ROOT / 'dags')!r});"
        "assert not bag.import_errors, bag.import_errors;"
        "assert 'pyspark' not in sys.modules and 'great_expectations' not in sys.modules and 'surprise' not in sys.modules;"
        "print(len(bag.dag_ids))"
    )
    env = dict(os.environ)
    closed = "postgresql+psycopg2://nobody@127.0.0.1:9/none"
    env.update({"PUSH_DATABASE_URL": closed, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": closed})
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == str(len(EXPECTED))


def _imported_modules(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "dags").glob("*.py")), ids=lambda p: p.name)
def test_dag_files_reach_the_stages_only_through_their_tasks_modules(path):
    """Each stage's ``jobs.<stage>.tasks`` is the one place its DAG-facing functions live."""
    stray = {
        module
        for module in _imported_modules(path)
        if module.startswith("jobs.")
        and not module.startswith("jobs.core.")
        and not (module.count(".") == 2 and module.endswith(".tasks"))
    }
    assert not stray, f"{path.name} imports {sorted(stray)}: call the stage's tasks module instead"
