"""The erasure suppression list: keyed hashes of erased user ids, and the filters that use it.

Loaders, the cleaner and the streaming job consult ``push.erased_users`` so that an erased user
does not come back from a later users snapshot or from landing files that still hold their events.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from sqlalchemy import Connection, text

from jobs.privacy.pseudonym import pseudonym, pseudonym_column

ERASED_REASON = "erased_user"
# The user id of a line the cleaner could not parse, when the raw text still names one.
_RAW_USER_ID = r'"user_id"\s*:\s*"([^"]*)"'


def erased_keys(conn: Connection) -> list[str]:
    """Every suppression entry (keyed hashes), sorted."""
    return conn.execute(text("SELECT user_key FROM push.erased_users ORDER BY user_key")).scalars().all()


def erased_among(conn: Connection, user_ids: set[str], key: str) -> set[str]:
    """Those of ``user_ids`` that are on the suppression list (looked up by their keyed hash)."""
    if not user_ids:
        return set()
    by_key = {pseudonym(user_id, key): user_id for user_id in user_ids}
    found = conn.execute(
        text("SELECT user_key FROM push.erased_users WHERE user_key = ANY(:keys)"), {"keys": list(by_key)}
    ).scalars()
    return {by_key[user_key] for user_key in found}


def line_subjects(user_ids: pd.Series, raw: pd.Series) -> pd.Series:
    """The user each input line names: its parsed ``user_id`` or, if it did not parse, the id in its text.

    The pandas twin of the subject :func:`mark_erased` recognises in Spark.
    """
    from_text = raw.astype("string").str.extract(_RAW_USER_ID, expand=False)
    return user_ids.astype("string").fillna(from_text).str.strip()


def user_pseudonyms(users: pd.DataFrame, key: str) -> pd.DataFrame:
    """``user_id, user_key`` for a users snapshot."""
    return pd.DataFrame({"user_id": users["user_id"], "user_key": [pseudonym(u, key) for u in users["user_id"]]})


def without_erased(users: pd.DataFrame, key: str, erased: list[str]) -> tuple[pd.DataFrame, int]:
    """The snapshot without erased users, and how many rows were dropped."""
    if not erased:
        return users, 0
    keep = ~users["user_id"].map(lambda user_id: pseudonym(user_id, key)).isin(set(erased))
    return users[keep].reset_index(drop=True), int((~keep).sum())


def mark_erased(checked: DataFrame, erased: list[str], key: str) -> DataFrame:
    """Give every line of an erased user the reason ``erased_user`` and drop its raw text.

    The user is recognised by the parsed ``user_id`` or, for a line that did not parse, by a
    ``"user_id": "..."`` pair in its text; the line is still counted (input = clean + quarantined
    + duplicates), but nothing of it is kept.
    """
    if not erased:
        return checked
    subject = F.trim(F.coalesce(F.col("user_id"), F.regexp_extract("value", _RAW_USER_ID, 1)))
    is_erased = F.coalesce(pseudonym_column(subject, key).isin(*erased), F.lit(False))
    return checked.withColumn("reason", F.when(is_erased, F.lit(ERASED_REASON)).otherwise(F.col("reason"))).withColumn(
        "value", F.when(is_erased, F.lit(None).cast("string")).otherwise(F.col("value"))
    )
