"""Migrations and definitions: each view and function has one current definition, scripts run as
written (a percent sign is only a percent sign), a changed definition is re-applied and an
unchanged one is left alone."""

from __future__ import annotations

import contextlib
import shutil

import pytest
from sqlalchemy import create_engine, make_url, text

from jobs.core.db import DEFINITION_DIRS, MIGRATIONS_DIR, apply_migrations


@pytest.fixture
def fresh_database(settings):
    """An empty database of its own on the session's server; dropped afterwards."""
    name = "schema_check"
    admin = create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine = create_engine(make_url(settings.database_url).set(database=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn, contextlib.suppress(Exception):
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def _objects(conn) -> set[str]:
    """The views and functions of the project's schemas, as ``schema.name``."""
    rows = conn.execute(
        text(
            "SELECT schemaname || '.' || viewname FROM pg_views WHERE schemaname IN ('push', 'analytics') "
            "UNION SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname IN ('push', 'analytics')"
        )
    )
    return set(rows.scalars())


def test_every_view_and_function_has_its_one_definition_file(fresh_database):
    applied = apply_migrations(fresh_database)
    files = {path.stem for folder in DEFINITION_DIRS for path in folder.glob("*.sql")}
    assert {path.name for folder in DEFINITION_DIRS for path in folder.glob("*.sql")} <= set(applied)
    with fresh_database.connect() as conn:
        assert _objects(conn) == files
    # Applied again: nothing changed, nothing re-created.
    assert apply_migrations(fresh_database) == []


def test_scripts_run_as_written_and_changed_definitions_are_reapplied(fresh_database, tmp_path):
    migrations, functions, views = (tmp_path / name for name in ("migrations", "functions", "views"))
    for folder in (migrations, functions, views):
        folder.mkdir()
    (migrations / "0001_base.sql").write_text(
        "-- 100% of the rows, and a literal 50% in a string.\n"
        "CREATE SCHEMA push;\nCREATE TABLE push.t (label text);\nINSERT INTO push.t VALUES ('50%');\n"
    )
    # A view that calls a function: applied although the view's folder comes first here.
    (views / "push.v.sql").write_text(
        "CREATE OR REPLACE VIEW push.v AS SELECT push.shout(label) AS label FROM push.t;\n"
    )
    (functions / "push.shout.sql").write_text(
        "CREATE OR REPLACE FUNCTION push.shout(value text) RETURNS text LANGUAGE sql AS $$ SELECT upper(value) $$;\n"
    )
    assert apply_migrations(fresh_database, migrations, (views, functions)) == [
        "0001_base.sql",
        "push.shout.sql",
        "push.v.sql",
    ]
    with fresh_database.connect() as conn:
        assert conn.execute(text("SELECT label FROM push.v")).scalar_one() == "50%"

    (views / "push.v.sql").write_text(
        "CREATE OR REPLACE VIEW push.v AS SELECT push.shout(label) AS label, 1 AS version FROM push.t;\n"
    )
    assert apply_migrations(fresh_database, migrations, (views, functions)) == ["push.v.sql"]
    with fresh_database.connect() as conn:
        assert conn.execute(text("SELECT version FROM push.v")).scalar_one() == 1


def test_a_definition_that_cannot_be_applied_names_its_file_and_changes_nothing(fresh_database, tmp_path):
    migrations, views = tmp_path / "migrations", tmp_path / "views"
    shutil.copytree(MIGRATIONS_DIR, migrations)
    views.mkdir()
    (views / "push.broken.sql").write_text("CREATE OR REPLACE VIEW push.broken AS SELECT * FROM push.no_such_table;\n")
    with pytest.raises(RuntimeError, match=r"push\.broken\.sql could not be applied.*no_such_table"):
        apply_migrations(fresh_database, migrations, (views,))
    with fresh_database.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('public.schema_migrations')")).scalar() is None
