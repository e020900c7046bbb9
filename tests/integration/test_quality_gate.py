"""The Great Expectations gate: a bad clean batch stops the DAG before profiles and publish."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from sqlalchemy import text

import jobs.ingest.rules as rules_module
from jobs.core.db import truncate_pipeline_tables
from simulation.synthetic import GeneratorConfig, generate
from tests.support import ROOT
from tests.support.servers import MailHandler, smtp_server

pytestmark = pytest.mark.slow


def test_duplicates_slipping_through_the_cleaner_stop_the_daily_dag(settings, engine, airflow_db, spark, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    truncate_pipeline_tables(engine)
    for folder in (settings.landing_dir, settings.lake_dir):
        shutil.rmtree(folder, ignore_errors=True)
    generate(
        GeneratorConfig(users=60, items=50, days=1, seed=5, duplicate_share=0.05, end_date=date(2026, 11, 24)),
        settings.landing_dir,
    )
    # Simulate a cleaner bug: duplicates are no longer removed.
    monkeypatch.setattr(rules_module, "drop_duplicates", lambda frame: frame)

    # Operators are e-mailed through a real SMTP server when a task fails.
    handler = MailHandler()
    with smtp_server(handler) as smtp:
        monkeypatch.setenv("PUSH_SMTP_URL", f"smtp://127.0.0.1:{smtp.port}?from=airflow@example.com")
        monkeypatch.setenv("PUSH_ALERT_EMAILS", "oncall@example.com")
        dag = DagBag(dag_folder=str(ROOT / "dags" / "daily_recommendations.py")).dags["daily_recommendations"]
        run = dag.test(logical_date=datetime(2026, 11, 25, tzinfo=UTC), run_conf={"clean_days": 1})
    [alert] = handler.received
    assert alert.rcpt_tos == ["oncall@example.com"]
    assert b"task validate_events of daily_recommendations failed" in alert.data
    assert b"expect_column_values_to_be_unique" in alert.data

    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed"
    assert states["clean_events"] == "success"
    assert states["validate_events"] == "failed"
    assert {states[t] for t in ("build_profiles", "train_and_evaluate", "publish_recommendations")} == {
        "upstream_failed"
    }
    with engine.connect() as conn:
        suites = dict(conn.execute(text("SELECT suite, success FROM push.validation_runs")).all())
        validation = conn.execute(
            text("SELECT success, failures FROM push.validation_runs WHERE suite = 'clean_events'")
        ).one()
        downstream = conn.execute(
            text("SELECT (SELECT count(*) FROM push.user_profiles) + (SELECT count(*) FROM push.recommendations)")
        ).scalar_one()
    assert suites == {"raw_events": True, "clean_events": False}  # raw data may hold duplicates
    assert validation.success is False
    assert [f["expectation"] for f in validation.failures] == ["expect_column_values_to_be_unique"]
    assert validation.failures[0]["unexpected_count"] > 0
    assert downstream == 0
    docs = settings.local_dir / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    assert docs.exists()
    assert "clean_events" in docs.read_text()
    # The failing suite ran again with examples: its page shows duplicated event ids.
    clean = pd.read_parquet(settings.lake_dir / "clean" / "events", columns=["event_id"])
    duplicated = set(clean["event_id"][clean["event_id"].duplicated()])
    assert duplicated
    pages = [p.read_text() for p in (docs.parent / "validations").rglob("*.html") if "clean_events" in str(p)]
    assert any(event_id in page for page in pages for event_id in duplicated)
