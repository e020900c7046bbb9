"""Shared fixtures: a real PostgreSQL started for the session, a local SparkSession, Airflow.

The embedded cluster of the tests lives in its own folder (never the demo's), is started in
``pytest_configure`` (before anything imports Airflow, which reads its configuration at
import), and is destroyed at the end of the session. A run of the unit tier alone
(``pytest tests/unit``) starts no cluster: unit tests need no database.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import ROOT, scratch_root

_CLUSTER = None
_LOCAL: Path | None = None


def pytest_configure(config):
    global _CLUSTER, _LOCAL
    local = _LOCAL = Path(tempfile.mkdtemp(prefix="test-", dir=scratch_root()))
    os.environ.update(
        {
            "PUSH_LOCAL_DIR": str(local),
            "PUSH_TASK_RETRIES": "0",
            "PUSH_SPARK_MASTER": "local[2]",
            "PUSH_SPARK_SHUFFLE_PARTITIONS": "4",
            "PUSH_KMEANS_K_MAX": "4",
            "PUSH_SVD_EPOCHS": "20",
            # The tests' one long-lived driver runs hundreds of small jobs on a small heap: the
            # parallel collector's cheaper write barriers beat G1 there (repeated DAG run -10 %).
            "PUSH_SPARK_JAVA_OPTIONS": "-XX:+UseParallelGC",
            # One driver serves the whole session; at 2 GB its live heap reached 1.5 GB late in
            # the suite and full collections took 196 s of pauses (-Xlog:gc).
            "PUSH_SPARK_DRIVER_MEMORY": "4g",
            # Expressions evaluated, not compiled: on the tests' small frames, generating Java for
            # each query, compiling it with Janino and then JIT-compiling it costs more than
            # running it (the pipeline module 232 -> 190 s). Spark's own test suites run this way.
            # The Airflow UI test runs the stages again with code generation: both modes must match.
            "PUSH_SPARK_CONF": "spark.sql.codegen.wholeStage=false spark.sql.codegen.factoryMode=NO_CODEGEN",
            # Benchmarks run by tests record their runs here, not in benchmarks/results.jsonl.
            "PUSH_BENCH_RESULTS": str(local / "bench-results.jsonl"),
        }
    )
    os.environ.pop("PUSH_DATABASE_URL", None)
    os.environ.pop("AIRFLOW_CONN_PUSH_DB", None)
    if not _database_needed(config):
        return
    from devenv.localdb import EmbeddedPostgres
    from jobs.core.db import apply_migrations, make_engine

    _CLUSTER = EmbeddedPostgres.default()
    url = _CLUSTER.start()
    apply_migrations(make_engine(url))
    from devenv.airflow_env import airflow_environment

    os.environ.update(airflow_environment())


def _database_needed(config) -> bool:
    """False when every path asked for lies in the unit tier."""
    unit = ROOT / "tests" / "unit"
    for arg in config.args:
        path = (Path(config.invocation_params.dir) / arg.split("::")[0]).resolve()
        if not path.is_relative_to(unit):
            return True
    return False


def pytest_unconfigure(config):
    if "airflow.settings" in sys.modules:  # close Airflow's pooled connections before the server goes
        sys.modules["airflow.settings"].dispose_orm()
    if _CLUSTER is not None:
        _CLUSTER.destroy()
    if _LOCAL is not None:
        shutil.rmtree(_LOCAL, ignore_errors=True)


@pytest.fixture(scope="session")
def settings():
    from jobs.core.config import Settings

    return Settings.from_env()


@pytest.fixture(scope="session")
def engine(settings):
    from jobs.core.db import make_engine

    return make_engine(settings.database_url)


@pytest.fixture(scope="session")
def spark(settings):
    from jobs.core.spark import get_spark

    session = get_spark(settings, app_name="push-tests")
    yield session
    session.stop()


@pytest.fixture
def policy_settings(settings):
    """Notification policy with no control group, no quiet hours, one message a day: each
    test turns on what it checks."""
    from dataclasses import replace

    return replace(
        settings,
        holdout_percent=0.0,
        daily_cap=1,
        weekly_cap=10,
        min_gap_minutes=60,
        quiet_hours_start="00:00",
        quiet_hours_end="00:00",
        channel_daily_caps={},
        campaign_cap=1,
    )


@pytest.fixture
def empty_db(engine):
    """Every pipeline table emptied, so a test starts from nothing."""
    from jobs.core.db import truncate_pipeline_tables

    truncate_pipeline_tables(engine)
    return engine


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata schema in the test cluster (migrated once per session)."""
    from devenv.airflow_env import migrate_metadata

    migrate_metadata(dict(os.environ))
    return True


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's package) driven by Playwright; see ``tests/support/browser.py``.

    Module-scoped: Playwright's synchronous API keeps an event loop, which should not outlive
    the browser tests into modules that run their own."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import FLAGS, ensure_chromium

    executable = ensure_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), headless=True, args=FLAGS)
        yield chromium
        chromium.close()
