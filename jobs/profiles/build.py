"""User profiles from clean events: affinities, price level, RFM, activity, preferred hours.

Affinities decay exponentially with the age of each event (half-life configurable), so last
week's interest outweighs last month's. Price level is where the items a user engages with sit
within their own category's price distribution (0 = cheapest, 1 = dearest), so a user who buys
cheap electronics and dear books is not averaged into nonsense.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

# Implicit-feedback weight of each event type (view < click < cart < purchase).
EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "favorite": 3.0,
    "add_to_cart": 4.0,
    "purchase": 6.0,
    "notification_click": 2.0,
}


def event_weights() -> F.Column:
    mapping = F.create_map(*[item for pair in EVENT_WEIGHTS.items() for item in (F.lit(pair[0]), F.lit(pair[1]))])
    return F.coalesce(mapping[F.col("event_type")], F.lit(0.0))


def weighted_interactions(events: DataFrame, items: DataFrame, as_of: datetime, half_life_days: float) -> DataFrame:
    """Item events joined to the catalogue with ``weight`` = type weight x time decay."""
    age_days = (F.lit(as_of).cast("long") - F.col("ts").cast("long")) / 86400.0
    return (
        events.where(F.col("item_id").isNotNull())
        .join(items.select("item_id", "category", "brand", F.col("price").alias("list_price")), "item_id")
        .withColumn("age_days", F.greatest(age_days, F.lit(0.0)))
        .withColumn("weight", event_weights() * F.pow(F.lit(0.5), F.col("age_days") / F.lit(half_life_days)))
        .where("weight > 0")
    )


def top_values(frame: DataFrame, key: str, value: str, score: str, n: int, alias: str) -> DataFrame:
    """Per ``key``, the ``n`` values with the highest ``score``, as an ordered array."""
    ranked = frame.withColumn("_r", F.row_number().over(Window.partitionBy(key).orderBy(F.desc(score), value)))
    return (
        ranked.where(F.col("_r") <= n)
        .groupBy(key)
        # The field of an array of structs, not a lambda: Spark's analyser re-derives a lambda's
        # nullability at every rule it applies (a JVM running C1 only spent minutes there).
        .agg(F.array_sort(F.collect_list(F.struct("_r", value))).getField(value).alias(alias))
    )


def build_user_profiles(
    events: DataFrame,
    items: DataFrame,
    users: DataFrame,
    as_of: datetime,
    half_life_days: float,
    searches: DataFrame | None = None,
    search_weight: float = 0.0,
) -> DataFrame:
    """One row per user active in ``events``; columns match ``push.user_profiles``.

    ``searches`` (user_id, category, affinity: ``search.search_affinity``) adds to the category
    affinity with ``search_weight``; users need an item interaction to get a profile.
    """
    interactions = weighted_interactions(events, items, as_of, half_life_days)

    by_category = interactions.groupBy("user_id", "category").agg(F.sum("weight").alias("affinity"))
    if searches is not None and search_weight > 0:
        weighted = searches.select("user_id", "category", (F.col("affinity") * F.lit(search_weight)).alias("affinity"))
        by_category = (
            by_category.unionByName(weighted).groupBy("user_id", "category").agg(F.sum("affinity").alias("affinity"))
        )
    totals = by_category.groupBy("user_id").agg(F.sum("affinity").alias("total"))
    shares = by_category.join(totals, "user_id").withColumn("share", F.round(F.col("affinity") / F.col("total"), 4))
    affinity = shares.groupBy("user_id").agg(
        F.to_json(F.map_from_entries(F.collect_list(F.struct("category", "share")))).alias("category_affinity")
    )
    top_categories = top_values(shares, "user_id", "category", "share", 3, "top_categories")
    by_brand = interactions.groupBy("user_id", "brand").agg(F.sum("weight").alias("affinity"))
    top_brands = top_values(by_brand, "user_id", "brand", "affinity", 2, "top_brands")

    price_rank = items.withColumn("price_pct", F.percent_rank().over(Window.partitionBy("category").orderBy("price")))
    price_level = (
        interactions.join(price_rank.select("item_id", "price_pct"), "item_id")
        .groupBy("user_id")
        .agg((F.sum(F.col("price_pct") * F.col("weight")) / F.sum("weight")).alias("price_level"))
    )

    purchases = events.where(F.col("event_type") == "purchase")
    rfm = purchases.groupBy("user_id").agg(
        F.max("ts").alias("last_purchase"),
        F.count("*").alias("frequency"),
        F.sum(F.coalesce(F.col("price"), F.lit(0.0)) * F.coalesce(F.col("quantity"), F.lit(1))).alias("monetary"),
    )

    local = events.join(users, "user_id", "left").withColumn(
        "local_ts", F.from_utc_timestamp("ts", F.coalesce(F.col("timezone"), F.lit("UTC")))
    )
    activity = local.groupBy("user_id").agg(
        F.max("ts").alias("last_event"),
        F.countDistinct(F.to_date("local_ts")).alias("active_days"),
    )
    preferred_hour = top_values(
        local.groupBy("user_id", F.hour("local_ts").alias("hour")).count(), "user_id", "hour", "count", 1, "hours"
    ).select("user_id", F.col("hours")[0].alias("preferred_hour"))
    # ISO weekday, Monday = 1.
    preferred_weekday = top_values(
        local.groupBy("user_id", ((F.dayofweek("local_ts") + 5) % 7 + 1).alias("weekday")).count(),
        "user_id",
        "weekday",
        "count",
        1,
        "days",
    ).select("user_id", F.col("days")[0].alias("preferred_weekday"))

    last_seen = F.coalesce(F.col("last_purchase"), F.col("last_event"))
    return (
        activity.join(affinity, "user_id")
        .join(top_categories, "user_id")
        .join(top_brands, "user_id")
        .join(price_level, "user_id")
        .join(rfm, "user_id", "left")
        .join(preferred_hour, "user_id")
        .join(preferred_weekday, "user_id")
        .select(
            F.lit(as_of.date()).alias("as_of"),
            "user_id",
            "top_categories",
            "top_brands",
            "category_affinity",
            F.round("price_level", 4).alias("price_level"),
            F.round((F.lit(as_of).cast("long") - last_seen.cast("long")) / 86400.0, 3).alias("recency_days"),
            F.coalesce("frequency", F.lit(0)).cast(T.LongType()).alias("frequency"),
            F.round(F.coalesce("monetary", F.lit(0.0)), 2).alias("monetary"),
            F.col("active_days").cast(T.IntegerType()).alias("active_days"),
            F.col("preferred_hour").cast(T.IntegerType()).alias("preferred_hour"),
            F.col("preferred_weekday").cast(T.IntegerType()).alias("preferred_weekday"),
        )
    )
