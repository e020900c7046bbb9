"""The Airflow UI in a real browser, with the daily DAG on a real Spark standalone cluster.

Airflow's API server, scheduler and DAG processor run as separate processes (each in its own
process group, always stopped) on a free 127.0.0.1 port, configured by ``devenv.airflow_env``
like ``make airflow``, against the test PostgreSQL. Their tasks run Spark on a standalone master
and worker (2 cores, 1 GB) from the pip pyspark distribution, as a deployment with a cluster
does: ``PUSH_SPARK_MASTER=spark://127.0.0.1:<port>`` is the only difference. A small synthetic
data set is generated first. Headless Chromium (Debian's package) logs in through the simple auth
manager's form, triggers ``daily_recommendations`` from its page, and the run is followed through
the UI until it succeeds (bounded); the REST API only reads the run's state. Screenshots go to
``test-artifacts/airflow-*.png``.

Then the same stage functions the tasks call run again in this process, on the test session's
local Spark, for the run's logical time and into a lake of their own: every table the DAG
writes, the clean Parquet lake and the training ratings must hold the same values as the
cluster's run. The cluster's tasks evaluate expressions without generating code, as the whole
test session does (``tests/conftest.py``); the in-process run generates code (Spark's
default), so the two modes are compared too.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import text

from devenv.airflow_env import ui_login
from jobs.core.db import truncate_pipeline_tables
from jobs.core.spark import temporary_conf
from jobs.core.timeutil import parse_utc
from simulation.synthetic import GeneratorConfig, generate
from tests.support.browser import artifact
from tests.support.spark_standalone import standalone_cluster

pytestmark = pytest.mark.slow

DAG_ID = "daily_recommendations"
PROJECT_DAGS = ("daily_recommendations", "hourly_events", "notifications", "stream_supervisor")
SERVICES = (["api-server", "--workers", "1"], ["scheduler"], ["dag-processor"])
START_TIMEOUT = 120
RUN_TIMEOUT = 480
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str, token: str | None = None, data: dict | None = None, method: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def _stop(process: subprocess.Popen) -> None:
    """Stop one service's whole process group (LocalExecutor workers, task runners, Spark)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@pytest.fixture
def small_data(settings, engine):
    """A small synthetic data set ending today, so that a run triggered now has a day to clean."""
    truncate_pipeline_tables(engine)
    for folder in (settings.landing_dir, settings.lake_dir, settings.outbox_dir, settings.reports_dir):
        shutil.rmtree(folder, ignore_errors=True)
    today = datetime.now(UTC).date()
    return generate(GeneratorConfig(users=80, items=60, days=2, seed=5, end_date=today), settings.landing_dir)


@pytest.fixture
def cluster(tmp_path):
    """A standalone master and one worker (2 cores, 1 GB), stopped after the Airflow services."""
    with standalone_cluster(tmp_path / "spark", cores=2) as running:
        yield running


