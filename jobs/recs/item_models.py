"""Item-to-item models: a user's scores are their interaction row times an item x item matrix.

- **EASE** (Steck, 2019, "Embarrassingly Shallow Autoencoders"): the closed-form ridge
  regression of every item's column on all the others, ``B = I - P diag(1 / diag(P))`` with
  ``P = (X'X + lambda I)^-1`` and a zero diagonal. It needs the dense items x items Gram
  matrix and its inverse: 8 bytes x items^2 each (10^4 items: 0.8 GB per copy, about three
  copies at the peak; 10^5 items: 80 GB, out of reach), and items^3 operations. Above
  ``max_items`` it refuses, and the co-occurrence model below takes over.
- **Item-kNN** on co-occurrence: cosine similarity ``c_ij / (sqrt(n_i n_j) + shrink)`` of
  items' user sets, each item keeping its ``neighbours`` most similar items (a sparse matrix).
  Up to ``local_max_items`` items it is computed in memory, a block of item columns at a time
  (sparse products, about 100 MB per block whatever the catalogue); above, with Spark (one
  self-join on users), which scales out with the events. Both give the same matrix.

``lambda_scale`` is relative to the mean item degree (users per item in the training data), so
a value tuned on a sample of users carries over to all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F
from scipy import sparse
from scipy.linalg import lapack


@dataclass(frozen=True)
class EaseParams:
    lambda_scale: float = 8.0
    max_items: int = 10_000
    # A user's row holds (rating / 5) ** history_power per item: 0 is a plain 0/1 row; above 0
    # a purchase or a long view weighs more than a glance (chosen with the intent weights).
    history_power: float = 0.0


@dataclass(frozen=True)
class ItemKnnParams:
    neighbours: int = 100
    shrink: float = 10.0
    # Items per user taken into the co-occurrence self-join (the user's strongest ones): bounds
    # the pairs a very active user (or a bot) contributes.
    max_user_items: int = 200
    # Up to this many items the co-occurrences are computed in memory, block by block; above
    # it (or with 0) by Spark.
    local_max_items: int = 200_000
    history_power: float = 0.0  # as EaseParams.history_power


# Cells of one dense block of similarities in the in-memory item-kNN (float64: about 100 MB).
_KNN_BLOCK_CELLS = 12_500_000


@dataclass
class ItemModel:
    """Item x item weights over ``item_ids``: scores of a user = interaction row @ ``weights``."""

    kind: str
    item_ids: np.ndarray
    weights: np.ndarray | sparse.csr_matrix
    params: dict = field(default_factory=dict)


def interaction_matrix(
    ratings: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray, power: float = 0.0
) -> sparse.csr_matrix:
    """Users x items matrix of the positive pairs of ``ratings`` (rating above 0) on the given ids:
    1 per pair, or ``(rating / 5) ** power`` when ``power`` is above 0."""
    positive = ratings[ratings["rating"] > 0]
    rows = pd.Index(user_ids).get_indexer(positive["user_id"])
    columns = pd.Index(item_ids).get_indexer(positive["item_id"])
    known = (rows >= 0) & (columns >= 0)
    if power > 0:
        values = (positive["rating"].to_numpy(dtype=np.float64)[known] / 5.0) ** power
    else:
        values = np.ones(int(known.sum()))
    matrix = sparse.csr_matrix(
        (values.astype(np.float32), (rows[known], columns[known])), shape=(len(user_ids), len(item_ids))
    )
    matrix.sum_duplicates()
    if power <= 0:
        matrix.data[:] = 1.0
    return matrix


def _positive_ids(ratings: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    positive = ratings[ratings["rating"] > 0]
    return (
        np.array(sorted(positive["user_id"].unique()), dtype=object),
        np.array(sorted(positive["item_id"].unique()), dtype=object),
    )


def fit_ease(ratings: pd.DataFrame, params: EaseParams) -> ItemModel:
    """EASE on the positive pairs of ``ratings``; raises when the catalogue exceeds ``max_items``."""
    user_ids, item_ids = _positive_ids(ratings)
    if len(item_ids) > params.max_items:
        raise ValueError(
            f"EASE needs a dense {len(item_ids)} x {len(item_ids)} matrix, above PUSH_EASE_MAX_ITEMS="
            f"{params.max_items}: use item_knn for this catalogue"
        )
    matrix = interaction_matrix(ratings, user_ids, item_ids)
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    degree = np.diag(gram).copy()
    gram[np.diag_indices_from(gram)] += params.lambda_scale * max(float(degree.mean()), 1.0)
    precision = _symmetric_inverse(gram)
    del gram
    weights = -precision / np.diag(precision)[None, :]
    np.fill_diagonal(weights, 0.0)
    return ItemModel(
        "ease",
        item_ids,
        weights.astype(np.float32),
        {"lambda_scale": params.lambda_scale, "history_power": params.history_power},
    )


def _symmetric_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix through its Cholesky factor (in place)."""
    factor, info = lapack.dpotrf(matrix, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky factorisation failed (LAPACK info {info})")
    inverse, info = lapack.dpotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"inversion failed (LAPACK info {info})")
    upper = np.triu(inverse)
    return upper + np.triu(upper, 1).T


