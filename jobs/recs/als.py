"""Spark MLlib ALS on implicit feedback: the scale-out trainer (``PUSH_RECS_TRAINER=als``).

Implicit ALS (Hu, Koren and Volinsky, 2008) treats each rating as a confidence
``1 + alpha x rating`` that the user likes the item and every unobserved pair as a weak "no",
so it needs no sampled negatives. Its user and item factors become a :class:`FactorModel`
with zero biases, which the same blocked top-N scoring, metrics and promotion gate consume as
the SVD's. Training is deterministic for a seed: ids are indexed in sorted order, the input
frame is built in that order and the block counts are fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession

from jobs.recs.train import FactorModel


@dataclass(frozen=True)
class AlsParams:
    rank: int = 32
    max_iter: int = 10
    reg_param: float = 0.05
    alpha: float = 10.0
    seed: int = 42
    # User and item blocks (Spark's unit of parallelism for ALS); fixed so results are reproducible.
    blocks: int = 4


def train_als(spark: SparkSession, ratings: pd.DataFrame, params: AlsParams) -> FactorModel:
    """Fit implicit ALS on positive (user_id, item_id, rating) pairs and return its factors."""
    if ratings.empty:
        raise ValueError("no ratings to train ALS on")
    users = pd.Index(sorted(ratings["user_id"].unique()))
    items = pd.Index(sorted(ratings["item_id"].unique()))
    indexed = pd.DataFrame(
        {
            "user": users.get_indexer(ratings["user_id"]).astype("int32"),
            "item": items.get_indexer(ratings["item_id"]).astype("int32"),
            "rating": ratings["rating"].astype("float32"),
        }
    ).sort_values(["user", "item"], kind="stable")
    frame = spark.createDataFrame(indexed, "user int, item int, rating float").repartition(params.blocks, "user")
    model = ALS(
        rank=params.rank,
        maxIter=params.max_iter,
        regParam=params.reg_param,
        alpha=params.alpha,
        implicitPrefs=True,
        seed=params.seed,
        numUserBlocks=params.blocks,
        numItemBlocks=params.blocks,
        userCol="user",
        itemCol="item",
        ratingCol="rating",
    ).fit(frame)
    return FactorModel(
        user_ids=np.asarray(users, dtype=object),
        item_ids=np.asarray(items, dtype=object),
        global_mean=0.0,
        user_bias=np.zeros(len(users)),
        item_bias=np.zeros(len(items)),
        user_factors=_dense(model.userFactors.toPandas(), len(users), params.rank),
        item_factors=_dense(model.itemFactors.toPandas(), len(items), params.rank),
        rating_scale=(-np.inf, np.inf),
        predicts_ratings=False,
    )


def _dense(factors: pd.DataFrame, count: int, rank: int) -> np.ndarray:
    """Spark's (id, features) rows as a matrix indexed by id (ids ALS never saw keep zeros)."""
    dense = np.zeros((count, rank))
    if not factors.empty:
        dense[factors["id"].to_numpy()] = np.vstack(factors["features"].to_numpy())
    return dense
