"""Erase a user everywhere: every table of schemas push and analytics, the lake, the outbox files.

What to delete is planned from the database catalogue (a pure function of its columns), so a
table added later with a ``user_id`` column is covered without touching this module:

* every base table with a ``user_id`` column loses the user's rows (``push.users`` holds the
  PII; deliveries go with their outbox rows through their foreign key);
* every text-array column (e.g. the stream's ``trigger_users``) loses the id;
* every ``raw`` column (rejected input lines) loses the lines that name the user.

The keyed hash of the id goes to ``push.erased_users`` first, so the users loader and the
cleaner skip the user from then on (a re-run does not bring them back). Parquet files under the
lake that hold the user's rows are rewritten without them; model artifacts trained on them are
deleted (the next daily run retrains). Finally every text, JSON and array column of every table
and view in push and analytics is searched for the id, and the files once more: the erasure
fails, naming the places, if anything is left.

CLI: ``python -m jobs.privacy.erase --user-id u00042`` (``make erase-user USER=u00042``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, text

from jobs.core.config import Settings
from jobs.core.db import advisory_lock, make_engine
from jobs.privacy.pseudonym import pseudonym

log = logging.getLogger(__name__)

SCHEMAS = ("push", "analytics")
SUBJECT_COLUMN = "user_id"
RAW_TEXT_COLUMN = "raw"
SEARCHABLE_TYPES = frozenset({"text", "character varying", "jsonb", "json", "ARRAY"})
_CATALOGUE = """
SELECT c.table_schema, c.table_name, c.column_name, c.data_type, t.table_type
FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = ANY(:schemas)
ORDER BY c.table_schema, c.table_name, c.ordinal_position
"""


@dataclass(frozen=True)
class Column:
    schema: str
    table: str
    name: str
    data_type: str
    table_type: str  # BASE TABLE or VIEW

    @property
    def relation(self) -> str:
        return f"{_quote(self.schema)}.{_quote(self.table)}"


@dataclass(frozen=True)
class Step:
    """One parameterised statement (``:user_id``, ``:pattern``) and what it removes."""

    target: str
    sql: str


class ErasureIncomplete(RuntimeError):
    """The user's id is still somewhere after the erasure."""


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def id_pattern(user_id: str) -> str:
    """A PostgreSQL regular expression matching ``user_id`` as a whole token (not inside a longer id)."""
    return r"(^|[^A-Za-z0-9_])" + re.escape(user_id) + r"([^A-Za-z0-9_]|$)"


def erasure_plan(columns: list[Column]) -> list[Step]:
    """The statements that remove one user from the tables described by ``columns``."""
    steps: list[Step] = []
    for column in columns:
        if column.table_type != "BASE TABLE":
            continue
        target = f"{column.schema}.{column.table}.{column.name}"
        if column.name == SUBJECT_COLUMN:
            steps.append(Step(target, f"DELETE FROM {column.relation} WHERE {_quote(column.name)} = :user_id"))
        elif column.data_type == "ARRAY":
            name = _quote(column.name)
            steps.append(
                Step(
                    target,
                    f"UPDATE {column.relation} SET {name} = array_remove({name}, :user_id)"
                    f" WHERE CAST(:user_id AS text) = ANY(CAST({name} AS text[]))",
                )
            )
        elif column.name == RAW_TEXT_COLUMN and column.data_type in SEARCHABLE_TYPES:
            steps.append(Step(target, f"DELETE FROM {column.relation} WHERE {_quote(column.name)} ~ :pattern"))
    return steps


def mention_queries(columns: list[Column]) -> dict[str, str]:
    """Per relation, a query counting the rows whose text, JSON or array columns name the user."""
    by_relation: dict[str, list[Column]] = {}
    for column in columns:
        if column.data_type in SEARCHABLE_TYPES:
            by_relation.setdefault(column.relation, []).append(column)
    return {
        relation: "SELECT "
        + ", ".join(
            f"count(*) FILTER (WHERE CAST({_quote(c.name)} AS text) ~ :pattern) AS {_quote(c.name)}" for c in cols
        )
        + f" FROM {relation}"
        for relation, cols in by_relation.items()
    }


# --- I/O ----------------------------------------------------------------------------------------
def read_catalogue(conn: Connection) -> list[Column]:
    rows = conn.execute(text(_CATALOGUE), {"schemas": list(SCHEMAS)}).all()
    return [Column(*row) for row in rows]


def find_mentions(conn: Connection, user_id: str) -> dict[str, int]:
    """``{"schema.table.column": rows}`` for every place in the database that still names the user."""
    found = {}
    pattern = id_pattern(user_id)
    for relation, sql in mention_queries(read_catalogue(conn)).items():
        row = conn.execute(text(sql), {"pattern": pattern}).mappings().one()
        found.update({f"{relation.replace(chr(34), '')}.{name}": n for name, n in row.items() if n})
    return found


