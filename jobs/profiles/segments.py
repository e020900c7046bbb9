"""K-means segments on standardised profile features, k chosen by silhouette.

Each segment is described for humans (size, top categories, price level, purchase frequency)
so that a marketer can read the table without knowing what a centroid is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import comb

import numpy as np
from pyspark.ml.clustering import KMeans
from pyspark.ml.evaluation import ClusteringEvaluator
from pyspark.ml.feature import StandardScaler, VectorAssembler
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

NUMERIC_FEATURES = ("price_level", "recency_days", "log_frequency", "log_monetary", "active_days")


@dataclass(frozen=True)
class SegmentModel:
    k: int
    silhouette: float
    silhouettes: dict[int, float]
    assignments: DataFrame  # user_id, segment


def profile_features(profiles: DataFrame, categories: list[str]) -> DataFrame:
    """Numeric feature columns: RFM/activity (log-scaled) and the share of each category."""
    affinity = F.from_json("category_affinity", "map<string,double>")
    frame = profiles.withColumn("_aff", affinity).select(
        "user_id",
        "price_level",
        "recency_days",
        F.log1p("frequency").alias("log_frequency"),
        F.log1p("monetary").alias("log_monetary"),
        F.col("active_days").cast("double").alias("active_days"),
        *[F.coalesce(F.col("_aff")[c], F.lit(0.0)).alias(f"cat_{c}") for c in categories],
    )
    return frame


def fit_segments(profiles: DataFrame, categories: list[str], k_min: int, k_max: int, seed: int) -> SegmentModel:
    """Fit K-means for each k in [k_min, k_max] and keep the best silhouette."""
    # A fixed row order and partitioning: K-means initialisation samples rows, so the same
    # data in another order could converge to other clusters.
    features = profile_features(profiles, categories).repartitionByRange(4, "user_id").sortWithinPartitions("user_id")
    columns = [c for c in features.columns if c != "user_id"]
    assembled = VectorAssembler(inputCols=columns, outputCol="raw").transform(features)
    scaled = (
        StandardScaler(inputCol="raw", outputCol="features", withMean=True, withStd=True)
        .fit(assembled)
        .transform(assembled)
        .cache()
    )
    users = scaled.count()
    evaluator = ClusteringEvaluator(featuresCol="features", predictionCol="segment")
    silhouettes: dict[int, float] = {}
    best = None
    for k in range(k_min, min(k_max, max(users - 1, k_min)) + 1):
        model = KMeans(k=k, seed=seed, featuresCol="features", predictionCol="segment", maxIter=20).fit(scaled)
        predictions = model.transform(scaled)
        score = float(evaluator.evaluate(predictions))
        silhouettes[k] = round(score, 4)
        if best is None or score > best[1]:
            best = (k, score, predictions.select("user_id", "segment"))
    assert best is not None, "no K-means model could be fitted"
    assignments = canonical_labels(best[2]).cache()
    assignments.count()
    scaled.unpersist()
    return SegmentModel(best[0], round(best[1], 4), silhouettes, assignments)


def canonical_labels(assignments: DataFrame) -> DataFrame:
    """Renumber segments by size (largest = 0), ties by smallest member id, so labels are stable."""
    order = assignments.groupBy("segment").agg(F.count("*").alias("size"), F.min("user_id").alias("first")).collect()
    ranked = sorted(order, key=lambda r: (-r["size"], r["first"]))
    mapping = F.create_map(*[v for n, r in enumerate(ranked) for v in (F.lit(r["segment"]), F.lit(n))])
    return assignments.withColumn("segment", mapping[F.col("segment")])


def describe_segments(
    profiles: DataFrame, categories: list[str], assignments: DataFrame, silhouette: float
) -> DataFrame:
    """One human-readable row per segment; columns match ``push.segments`` (without as_of)."""
    joined = (
        profile_features(profiles, categories)
        .join(assignments, "user_id")
        .join(profiles.select("user_id", "frequency"), "user_id")
    )
    aggregates = joined.groupBy("segment").agg(
        F.count("*").alias("size"),
        F.avg("price_level").alias("avg_price_level"),
        F.avg("frequency").alias("avg_frequency"),
        *[F.avg(f"cat_{c}").alias(f"cat_{c}") for c in categories],
    )
    rows = []
    for row in aggregates.collect():
        shares = sorted(((row[f"cat_{c}"], c) for c in categories), reverse=True)
        top = [c for _, c in shares[:3]]
        level = "high" if row.avg_price_level > 0.6 else "low" if row.avg_price_level < 0.4 else "mid"
        description = (
            f"{row['size']} users into {', '.join(top[:2])}; {level} price level "
            f"({row.avg_price_level:.2f}); {row.avg_frequency:.1f} purchases per user"
        )
        # Rounded: float sums depend on the order Spark adds them in, and re-runs must match.
        rows.append(
            (
                int(row.segment),
                int(row["size"]),
                top,
                round(row.avg_price_level, 6),
                round(row.avg_frequency, 6),
                description,
                silhouette,
            )
        )
    spark = profiles.sparkSession
    return spark.createDataFrame(
        rows,
        "segment int, size int, top_categories array<string>, avg_price_level double, avg_frequency double, description string, silhouette double",
    )


def adjusted_rand_index(labels: Sequence, truth: Sequence) -> float:
    """Adjusted Rand index of two labellings of the same users (Hubert & Arabie, 1985).

    1 when the partitions agree exactly (whatever the label names), about 0 for a labelling no
    better than chance, negative when worse. Used to check segments against planted groups and
    to compare two days' segmentations.
    """
    if len(labels) != len(truth):
        raise ValueError(f"labellings differ in length: {len(labels)} vs {len(truth)}")
    n = len(labels)
    _, a = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    _, b = np.unique(np.asarray(truth, dtype=object).astype(str), return_inverse=True)
    table = np.zeros((a.max(initial=-1) + 1, b.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (a, b), 1)
    pairs = sum(comb(int(v), 2) for v in table.ravel())
    rows = sum(comb(int(v), 2) for v in table.sum(axis=1))
    columns = sum(comb(int(v), 2) for v in table.sum(axis=0))
    total = comb(n, 2)
    if total == 0:
        return 1.0
    expected = rows * columns / total
    maximum = (rows + columns) / 2
    if maximum == expected:  # both labellings put everyone together (or everyone apart)
        return 1.0
    return float((pairs - expected) / (maximum - expected))
