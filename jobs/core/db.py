"""The one database connection factory, schema migrations and bulk loading.

Migrations are the numbered files in ``sql/migrations`` (tables, indexes, constraints, data
moves); each is applied once, in order. Views and functions have one current definition each,
a file in ``sql/functions`` or ``sql/views`` (``CREATE OR REPLACE``), applied after the
migrations whenever its text changed. All of it runs in one transaction that holds an advisory
lock, so two processes starting together do not race; scripts go to the server as they are
(no driver parameter formatting, so a percent sign is just a percent sign). Bulk loads go
through ``COPY`` (fast, and typed by the target table). ``docs/sql.md`` has the conventions.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import pandas as pd
from sqlalchemy import Connection, Engine, create_engine, make_url, text

from jobs.core.config import PROJECT_ROOT, resolve_database_url

MIGRATIONS_DIR = PROJECT_ROOT / "sql" / "migrations"
QUERIES_DIR = PROJECT_ROOT / "sql" / "queries"
# Functions first: views call them. Within a folder, a definition that needs one not yet
# created is retried after the others.
DEFINITION_DIRS = (PROJECT_ROOT / "sql" / "functions", PROJECT_ROOT / "sql" / "views")
_MIGRATION_LOCK = 7_201_001


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4, future=True)


def make_engine(url: str | None = None) -> Engine:
    """Return a pooled engine for ``url`` (default: the configured pipeline database)."""
    return _engine_for(url or resolve_database_url())


def libpq_url(url: str | None = None) -> str:
    """The database URL as libpq and plain psycopg2 take it (no SQLAlchemy driver name).

    For code that cannot share an engine: Spark tasks writing from their own processes.
    """
    return make_url(url or resolve_database_url()).set(drivername="postgresql").render_as_string(hide_password=False)


def load_query(name: str) -> str:
    """Read a named, parameterised query from ``sql/queries/<stage>/<name>.sql`` (name given as ``"<stage>/<name>"``)."""
    return (QUERIES_DIR / f"{name}.sql").read_text()


def apply_migrations(
    engine: Engine, folder: Path = MIGRATIONS_DIR, definitions: Sequence[Path] = DEFINITION_DIRS
) -> list[str]:
    """Apply the not-yet-applied migrations in order, then every view or function definition
    whose text changed; return the names applied now."""
    applied_now: list[str] = []
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS public.schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
        )
        done = {row[0] for row in conn.execute(text("SELECT name FROM public.schema_migrations"))}
        for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql")):
            if path.name in done:
                continue
            run_script(conn, path.read_text())
            conn.execute(text("INSERT INTO public.schema_migrations (name) VALUES (:n)"), {"n": path.name})
            applied_now.append(path.name)
        applied_now += _apply_definitions(conn, [p for d in definitions for p in sorted(d.glob("*.sql"))])
        # Views reach the analyst role only if they carry no identifying column.
        if applied_now and conn.execute(text("SELECT to_regproc('push.refresh_analyst_grants')")).scalar():
            conn.execute(text("SELECT push.refresh_analyst_grants()"))
    return applied_now


def run_script(conn: Connection, sql: str) -> None:
    """Run a script of statements as written: the DBAPI cursor without parameters does no
    ``%`` formatting, so a percent sign in a statement or a comment is just that."""
    with conn.connection.cursor() as cursor:
        cursor.execute(sql)


def _apply_definitions(conn: Connection, paths: list[Path]) -> list[str]:
    """(Re)create the views and functions whose file changed since it was last applied."""
    conn.execute(
        text(
            "CREATE TABLE IF NOT EXISTS public.schema_definitions ("
            " name text PRIMARY KEY, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
    )
    known = dict(conn.execute(text("SELECT name, sha256 FROM public.schema_definitions")).all())
    pending = [(p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]
    pending = [(p, digest) for p, digest in pending if known.get(p.name) != digest]
    applied: list[str] = []
    while pending:
        failed: list[tuple[Path, str, Exception]] = []
        for path, digest in pending:
            try:
                with conn.begin_nested():
                    run_script(conn, path.read_text())
            except conn.dialect.loaded_dbapi.Error as error:  # it may need a definition further down the list
                failed.append((path, digest, error))
                continue
            conn.execute(
                text(
                    "INSERT INTO public.schema_definitions (name, sha256) VALUES (:n, :d) "
                    "ON CONFLICT (name) DO UPDATE SET sha256 = EXCLUDED.sha256, applied_at = now()"
                ),
                {"n": path.name, "d": digest},
            )
            applied.append(path.name)
        if len(failed) == len(pending):
            path, _, error = failed[0]
            raise RuntimeError(f"{path} could not be applied: {error}") from error
        pending = [(path, digest) for path, digest, _ in failed]
    return applied


def truncate_pipeline_tables(engine: Engine) -> None:
    """Empty every table of schema ``push`` (test and benchmark sandboxes only)."""
    with engine.begin() as conn:
        tables = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'push'")).scalars().all()
        if tables:
            conn.execute(text("TRUNCATE " + ", ".join(f"push.{t}" for t in tables) + " CASCADE"))


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> int:
    """Bulk-insert ``rows`` into ``table`` with COPY inside the caller's transaction.

    CSV with every value quoted and NULL as an unquoted empty field, so that no text value
    (not even an empty string or a literal ``\\N``) can be mistaken for NULL.
    """
    buffer = io.StringIO()
    count = 0
    for row in rows:
        buffer.write(",".join(_copy_field(value) for value in row))
        buffer.write("\n")
        count += 1
    if count == 0:
        return 0
    buffer.seek(0)
    cursor = conn.connection.dbapi_connection.cursor()
    column_list = ", ".join(columns)
    cursor.copy_expert(f"COPY {table} ({column_list}) FROM STDIN WITH (FORMAT csv)", buffer)
    return count


def _copy_field(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        value = pg_array(value)
    return '"' + str(value).replace('"', '""') + '"'


def pg_array(values) -> str:
    """Render a sequence as a PostgreSQL array literal (for COPY)."""
    quoted = ['"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    return "{" + ",".join(quoted) + "}"


@contextmanager
def advisory_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold a session-level PostgreSQL advisory lock named ``name`` (waits for other holders)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(hashtext(:n))"), {"n": name})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtext(:n))"), {"n": name})
            conn.commit()


def copy_frame(conn: Connection, table: str, frame: pd.DataFrame) -> int:
    """COPY a pandas frame whose columns are named like the table's."""
    clean = frame.astype(object).where(frame.notna(), None)
    return copy_rows(conn, table, list(frame.columns), clean.itertuples(index=False, name=None))


class ChunkReader(io.RawIOBase):
    """A file-like view of text chunks produced lazily while COPY reads them.

    Rendering the rows and the server's parsing then overlap instead of running one after the
    other.
    """

    def __init__(self, chunks: Iterable[str]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending += chunk.encode()
        if size < 0:
            size = len(self._pending)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text_field(value: str) -> str:
    """Escape one value for COPY's text format (backslash, tab, newline, carriage return)."""
    return value.translate(_TEXT_ESCAPES)


def copy_text(conn: Connection, table: str, columns: Sequence[str], chunks: Iterable[str]) -> None:
    """COPY rows already rendered in COPY's text format (tab-separated lines, fields escaped
    with ``copy_text_field``), streamed chunk by chunk, inside the caller's transaction."""
    cursor = conn.connection.dbapi_connection.cursor()
    column_list = ", ".join(columns)
    cursor.copy_expert(f"COPY {table} ({column_list}) FROM STDIN", ChunkReader(chunks), size=1 << 18)


def fetch_frame(conn: Connection, sql: str, params: dict | None = None) -> pd.DataFrame:
    result = conn.execute(text(sql), params or {})
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