def parquet_files_with(folder: Path, user_id: str) -> list[Path]:
    """Parquet files under ``folder`` with a ``user_id`` column holding the user."""
    hits = []
    for path in sorted(folder.rglob("*.parquet")) if folder.exists() else []:
        if path.is_dir():  # a Spark output folder named *.parquet holds the part files
            continue
        parquet = pq.ParquetFile(path)
        if SUBJECT_COLUMN in parquet.schema_arrow.names:
            column = parquet.read(columns=[SUBJECT_COLUMN]).column(SUBJECT_COLUMN)
            if pc.any(pc.equal(column, user_id)).as_py():
                hits.append(path)
    return hits


def rewrite_without(path: Path, user_id: str) -> int:
    """Rewrite one Parquet file without the user's rows (same schema, Spark's INT96 timestamps kept)."""
    parquet = pq.ParquetFile(path)
    int96 = any(parquet.metadata.schema.column(i).physical_type == "INT96" for i in range(parquet.metadata.num_columns))
    table = parquet.read()
    kept = table.filter(pc.invert(pc.fill_null(pc.equal(table.column(SUBJECT_COLUMN), user_id), False)))
    temporary = path.with_name(f".{path.name}.erasing")
    pq.write_table(kept, temporary, use_deprecated_int96_timestamps=int96)
    os.replace(temporary, path)
    # Hadoop's local file system checks a .crc sidecar; the old one no longer matches.
    path.with_name(f".{path.name}.crc").unlink(missing_ok=True)
    return table.num_rows - kept.num_rows


def scrub_files(settings: Settings, user_id: str, outbox_keys: list[str]) -> dict[str, int]:
    """Remove the user from the lake (clean events, training ratings, models) and the outbox files."""
    removed = {"lake_rows": 0, "lake_files_rewritten": 0, "model_artifacts_deleted": 0, "outbox_files_deleted": 0}
    for path in parquet_files_with(settings.lake_dir, user_id):
        removed["lake_rows"] += rewrite_without(path, user_id)
        removed["lake_files_rewritten"] += 1
        if path.is_relative_to(settings.models_dir):
            # The model of this run was fitted on the user's ratings: withdraw it.
            # Every stored part: the manifest, a Surprise dump, factor or item-model arrays.
            for pattern in ("model.json", "*.pkl", "*.npz"):
                for artifact in path.parent.glob(pattern):
                    artifact.unlink()
                    removed["model_artifacts_deleted"] += 1
    for key in outbox_keys:
        for path in settings.outbox_dir.glob(f"*/{key}.*"):
            path.unlink()
            removed["outbox_files_deleted"] += 1
    return removed


def erase_user(settings: Settings, user_id: str, erased_at: datetime, engine: Engine | None = None) -> dict:
    """Erase ``user_id``; return what was removed. Raises :class:`ErasureIncomplete` if a trace is left."""
    user_id = user_id.strip()
    if not user_id:
        raise ValueError("a user id is required")
    engine = engine or make_engine(settings.database_url)
    user_key = pseudonym(user_id, settings.pseudonym_key)
    params = {"user_id": user_id, "pattern": id_pattern(user_id)}
    # No cleaning run may rewrite the lake while the user's rows are taken out of it.
    with advisory_lock(engine, "push:clean-lake"):
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO push.erased_users (user_key, erased_at) VALUES (:k, :at)"
                    " ON CONFLICT (user_key) DO NOTHING"
                ),
                {"k": user_key, "at": erased_at},
            )
            outbox_keys = (
                conn.execute(
                    text("SELECT idempotency_key FROM push.notification_ledger WHERE user_id = :user_id"), params
                )
                .scalars()
                .all()
            )
            removed = {}
            for step in erasure_plan(read_catalogue(conn)):
                count = conn.execute(text(step.sql), params).rowcount
                if count:
                    removed[step.target] = removed.get(step.target, 0) + count
        removed.update(scrub_files(settings, user_id, outbox_keys))
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE push.erased_users SET removed = removed || CAST(:r AS jsonb) WHERE user_key = :k"),
            {"r": json.dumps(removed), "k": user_key},
        )
        remaining = find_mentions(conn, user_id)
    remaining.update({str(path): 1 for path in parquet_files_with(settings.lake_dir, user_id)})
    if remaining:
        raise ErasureIncomplete(f"the erased user is still named in: {', '.join(sorted(remaining))}")
    summary = {"user_key": user_key, "removed": removed}
    log.info("erased a user: %s", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--user-id", required=True, help="the user to erase")
    args = parser.parse_args(argv)
    print(json.dumps(erase_user(Settings.from_env(), args.user_id, datetime.now(UTC))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