def fit_item_knn(spark: SparkSession | None, ratings: pd.DataFrame, params: ItemKnnParams) -> ItemModel:
    """Cosine item-kNN from co-occurrence counts, in memory or (large catalogues) with Spark.

    ``weights[i, j]`` is the similarity of item ``i`` to item ``j`` when ``i`` is among ``j``'s
    ``neighbours`` most similar items (ties by item order), so a user's score for ``j`` sums the
    similarities of the neighbours they interacted with.
    """
    user_ids, item_ids = _positive_ids(ratings)
    positive = ratings[ratings["rating"] > 0]
    codes = pd.DataFrame(
        {
            "u": pd.Index(user_ids).get_indexer(positive["user_id"]).astype("int32"),
            "i": pd.Index(item_ids).get_indexer(positive["item_id"]).astype("int32"),
            "r": positive["rating"].astype("float64").to_numpy(),
        }
    ).drop_duplicates(["u", "i"])
    if spark is None or len(item_ids) <= params.local_max_items:
        found = _knn_in_memory(codes, len(user_ids), len(item_ids), params)
    else:
        found = _knn_with_spark(spark, codes, params)
    weights = sparse.csr_matrix(
        (found["s"].to_numpy(dtype=np.float32), (found["i"].to_numpy(), found["j"].to_numpy())),
        shape=(len(item_ids), len(item_ids)),
    )
    record = {
        "neighbours": params.neighbours,
        "shrink": params.shrink,
        "max_user_items": params.max_user_items,
        "history_power": params.history_power,
    }
    return ItemModel("item_knn", item_ids, weights, record)


