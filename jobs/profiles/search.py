"""Search queries as interest: matched to the catalogue's categories, weighted on validation.

A search carries no item, but its words name what the user is after. ``match_queries`` matches
each distinct query against the catalogue's words (title, category, brand; lower case, a plural
``s`` dropped): the items holding every word of the query are its matches, and the query counts
for each category in proportion to its matched items. A query that matches nothing is left out.

``search_affinity`` turns a user's searches into decayed weight per category, which the profile
adds to the behaviour of the same category with a weight ``choose_search_weight`` picks: the
last fifth of the lookback window's data (at least a day) is held out, the categories each user then
engaged with are the truth, and the weight whose category ranking (behaviour plus weight x
searches, before the cut) has the best NDCG@3 wins, 0 (searches ignored) on a tie.

Distinct queries are collected to the driver for matching (at most ``MAX_QUERIES``, the most
frequent; the rest count as unmatched), so a day's searches cost one aggregation and one join.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

MAX_QUERIES = 200_000
SEARCH_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
_WORD = re.compile(r"[^\W_]+")


def words(text: str | None) -> frozenset[str]:
    """Lower-case words of ``text``, a plural ``s`` dropped from words longer than three letters."""
    found = _WORD.findall((text or "").lower())
    return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in found)


def match_queries(queries: Iterable[str], items: pd.DataFrame) -> pd.DataFrame:
    """(query, category, share) for every query that matches an item; shares of a query sum to 1."""
    index: dict[str, set[int]] = defaultdict(set)
    categories = items["category"].to_numpy()
    for row, (title, category, brand) in enumerate(zip(items["title"], items["category"], items["brand"], strict=True)):
        for word in words(f"{title} {category} {brand}"):
            index[word].add(row)
    rows = []
    for query in queries:
        wanted = words(query)
        if not wanted:
            continue
        matched = set.intersection(*(index.get(word, set()) for word in wanted))
        if not matched:
            continue
        found, counts = np.unique(categories[sorted(matched)], return_counts=True)
        rows += [(query, str(c), float(n) / len(matched)) for c, n in zip(found, counts, strict=True)]
    return pd.DataFrame(rows, columns=["query", "category", "share"])


def query_shares(spark: SparkSession, events: DataFrame, items: DataFrame) -> DataFrame:
    """(query, category, share) of the window's distinct queries, matched once on the driver."""
    searches = events.where((F.col("event_type") == "search") & F.col("query").isNotNull())
    top = searches.groupBy("query").count().orderBy(F.desc("count"), "query").limit(MAX_QUERIES)
    queries = [row.query for row in top.collect()]
    matched = match_queries(queries, items.select("title", "category", "brand").toPandas()) if queries else None
    schema = "query string, category string, share double"
    if matched is None or matched.empty:
        return spark.createDataFrame([], schema)
    return spark.createDataFrame(matched, schema)


def search_affinity(events: DataFrame, shares: DataFrame, as_of: datetime, half_life_days: float) -> DataFrame:
    """(user_id, category, affinity): each search's time decay spread over its query's categories."""
    searches = events.where((F.col("event_type") == "search") & F.col("query").isNotNull())
    age_days = (F.lit(as_of).cast("long") - F.col("ts").cast("long")) / 86400.0
    decay = F.pow(F.lit(0.5), F.greatest(age_days, F.lit(0.0)) / F.lit(half_life_days))
    return (
        searches.join(F.broadcast(shares), "query")
        .groupBy("user_id", "category")
        .agg(F.sum(decay * F.col("share")).alias("affinity"))
    )


def ndcg_of_categories(scores: pd.DataFrame, truth: pd.DataFrame, k: int = 3) -> float:
    """Mean NDCG@k of each user's categories ranked by ``score`` against the categories in ``truth``."""
    relevant = truth.groupby("user_id")["category"].agg(set).to_dict()
    ranked = scores[scores["user_id"].isin(relevant)].sort_values(
        ["user_id", "score", "category"], ascending=[True, False, True], kind="stable"
    )
    gains = []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for user, group in ranked.groupby("user_id", sort=True):
        hits = np.array([c in relevant[user] for c in group["category"].head(k)], dtype=float)
        ideal = discounts[: min(k, len(relevant[user]))].sum()
        gains.append(float((hits * discounts[: len(hits)]).sum() / ideal))
    return float(np.mean(gains)) if gains else 0.0


def choose_search_weight(
    behaviour: pd.DataFrame, searches: pd.DataFrame, truth: pd.DataFrame, weights=SEARCH_WEIGHTS
) -> tuple[float, dict]:
    """The weight of searches beside behaviour (both (user_id, category, affinity) before the cut)
    whose category ranking best predicts ``truth`` (user_id, category engaged after it)."""
    both = behaviour.merge(searches, on=["user_id", "category"], how="outer", suffixes=("", "_search")).fillna(0.0)
    scores = {}
    for weight in weights:
        ranked = both.assign(score=both["affinity"] + weight * both["affinity_search"])
        scores[weight] = round(ndcg_of_categories(ranked, truth), 6)
    best = max(weights, key=lambda w: (scores[w], -w))
    record = {"weight": best, "validation_ndcg@3": {str(w): s for w, s in scores.items()}}
    return best, record


def tune_search_weight(
    events: DataFrame,
    items: DataFrame,
    shares: DataFrame,
    window_start: datetime,
    as_of: datetime,
    half_life_days: float,
) -> tuple[float, dict]:
    """:func:`choose_search_weight` on the window's events cut at :func:`validation_cut`."""
    from jobs.profiles.build import weighted_interactions

    if shares.isEmpty():
        return 0.0, {"weight": 0.0, "why": "no search matched the catalogue"}
    # The window's data may start later than the window (a young shop, a short history).
    first = events.agg(F.min(F.col("ts").cast("long"))).first()[0]
    cut = validation_cut(max(window_start, datetime.fromtimestamp(first, UTC)), as_of)
    before, after = events.where(F.col("ts") < F.lit(cut)), events.where(F.col("ts") >= F.lit(cut))
    behaviour = (
        weighted_interactions(before, items, cut, half_life_days)
        .groupBy("user_id", "category")
        .agg(F.sum("weight").alias("affinity"))
        .toPandas()
    )
    searches = search_affinity(before, shares, cut, half_life_days).toPandas()
    if searches.empty:
        return 0.0, {"weight": 0.0, "why": "no search before the cut matched the catalogue"}
    truth = (
        after.where(F.col("item_id").isNotNull())
        .join(items.select("item_id", "category"), "item_id")
        .select("user_id", "category")
        .distinct()
        .toPandas()
    )
    weight, record = choose_search_weight(behaviour, searches, truth)
    return weight, {**record, "cut": cut.isoformat(), "users": int(truth["user_id"].nunique())}


def validation_cut(window_start: datetime, as_of: datetime) -> datetime:
    """Where the held-out tail of the lookback window (from its first event) starts: its last fifth, at least a day."""
    return as_of - max(timedelta(days=1), (as_of - window_start) / 5)