@pytest.fixture
def airflow_ui(airflow_db, settings, tmp_path, cluster):
    """Airflow services on a free port, their Spark on the cluster; yields (url, user, password, log folder)."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "PUSH_SPARK_MASTER": cluster.master_url,
            "PUSH_SPARK_DRIVER_MEMORY": "1g",
            # Each task's driver and executor live for one short task on small data: C1 alone
            # costs less CPU than C2's compilations save (about a third of the run's time).
            "PUSH_SPARK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1 -Xss16m -XX:+UseParallelGC",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(24),
            # Only the run the test triggers: no scheduled run when the DAG is unpaused.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "PUSH_KMEANS_K_MAX": "3",  # fewer K-means fits: the run only has to succeed
        }
    )
    url, user, password = ui_login(env)
    logs = tmp_path / "airflow-logs"
    logs.mkdir()
    processes = []
    try:
        for command in SERVICES:
            log_file = (logs / f"{command[0]}.log").open("w")
            processes.append(
                subprocess.Popen(
                    ["airflow", *command], env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OSError):
                if _get_json(f"{url}/api/v2/monitor/health").get("metadatabase", {}).get("status") == "healthy":
                    break
            dead = [p.args for p in processes if p.poll() is not None]
            assert not dead, f"Airflow services exited: {dead}; logs in {logs}"
            assert time.monotonic() < deadline, (
                f"the API server did not answer within {START_TIMEOUT} s; logs in {logs}"
            )
            time.sleep(1)
        yield url, user, password, logs
    finally:
        for process in processes:
            _stop(process)
        for name in os.listdir(logs):
            shutil.copy(logs / name, artifact(f"airflow-{name}"))


def _token(url: str, user: str, password: str) -> str:
    return _get_json(f"{url}/auth/token", data={"username": user, "password": password})["access_token"]


def _wait_for_dags(url: str, token: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        dags = {d["dag_id"] for d in _get_json(f"{url}/api/v2/dags?limit=100", token)["dags"]}
        if set(PROJECT_DAGS) <= dags:
            return
        assert time.monotonic() < deadline, f"DAGs not parsed within {timeout} s: {sorted(dags)}"
        time.sleep(2)


def _runs(url: str, token: str) -> list[dict]:
    return _get_json(f"{url}/api/v2/dags/{DAG_ID}/dagRuns?order_by=-run_after", token)["dag_runs"]


def _report_images(browser, path) -> list[int]:
    """Open the report the run wrote, screenshot it, return its plots' natural widths."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    try:
        page.goto(path.resolve().as_uri())
        page.screenshot(path=str(artifact("airflow-run-report.png")), full_page=True)
        return page.evaluate("() => [...document.querySelectorAll('section img')].map(i => i.naturalWidth)")
    finally:
        page.close()


def _tables(engine) -> dict[str, pd.DataFrame]:
    with engine.connect() as conn:
        frames = {}
        for name, sql in TABLES.items():
            result = conn.execute(text(sql))
            frames[name] = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    return frames


def _outputs(engine, lake_dir) -> dict[str, pd.DataFrame]:
    clean = pd.read_parquet(lake_dir / "clean" / "events")
    clean = clean.astype({"landing_date": str, "landing_hour": int})
    ratings = pd.read_parquet(next((lake_dir / "models").glob("*/ratings.parquet")))
    return {
        **_tables(engine),
        "clean_events": clean.sort_values("event_id").reset_index(drop=True),
        "ratings": ratings.sort_values(["user_id", "item_id"]).reset_index(drop=True),
    }


# Spark's defaults, which the test session turns off (``tests/conftest.py``).
CODE_GENERATION = {"spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK"}


def _run_stages_in_process(spark, settings, at: datetime) -> None:
    """What the daily DAG's Spark tasks call, in task order, on this process's local Spark.

    With code generation on: the cluster's tasks evaluate expressions without it, as the whole
    test session does (``tests/conftest.py``), so the comparison covers both modes.
    """
    from jobs.ingest.tasks import clean, load_reference, validate
    from jobs.profiles.tasks import build_profiles
    from jobs.recs.tasks import publish_recommendations, train_and_evaluate

    with temporary_conf(spark, CODE_GENERATION):
        load_reference(settings, at)
        clean(settings, at - timedelta(days=1), at)
        validate(settings, at - timedelta(days=1), at)
        build_profiles(settings, at)
        train_and_evaluate(settings, at)
        publish_recommendations(settings, at)


