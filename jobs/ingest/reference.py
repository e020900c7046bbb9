"""Load the reference snapshots (users, catalogue, campaigns) into PostgreSQL.

The snapshot files sit in ``<landing>/reference``; each load replaces the table's contents in
one transaction, so readers never see half a catalogue. PII stays in ``push.users`` only; users
erased earlier (``push.erased_users``) are skipped, and every loaded user's pseudonym is written
to ``push.user_pseudonyms``.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import copy_frame, load_query, make_engine
from jobs.privacy.pseudonym import pseudonym
from jobs.privacy.suppression import erased_keys, user_pseudonyms, without_erased

log = logging.getLogger(__name__)

REFERENCE_TABLES = {
    "users": ("push.users", "users.csv"),
    "items": ("push.items", "items.csv"),
    "campaigns": ("push.campaigns", "campaigns.csv"),
}


def read_reference(landing_dir: Path, name: str) -> pd.DataFrame:
    path = landing_dir / "reference" / REFERENCE_TABLES[name][1]
    if not path.exists():
        raise FileNotFoundError(
            f"reference snapshot '{name}' not found at {path}: put the shop's {name} export there as "
            f"{REFERENCE_TABLES[name][1]} (the task retries; once it is there, clear the failed task to re-run it)"
        )
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


# Catalogue changes between the previous snapshot and the new one: price drops of at least
# :min_drop percent and items back in stock (the input of the item triggers).
_ITEM_CHANGES = load_query("ingest/item_changes")


def load_reference(settings: Settings, as_of: datetime | None = None) -> dict[str, int]:
    """Replace users, items, campaigns (and their variants) with the current snapshots; return row counts.

    Price drops and items back in stock relative to the previous catalogue are recorded in
    ``push.item_changes`` stamped ``as_of`` (the run's logical time), once per change.
    """
    counts = {}
    at = as_of or datetime.now(UTC)
    with make_engine(settings.database_url).begin() as conn:
        conn.execute(text("CREATE TEMP TABLE previous_items ON COMMIT DROP AS SELECT * FROM push.items"))
        for name, (table, _) in REFERENCE_TABLES.items():
            frame = read_reference(settings.landing_dir, name)
            if name == "campaigns" and "audience" in frame.columns:
                pairs = zip(frame["campaign_id"], frame["audience"], strict=True)
                frame["audience"] = [checked_audience(campaign, value) for campaign, value in pairs]
            if name == "users":
                counts["dead_tokens_kept_off"] = _without_dead_tokens(conn, frame, settings.pseudonym_key)
                # Erased users stay out; everyone else gets their pseudonym for the analyst views.
                frame, counts["erased_users_skipped"] = without_erased(frame, settings.pseudonym_key, erased_keys(conn))
                conn.execute(text("DELETE FROM push.user_pseudonyms"))
                copy_frame(conn, "push.user_pseudonyms", user_pseudonyms(frame, settings.pseudonym_key))
            conn.execute(text(f"DELETE FROM {table}"))
            counts[name] = copy_frame(conn, table, frame)
        counts["campaign_variants"] = _load_campaign_variants(conn, settings.landing_dir)
        counts["item_changes"] = conn.execute(
            text(_ITEM_CHANGES), {"at": at, "min_drop": settings.price_drop_min_percent}
        ).rowcount
        counts["timezones_reset_to_utc"] = _reset_unknown_timezones(conn)
    return counts


VARIANTS_FILE = "campaign_variants.csv"
_VARIANT_COLUMNS = ("campaign_id", "variant", "weight", "template", "channel", "control")


def _load_campaign_variants(conn, landing_dir: Path) -> int:
    """Replace the campaigns' A/B/n variants with ``reference/campaign_variants.csv`` (optional).

    Loaded with the campaigns, which they belong to (replacing the campaigns drops their
    variants). A row the table would refuse is a ValueError naming the row and the problem.
    """
    conn.execute(text("DELETE FROM push.campaign_variants"))
    path = landing_dir / "reference" / VARIANTS_FILE
    if not path.exists():
        return 0
    frame = pd.read_csv(path, dtype=str, keep_default_na=False).replace({"": None})
    unknown = sorted(set(frame.columns) - set(_VARIANT_COLUMNS))
    missing = [c for c in ("campaign_id", "variant") if c not in frame.columns]
    if unknown or missing:
        raise ValueError(f"{VARIANTS_FILE}: unknown columns {unknown}, missing {missing}; known: {_VARIANT_COLUMNS}")
    campaigns = set(conn.execute(text("SELECT campaign_id FROM push.campaigns")).scalars())
    rows = []
    for line, row in enumerate(frame.to_dict("records"), start=2):
        where = f"{VARIANTS_FILE} line {line}"
        if row["campaign_id"] not in campaigns:
            raise ValueError(f"{where}: campaign {row['campaign_id']!r} is not in campaigns.csv")
        control = (row.get("control") or "false").strip().lower()
        if control not in ("true", "false"):
            raise ValueError(f"{where}: control must be true or false, got {row.get('control')!r}")
        weight = row.get("weight") or "1"
        if not weight.isdigit() or int(weight) < 1:
            raise ValueError(f"{where}: weight must be a whole number >= 1, got {weight!r}")
        rows.append({**row, "weight": int(weight), "control": control == "true"})
    variants = pd.DataFrame(rows, columns=_VARIANT_COLUMNS)
    try:
        with conn.begin_nested():
            return copy_frame(conn, "push.campaign_variants", variants)
    except Exception as error:  # a check constraint or a duplicate: name the file, keep the cause
        raise ValueError(f"{VARIANTS_FILE}: refused by push.campaign_variants: {error.__cause__ or error}") from error


def _without_dead_tokens(conn, users: pd.DataFrame, key: str) -> int:
    """Blank the push tokens a provider declared dead (``push.dead_tokens``), in place; return how many.

    A shop's export may still carry a token the relay retired: loading it again would make the
    planner pick a channel that can never deliver.
    """
    if "push_token" not in users.columns:
        return 0
    dead = set(conn.execute(text("SELECT token_key FROM push.dead_tokens")).scalars())
    if not dead:
        return 0
    tokens = users["push_token"]
    is_dead = tokens.notna() & tokens.map(lambda token: token is not None and pseudonym(token, key) in dead)
    users.loc[is_dead, "push_token"] = None
    return int(is_dead.sum())


# The keys a campaign's audience may hold, and what each must be (sql/functions/push.campaign_audience.sql).
AUDIENCE_LISTS = {"segments": int, "regions": str, "age_bands": str, "genders": str, "intent_categories": str}
INTENT_HOURS = (1, 24)


def checked_audience(campaign_id: str, value: str | None) -> str | None:
    """The campaign's audience as canonical JSON, or a ValueError naming the campaign and the problem."""
    if value is None:
        return None

    def problem(why: str) -> ValueError:
        return ValueError(f"campaigns.csv: campaign {campaign_id!r}: audience {why}")

    try:
        audience = json.loads(value)
    except json.JSONDecodeError as error:
        raise problem(f"is not JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(audience, dict):
        raise problem('must be a JSON object such as {"regions": ["north"]}')
    unknown = set(audience) - set(AUDIENCE_LISTS) - {"intent_hours"}
    if unknown:
        raise problem(f"has unknown keys {sorted(unknown)}; allowed: {sorted([*AUDIENCE_LISTS, 'intent_hours'])}")
    for key, kind in AUDIENCE_LISTS.items():
        values = audience.get(key)
        if values is None:
            continue
        if not isinstance(values, list) or not values or not all(type(v) is kind for v in values):
            raise problem(f"{key} must be a non-empty list of {kind.__name__}s, got {values!r}")
    if "intent_hours" in audience and (
        audience["intent_hours"] not in INTENT_HOURS or "intent_categories" not in audience
    ):
        raise problem(f"intent_hours must be one of {list(INTENT_HOURS)} and come with intent_categories")
    return json.dumps(audience, sort_keys=True)


def _reset_unknown_timezones(conn) -> int:
    """Give users whose timezone PostgreSQL does not know UTC, and say so in the log.

    Every local-time rule (quiet hours, best hours) converts with the user's timezone; one
    unknown name would otherwise fail the planning batch of every user deciding with it.
    """
    reset = (
        conn.execute(
            text(
                "UPDATE push.users u SET timezone = 'UTC'"
                " WHERE NOT EXISTS (SELECT 1 FROM pg_timezone_names n WHERE n.name = u.timezone)"
                " RETURNING user_id"
            )
        )
        .scalars()
        .all()
    )
    if reset:
        log.warning("%d users had an unknown timezone, now UTC (e.g. %s)", len(reset), ", ".join(sorted(reset)[:10]))
    return len(reset)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    print(json.dumps(load_reference(Settings.from_env())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
