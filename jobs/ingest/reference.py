"""Load the reference snapshots (users, catalogue, campaigns) into PostgreSQL.

The snapshot files sit in ``<landing>/reference``; each load replaces the table's contents in
one transaction, so readers never see half a catalogue. PII stays in ``push.users`` only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import copy_frame, make_engine

REFERENCE_TABLES = {
    "users": ("push.users", "users.csv"),
    "items": ("push.items", "items.csv"),
    "campaigns": ("push.campaigns", "campaigns.csv"),
}


def read_reference(landing_dir: Path, name: str) -> pd.DataFrame:
    path = landing_dir / "reference" / REFERENCE_TABLES[name][1]
    if not path.exists():
        raise FileNotFoundError(f"reference snapshot '{name}' not found at {path}")
    return pd.read_csv(path, dtype=str, keep_default_na=False).replace({"": None})


ITEM_REFERENCE_SCHEMA = "item_id string, title string, category string, brand string, price double, in_stock boolean"


def read_items(spark: SparkSession, settings: Settings) -> DataFrame:
    """The catalogue snapshot as a Spark frame (for joins inside Spark jobs)."""
    path = settings.landing_dir / "reference" / REFERENCE_TABLES["items"][1]
    return spark.read.csv(str(path), header=True, schema=ITEM_REFERENCE_SCHEMA)


def read_users(spark: SparkSession, settings: Settings) -> DataFrame:
    """User ids and timezones (no PII) as a Spark frame."""
    path = settings.landing_dir / "reference" / REFERENCE_TABLES["users"][1]
    return spark.read.csv(str(path), header=True).select("user_id", "timezone")


def load_reference(settings: Settings) -> dict[str, int]:
    """Replace users, items and campaigns with the current snapshots; return row counts."""
    counts = {}
    with make_engine(settings.database_url).begin() as conn:
        for name, (table, _) in REFERENCE_TABLES.items():
            frame = read_reference(settings.landing_dir, name)
            conn.execute(text(f"DELETE FROM {table}"))
            counts[name] = copy_frame(conn, table, frame)
    return counts


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    print(json.dumps(load_reference(Settings.from_env())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