def test_log_in_trigger_the_daily_dag_on_a_cluster_and_it_matches_local_mode(
    small_data, cluster, airflow_ui, browser, engine, settings, spark, tmp_path
):
    url, user, password, logs = airflow_ui
    started = time.monotonic()
    token = _token(url, user, password)
    _wait_for_dags(url, token)
    _get_json(f"{url}/api/v2/dags/{DAG_ID}", token, data={"is_paused": False}, method="PATCH")
    # Runs an earlier test of the session left (``dag.test()``) are not the one triggered here.
    earlier = {r["dag_run_id"] for r in _runs(url, token)}

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(30_000)
    try:
        page.goto(f"{url}/")
        # The UI redirects to its login form in a few client-side steps; waiting for the form
        # (not for one navigation, which a later step may abort) is what a person sees.
        page.locator("input[name='username']").wait_for()
        assert "/auth/login" in page.url, page.url
        page.fill("input[name='username']", user)
        page.fill("input[name='password']", password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda u: "/auth/login" not in u)

        page.goto(f"{url}/dags")
        for dag_id in PROJECT_DAGS:
            page.get_by_text(dag_id, exact=True).first.wait_for()
        page.screenshot(path=str(artifact("airflow-dags.png")), full_page=True)

        page.goto(f"{url}/dags/{DAG_ID}")
        page.get_by_role("button", name="Trigger").first.click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for()
        page.screenshot(path=str(artifact("airflow-trigger.png")))
        dialog.get_by_role("button", name="Trigger").last.click()

        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            runs = [r for r in _runs(url, token) if r["dag_run_id"] not in earlier]
            states = [r["state"] for r in runs]
            if runs and states[0] in ("success", "failed"):
                break
            assert time.monotonic() < deadline, f"run not finished within {RUN_TIMEOUT} s: {states}; logs in {logs}"
            time.sleep(3)
        run = runs[0]
        page.goto(f"{url}/dags/{DAG_ID}/runs/{run['dag_run_id']}")
        page.get_by_text("success").first.wait_for()
        page.screenshot(path=str(artifact("airflow-run.png")), full_page=True)
    finally:
        page.close()
    elapsed = time.monotonic() - started

    assert [r["run_type"] for r in runs] == ["manual"]
    assert run["state"] == "success", f"run {run['dag_run_id']} ended {run['state']}; logs in {logs}"
    tasks = _get_json(f"{url}/api/v2/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances", token)
    assert {t["state"] for t in tasks["task_instances"]} == {"success"}
    with engine.connect() as conn:
        published = conn.execute(text("SELECT count(*) FROM analytics.current_recommendations")).scalar_one()
        users = conn.execute(text("SELECT count(*) FROM push.users")).scalar_one()
    assert published == users * settings.top_n
    reports = list(settings.reports_dir.glob("evaluation-*.html"))
    assert len(reports) == 1
    html = reports[0].read_text()
    assert "No model runs yet" not in html
    assert "No segments yet" not in html
    assert "No cleaned windows yet" not in html
    widths = _report_images(browser, reports[0])
    assert len(widths) >= 3  # model metrics, data quality, segments (no notifications ran)
    assert all(w > 0 for w in widths)
    print(f"Airflow UI test: services up to run success in {elapsed:.0f} s")

    # Every Spark task ran as an application of the cluster, and finished.
    with urllib.request.urlopen(f"{cluster.web_url}/json/", timeout=5) as response:
        master_state = json.load(response)
    assert not master_state["activeapps"]
    finished = master_state["completedapps"]
    assert len(finished) >= 4, finished  # clean, validate, profiles, training (at least)
    assert {(app["name"], app["cores"]) for app in finished} == {("push-pipeline", 2)}
    on_cluster = _outputs(engine, settings.lake_dir)

    truncate_pipeline_tables(engine)
    assert spark.sparkContext.master.startswith("local")
    at = parse_utc(run["logical_date"] or run["run_after"])  # as the tasks read it (dags.orchestration)
    local_settings = replace(settings, lake_dir=tmp_path / "lake-local", kmeans_k_max=3)
    _run_stages_in_process(spark, local_settings, at)
    local = _outputs(engine, local_settings.lake_dir)

    assert len(local["clean_events"]) > 300
    # About half of the 80 users are active in any 24 hours of the generated days (40 to 50,
    # with the calendar day the run falls on): a real population to segment, not a handful.
    assert local["segments"]["size"].sum() == len(local["user_profiles"]) > 30
    for name, expected in local.items():
        pd.testing.assert_frame_equal(on_cluster[name], expected, check_exact=False, rtol=1e-9, obj=name)