def _knn_in_memory(codes: pd.DataFrame, users: int, items: int, params: ItemKnnParams) -> pd.DataFrame:
    """The nearest neighbours (``i``, ``j``, ``s``) of every item, a block of item columns at a time.

    Memory is one dense block (``_KNN_BLOCK_CELLS``) plus the interaction matrix, whatever the
    number of items; time is that of the sparse products (the co-occurring pairs).
    """
    ordered = codes.sort_values(["u", "r", "i"], ascending=[True, False, True])
    kept = ordered[ordered.groupby("u").cumcount() < params.max_user_items]
    x = sparse.csc_matrix(
        (np.ones(len(kept), dtype=np.float64), (kept["u"].to_numpy(), kept["i"].to_numpy())), shape=(users, items)
    )
    xt = x.T.tocsr()
    degree = np.asarray(x.sum(axis=0)).ravel()
    width = max(1, _KNN_BLOCK_CELLS // max(items, 1))
    found_i, found_j, found_s = [], [], []
    for first in range(0, items, width):
        last = min(items, first + width)
        co = (xt @ x[:, first:last]).toarray()
        own = np.arange(first, last)
        co[own, own - first] = 0.0  # an item is not its own neighbour
        similarity = co / (np.sqrt(np.outer(degree, degree[first:last])) + params.shrink)
        for column in range(last - first):
            values = similarity[:, column]
            rows = np.flatnonzero(co[:, column] > 0)
            if len(rows) > params.neighbours:
                # The k-th largest value bounds the candidates; ties are then broken by item order.
                kth = np.partition(values[rows], len(rows) - params.neighbours)[len(rows) - params.neighbours]
                rows = rows[values[rows] >= kth]
                rows = rows[np.lexsort((rows, -values[rows]))[: params.neighbours]]
            found_i.append(rows)
            found_j.append(np.full(len(rows), first + column))
            found_s.append(values[rows])
    if not found_i:
        return pd.DataFrame({"i": [], "j": [], "s": []})
    return pd.DataFrame({"i": np.concatenate(found_i), "j": np.concatenate(found_j), "s": np.concatenate(found_s)})


def _knn_with_spark(spark: SparkSession, codes: pd.DataFrame, params: ItemKnnParams) -> pd.DataFrame:
    """:func:`_knn_in_memory` as Spark jobs (one self-join on users), for catalogues above ``local_max_items``."""
    frame = spark.createDataFrame(codes, "u int, i int, r double")
    strongest = Window.partitionBy("u").orderBy(F.desc("r"), "i")
    kept = frame.withColumn("n", F.row_number().over(strongest)).where(F.col("n") <= params.max_user_items)
    kept = kept.select("u", "i").cache()
    try:
        degree = kept.groupBy("i").agg(F.count("*").alias("deg"))
        pairs = (
            kept.alias("a")
            .join(kept.alias("b"), "u")
            .where(F.col("a.i") != F.col("b.i"))
            .groupBy(F.col("a.i").alias("i"), F.col("b.i").alias("j"))
            .agg(F.count("*").alias("c"))
        )
        similar = (
            pairs.join(degree.withColumnRenamed("deg", "deg_i"), "i")
            .join(degree.withColumnRenamed("i", "j").withColumnRenamed("deg", "deg_j"), "j")
            .withColumn("s", F.col("c") / (F.sqrt(F.col("deg_i") * F.col("deg_j")) + F.lit(params.shrink)))
        )
        nearest = Window.partitionBy("j").orderBy(F.desc("s"), "i")
        top = similar.withColumn("n", F.row_number().over(nearest)).where(F.col("n") <= params.neighbours)
        return top.select("i", "j", "s").toPandas()
    finally:
        kept.unpersist()


def keep_neighbours(model: ItemModel, neighbours: int) -> ItemModel:
    """The same kNN model with each item's ``neighbours`` strongest similarities only (ties by item order)."""
    columns = model.weights.tocsc()
    rows, cols, values = [], [], []
    for j in range(columns.shape[1]):
        start, end = columns.indptr[j], columns.indptr[j + 1]
        if end == start:
            continue
        own_rows, own_values = columns.indices[start:end], columns.data[start:end]
        order = np.lexsort((own_rows, -own_values))[:neighbours]
        rows.append(own_rows[order])
        values.append(own_values[order])
        cols.append(np.full(len(order), j))
    if rows:
        rows, cols, values = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
    weights = sparse.csr_matrix((values, (rows, cols)), shape=columns.shape, dtype=np.float32)
    return ItemModel(model.kind, model.item_ids, weights, {**model.params, "neighbours": neighbours})


def save_item_model(model: ItemModel, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if sparse.issparse(model.weights):
        csr = model.weights.tocsr()
        arrays = {"data": csr.data, "indices": csr.indices, "indptr": csr.indptr}
    else:
        arrays = {"dense": model.weights}
    np.savez(path, kind=model.kind, item_ids=model.item_ids.astype(str), **arrays)
    return path


def load_item_model(path: str | Path, params: dict | None = None) -> ItemModel:
    with np.load(path) as stored:
        item_ids = stored["item_ids"].astype(object)
        if "dense" in stored:
            weights = stored["dense"]
        else:
            shape = (len(item_ids), len(item_ids))
            weights = sparse.csr_matrix((stored["data"], stored["indices"], stored["indptr"]), shape=shape)
        return ItemModel(str(stored["kind"]), item_ids, weights, params or {})
