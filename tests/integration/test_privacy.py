"""Privacy on real PostgreSQL, Spark and Airflow: pseudonymous analyst views, the read-only
analyst role, and erasure of a user that a re-run does not undo.

One small pipeline (users snapshot, cleaning, profiles, training, publishing, triggers,
feedback, planning and delivery to the file sink) runs; the ``erase_user`` DAG erases the user
with the most traces; the same stages run again; then the id must be nowhere - no text, JSON or
array column of any table or view in push and analytics, no lake file, no outbox file - and only
its keyed hash is in the suppression list.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from jobs.core.db import truncate_pipeline_tables
from jobs.privacy.erase import find_mentions, parquet_files_with
from jobs.privacy.pseudonym import pseudonym
from simulation.synthetic import GeneratorConfig, generate
from tests.support import ROOT

pytestmark = pytest.mark.slow

AS_OF = datetime(2026, 11, 19, tzinfo=UTC)
DAYS = 2
PII_COLUMNS = ("email", "phone", "push_token", "webhook_url", "age_band", "gender", "region")
INSUFFICIENT_PRIVILEGE = "42501"


def run_stages(spark, settings) -> None:
    """The daily and hourly stages and one day of notifications, for ``AS_OF``."""
    from jobs.ingest.clean import clean_window
    from jobs.ingest.reference import load_reference
    from jobs.notify.feedback import run_feedback
    from jobs.notify.plan import plan_notifications
    from jobs.notify.relay import relay_pending
    from jobs.notify.triggers import detect_triggers
    from jobs.profiles.job import run_profiles
    from jobs.recs.job import publish_recommendations, train_and_evaluate

    load_reference(settings, AS_OF)
    clean_window(spark, settings, AS_OF - timedelta(days=DAYS), AS_OF)
    run_profiles(spark, settings, AS_OF)
    train_and_evaluate(spark, settings, AS_OF)
    publish_recommendations(settings, AS_OF)
    detect_triggers(spark, settings, AS_OF)
    run_feedback(spark, settings, AS_OF - timedelta(days=DAYS), AS_OF)
    plan_notifications(settings, AS_OF, 24)
    relay_pending(settings, until=AS_OF + timedelta(hours=24), as_of=AS_OF)


@pytest.fixture(scope="module")
def privacy_settings(tmp_path_factory, settings):
    from dataclasses import replace

    folder = tmp_path_factory.mktemp("privacy")
    return replace(
        settings,
        landing_dir=folder / "landing",
        lake_dir=folder / "lake",
        outbox_dir=folder / "outbox",
        # Every queued message goes out: more traces of the user to erase.
        holdout_percent=0.0,
        quiet_hours_start="00:00",
        quiet_hours_end="00:00",
    )


def _user_with_most_traces(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT l.user_id FROM push.notification_ledger l"
                " JOIN push.recommendations r USING (user_id)"
                " WHERE l.status = 'sent' AND l.user_id IN (SELECT user_id FROM push.triggers)"
                " GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
            )
        ).scalar_one()


def _add_malformed_line(landing_dir, user_id: str) -> None:
    """A line the cleaner cannot parse, naming the user (it goes to quarantine with its text)."""
    hour = AS_OF - timedelta(hours=3)
    folder = landing_dir / "events" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
    (folder / "zz-broken.jsonl").write_text(f'{{"event_id": "broken-1", "user_id": "{user_id}", "event_type": \n')


@pytest.fixture(scope="module")
def erased(privacy_settings, engine, spark, airflow_db, monkeypatch_module):
    """Run the pipeline, erase one user with the DAG, run the pipeline again."""
    settings = privacy_settings
    for name, value in {
        "PUSH_LANDING_DIR": settings.landing_dir,
        "PUSH_LAKE_DIR": settings.lake_dir,
        "PUSH_OUTBOX_DIR": settings.outbox_dir,
    }.items():
        monkeypatch_module.setenv(name, str(value))
    truncate_pipeline_tables(engine)
    generate(GeneratorConfig(users=50, items=40, days=DAYS, seed=3, end_date=date(2026, 11, 18)), settings.landing_dir)
    run_stages(spark, settings)
    user_id = _user_with_most_traces(engine)
    _add_malformed_line(settings.landing_dir, user_id)
    from jobs.ingest.clean import clean_window

    clean_window(spark, settings, AS_OF - timedelta(days=DAYS), AS_OF)
    with engine.connect() as conn:
        before = find_mentions(conn, user_id)
    before_files = parquet_files_with(settings.lake_dir, user_id)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "erase_user.py"))
    assert not bag.import_errors
    run = bag.dags["erase_user"].test(logical_date=AS_OF + timedelta(hours=1), run_conf={"user_id": user_id})
    state = str(run.state)
    run_stages(spark, settings)
    return {"user_id": user_id, "before": before, "before_files": before_files, "state": state}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_the_user_had_traces_everywhere_before_the_erasure(erased):
    places = set(erased["before"])
    for expected in (
        "push.users.user_id",
        "push.user_pseudonyms.user_id",
        "push.recommendations.user_id",
        "push.user_profiles.user_id",
        "push.notification_ledger.user_id",
        "push.notification_decisions.user_id",
        "push.triggers.user_id",
        "push.quarantine.raw",
    ):
        assert expected in places
    assert any("clean/events" in str(path) for path in erased["before_files"])
    assert any(path.name == "ratings.parquet" for path in erased["before_files"])


def test_after_erasure_and_a_rerun_the_user_is_only_a_hash_in_the_suppression_list(erased, engine, privacy_settings):
    assert erased["state"] == "success"
    user_id = erased["user_id"]
    with engine.connect() as conn:
        assert find_mentions(conn, user_id) == {}
        suppression = conn.execute(text("SELECT user_key, removed FROM push.erased_users")).all()
        by_reason = conn.execute(
            text("SELECT by_reason FROM push.ingest_runs WHERE window_end = :e ORDER BY window_start LIMIT 1"),
            {"e": AS_OF},
        ).scalar_one()
        still_served = conn.execute(text("SELECT count(*) FROM push.recommendations")).scalar_one()
    key = pseudonym(user_id, privacy_settings.pseudonym_key)
    assert [row.user_key for row in suppression] == [key]
    removed = suppression[0].removed
    assert removed["push.users.user_id"] == 1
    assert removed["lake_rows"] > 0
    assert removed["outbox_files_deleted"] > 0
    # The re-run read the user's landing lines again: counted, kept nowhere.
    assert by_reason["erased_user"] > 0
    assert still_served == 49 * privacy_settings.top_n
    assert parquet_files_with(privacy_settings.lake_dir, user_id) == []
    for path in privacy_settings.outbox_dir.rglob("*"):
        assert not path.is_file() or user_id not in path.read_text()


def _as_analyst(engine, sql: str):
    with engine.connect() as conn, conn.begin():
        conn.execute(text("SET LOCAL ROLE push_analyst"))
        return conn.execute(text(sql)).all()


def test_analyst_views_carry_pseudonyms_only(erased, engine, privacy_settings):
    rows = _as_analyst(engine, "SELECT user_key, rank, title FROM analytics.latest_recommendations")
    with engine.connect() as conn:
        keys = dict(conn.execute(text("SELECT user_id, user_key FROM push.user_pseudonyms")).all())
    assert len(rows) == 49 * privacy_settings.top_n
    assert {row.user_key for row in rows} == set(keys.values())
    assert all(keys[user] == pseudonym(user, privacy_settings.pseudonym_key) for user in keys)
    assert all(row.title for row in rows)
    facts = _as_analyst(engine, "SELECT user_key, decision FROM analytics.notification_facts")
    assert facts
    assert {row.user_key for row in facts} <= set(keys.values())
    segments = _as_analyst(engine, "SELECT sum(size), sum(share) FROM analytics.segment_summary")
    assert segments[0][0] > 0
    assert float(segments[0][1]) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT email FROM push.users",
        "SELECT * FROM push.user_pseudonyms",
        "SELECT user_id FROM analytics.current_recommendations",
        "SELECT * FROM analytics.dead_letters",
        "INSERT INTO push.erased_users (user_key, erased_at) VALUES ('x', now())",
        "DELETE FROM push.recommendations",
        "UPDATE push.users SET email = NULL",
        "CREATE TABLE analytics.scratch (x int)",
        "CREATE TABLE public.scratch (x int)",
        "CREATE VIEW analytics.scratch AS SELECT 1 AS x",
        "DROP VIEW analytics.latest_recommendations",
        "SELECT push.refresh_analyst_grants()",
    ],
)
def test_the_analyst_role_can_neither_write_nor_read_pii(erased, engine, sql):
    with pytest.raises(ProgrammingError) as refused:
        _as_analyst(engine, sql)
    assert refused.value.orig.pgcode == INSUFFICIENT_PRIVILEGE


def test_every_relation_the_analyst_reads_is_free_of_identifying_columns(erased, engine):
    with engine.connect() as conn:
        readable = conn.execute(
            text(
                "SELECT c.relname, array_agg(a.attname::text) AS columns FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
                " WHERE has_table_privilege('push_analyst', c.oid, 'SELECT') AND c.relkind IN ('r', 'v', 'm')"
                " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                " GROUP BY 1"
            )
        ).all()
        schemas = (
            conn.execute(
                text(
                    "SELECT DISTINCT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE has_table_privilege('push_analyst', c.oid, 'SELECT')"
                    " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                )
            )
            .scalars()
            .all()
        )
        pii_readable = [
            column
            for column in PII_COLUMNS
            if conn.execute(
                text("SELECT has_column_privilege('push_analyst', 'push.users', :c, 'SELECT')"), {"c": column}
            ).scalar_one()
        ]
        writable = conn.execute(
            text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname IN ('push', 'analytics', 'public') AND c.relkind IN ('r', 'v', 'm', 'p')"
                " AND (has_table_privilege('push_analyst', c.oid, 'INSERT')"
                "   OR has_table_privilege('push_analyst', c.oid, 'UPDATE')"
                "   OR has_table_privilege('push_analyst', c.oid, 'DELETE')"
                "   OR has_table_privilege('push_analyst', c.oid, 'TRUNCATE'))"
            )
        ).scalar_one()
    names = {row.relname for row in readable}
    assert schemas == ["analytics"]
    assert {"latest_recommendations", "segment_summary", "notification_facts", "user_profile_facts"} <= names
    assert {"notification_run_report", "campaign_report", "ingest_accounting"} <= names
    identifying = {"user_id", "idempotency_key", "raw", *PII_COLUMNS}
    assert all(not identifying & set(row.columns) for row in readable)
    assert pii_readable == []
    assert writable == 0


def test_a_login_granted_the_analyst_role_reads_the_views(erased, engine):
    with engine.begin() as conn:
        conn.execute(text("DROP ROLE IF EXISTS analyst_login_test"))
        conn.execute(text("CREATE ROLE analyst_login_test LOGIN"))
        conn.execute(text("GRANT push_analyst TO analyst_login_test"))
    url = engine.url.set(username="analyst_login_test")
    analyst = create_engine(url)
    try:
        with analyst.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM analytics.latest_recommendations")).scalar_one() > 0
            with pytest.raises(ProgrammingError) as refused:
                conn.execute(text("SELECT email FROM push.users"))
            assert refused.value.orig.pgcode == INSUFFICIENT_PRIVILEGE
    finally:
        analyst.dispose()
        with engine.begin() as conn:
            conn.execute(text("DROP ROLE analyst_login_test"))


def test_erasure_of_an_unknown_user_records_its_hash_and_removes_nothing(erased, engine, privacy_settings):
    from jobs.privacy.erase import erase_user

    summary = erase_user(privacy_settings, "nobody-42", AS_OF)
    assert summary["user_key"] == pseudonym("nobody-42", privacy_settings.pseudonym_key)
    assert {k: v for k, v in summary["removed"].items() if v} == {}
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM push.erased_users WHERE user_key = :k"), {"k": summary["user_key"]})
