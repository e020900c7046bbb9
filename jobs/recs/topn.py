"""Top-N for every user in one vectorised, blocked scoring pass over the SVD factors.

Scores are ``b_u + b_i + p_u . q_i`` for a block of users against all items at once (the
global mean does not change the order). Excluded items (already bought, unavailable) are
masked before selection; a category cap keeps lists diverse; users the model does not know,
or whose list comes up short, are filled from their segment's most popular items and then the
global ones, so every user gets exactly N items.

The pass is sized for 10^5 users x 10^4 items on a small machine: memory is bounded by the
block (``block_size`` x items float32 scores), never users x items. Selection runs in float32
(the item bias rides in the matrix product as one extra factor, the user bias does not change a
user's order); the few survivors are re-scored in float64 with Surprise's own formula and
sorted by (score desc, item order), so float32 rounding cannot reorder a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np
import pandas as pd

from jobs.recs.train import FactorModel

# Score of an unavailable item, far below any real score, finite so that the matrix product
# never meets an infinity; every score at or below half of it counts as excluded.
MASKED = np.float32(-1e30)
EXCLUDED_BELOW = np.float32(-5e29)
# Float32 survivors per list beyond the requested length, re-scored in float64.
_SLACK = 8
# Items per group in the two-stage selection (group maxima first, then the items of the best groups).
_GROUP = 16


@dataclass(frozen=True)
class Recommendation:
    user_id: str
    rank: int
    item_id: str
    score: float
    source: str
    reason: str


def score_top_candidates(
    model: FactorModel,
    excluded: Mapping[str, Iterable[str]],
    unavailable: set[str],
    candidates: int,
    block_size: int = 512,
    only_users: set[str] | None = None,
) -> dict[str, list[tuple[str, float]]]:
    """For each user the model knows (or each of ``only_users``), the ``candidates`` best (item, score) pairs.

    Lists are in score order (ties by item order), hold no excluded or unavailable item, and are
    shorter than ``candidates`` only when fewer items are left for that user.
    """
    n_items = len(model.item_ids)
    rows = np.arange(len(model.user_ids))
    if only_users is not None:
        rows = np.flatnonzero(pd.Index(model.user_ids).isin(list(only_users)))
    take = min(candidates, n_items)
    if take <= 0 or len(rows) == 0:
        return {model.user_ids[row]: [] for row in rows}
    user_ptr, excluded_cols = excluded_columns(model.user_ids, model.item_ids, excluded)
    item_bias = model.item_bias.astype(np.float32)
    item_bias[_columns_of(model, unavailable)] = MASKED
    # One extra factor carries the item bias: scores = [p_u, 1] . [q_i, b_i].
    groups = -(-n_items // _GROUP)
    padded = groups * _GROUP
    item_matrix = np.zeros((padded, model.item_factors.shape[1] + 1), dtype=np.float32)
    item_matrix[:n_items, :-1] = model.item_factors
    item_matrix[:n_items, -1] = item_bias
    item_matrix[n_items:, -1] = MASKED
    item_matrix_t = np.ascontiguousarray(item_matrix.T)
    user_matrix = np.ones((len(model.user_ids), item_matrix.shape[1]), dtype=np.float32)
    user_matrix[:, :-1] = model.user_factors
    select = min(take + _SLACK, n_items)

    result: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(rows), block_size):
        block = rows[start : start + block_size]
        scores = user_matrix[block] @ item_matrix_t
        counts = user_ptr[block + 1] - user_ptr[block]
        if counts.any():
            # Positions of the block's excluded columns in the CSR arrays, without a Python loop.
            spans = np.repeat(user_ptr[block] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            scores[np.repeat(np.arange(len(block)), counts), excluded_cols[spans]] = MASKED
        columns = _top_columns(scores, select, groups)
        values = np.take_along_axis(scores, columns, axis=1)
        columns = np.minimum(columns, n_items - 1)  # padding columns are masked; keep them indexable
        # Re-score the survivors in float64 exactly as Surprise does, then order them.
        exact = (
            model.user_bias[block, None]
            + model.item_bias[columns]
            + np.einsum("uf,ukf->uk", model.user_factors[block], model.item_factors[columns])
        )
        exact[values <= EXCLUDED_BELOW] = -np.inf
        order = np.lexsort((columns, -exact), axis=1)[:, :take]
        columns = np.take_along_axis(columns, order, axis=1)
        exact = np.take_along_axis(exact, order, axis=1)
        items, finite = model.item_ids[columns], np.isfinite(exact)
        for row, user in enumerate(model.user_ids[block]):
            if finite[row].all():
                result[user] = list(zip(items[row].tolist(), exact[row].tolist(), strict=True))
            else:
                keep = finite[row]
                result[user] = list(zip(items[row][keep].tolist(), exact[row][keep].tolist(), strict=True))
    return result


def _top_columns(scores: np.ndarray, select: int, groups: int) -> np.ndarray:
    """Columns of the ``select`` best scores of each row, in no particular order.

    With many items, the columns fall into ``groups`` strided groups (group ``g`` holds columns
    ``g, g + groups, g + 2 groups, ...``: their maxima are one vectorised reduction over
    contiguous memory). Every item of the top ``select`` lies in one of the ``select`` groups
    with the highest maxima (ties aside), so the exact selection then runs over
    ``select x _GROUP`` columns instead of all of them.
    """
    n_rows, n_columns = scores.shape
    if select >= n_columns:
        return np.broadcast_to(np.arange(n_columns), (n_rows, n_columns)).copy()
    if select * 4 > groups:
        return np.argpartition(scores, n_columns - select, axis=1)[:, -select:]
    maxima = scores.reshape(n_rows, _GROUP, groups).max(axis=1)
    best_groups = np.argpartition(maxima, groups - select, axis=1)[:, -select:]
    pool_columns = (best_groups[:, :, None] + np.arange(_GROUP) * groups).reshape(n_rows, -1)
    flat = pool_columns + (np.arange(n_rows) * n_columns)[:, None]
    pool = scores.ravel()[flat]
    picked = np.argpartition(pool, pool.shape[1] - select, axis=1)[:, -select:]
    return np.take_along_axis(pool_columns, picked, axis=1)


def _columns_of(model: FactorModel, items: Iterable[str]) -> np.ndarray:
    found = pd.Index(model.item_ids).get_indexer(list(items))
    return found[found >= 0]


def excluded_columns(
    user_ids: np.ndarray, item_ids: np.ndarray, excluded: Mapping[str, Iterable[str]]
) -> tuple[np.ndarray, np.ndarray]:
    """Excluded item columns of every user of ``user_ids`` as CSR arrays (row pointers, columns)."""
    user_rows = pd.Index(user_ids).get_indexer(list(excluded))
    keys = [user for user, row in zip(excluded, user_rows, strict=True) if row >= 0]
    lists = [list(excluded[user]) for user in keys]
    lengths = np.fromiter((len(items) for items in lists), dtype=np.int64, count=len(lists))
    flat = np.array(list(chain.from_iterable(lists)), dtype=object)
    columns = pd.Index(item_ids).get_indexer(flat) if len(flat) else np.zeros(0, dtype=np.int64)
    owners = np.repeat(user_rows[user_rows >= 0], lengths)
    known = columns >= 0
    owners, columns = owners[known], columns[known]
    order = np.argsort(owners, kind="stable")
    user_ptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.add.at(user_ptr, owners + 1, 1)
    return np.cumsum(user_ptr), columns[order]


def diversify(
    ranked: Sequence[tuple[str, float]], category_of: Mapping[str, str], n: int, max_per_category: int
) -> list[tuple[str, float]]:
    """Greedy re-rank: keep score order but at most ``max_per_category`` items per category."""
    chosen, per_category = [], {}
    for item, score in ranked:
        category = category_of.get(item, "")
        if per_category.get(category, 0) >= max_per_category:
            continue
        chosen.append((item, score))
        per_category[category] = per_category.get(category, 0) + 1
        if len(chosen) == n:
            break
    return chosen


def assemble_top_n(
    users: Sequence[str],
    model_lists: Mapping[str, list[tuple[str, float]]],
    segment_of: Mapping[str, int],
    segment_popular: Mapping[int, list[str]],
    global_popular: list[str],
    excluded: Mapping[str, set[str]],
    category_of: Mapping[str, str],
    reason_items: Mapping[tuple[str, str], list[str]],
    title_of: Mapping[str, str],
    n: int,
    max_per_category: int,
    model_source: str = "svd",
    new_items: Mapping[str, list[tuple[str, int, float, str]]] | None = None,
    prior_lists: Mapping[str, list[str]] | None = None,
) -> list[Recommendation]:
    """Exactly ``n`` recommendations per user: model first, then segment, then global popularity.

    ``model_source`` labels the model's rows (the trainer: ``svd`` or ``als``); the fallbacks are
    ``segment_popular`` and ``popular``. ``new_items`` (item, place, score, reason) per user are
    items with no interactions yet that the cold-start model put in the user's list: each takes
    its place (source ``new_item``) and the model's items move down. ``prior_lists`` (a new
    user's demographic prior) come first among the fallbacks (source ``demographic``).
    """
    out: list[Recommendation] = []
    new_items = new_items or {}
    prior_lists = prior_lists or {}
    for user in users:
        fresh = new_items.get(user, [])
        fresh_ids = {item for item, *_ in fresh}
        ranked = [(item, score) for item, score in model_lists.get(user, []) if item not in fresh_ids]
        picked = diversify(ranked, category_of, n - len(fresh), max_per_category)
        rows = []
        for item, score in picked:
            # Explain with the user's strongest other item of the same category.
            anchors = reason_items.get((user, category_of.get(item, "")), [])
            anchor = next((a for a in anchors if a != item and a in title_of), None)
            reason = f"because you viewed {title_of[anchor]}" if anchor else "picked for your taste"
            rows.append((item, score, model_source, reason))
        for item, place, score, reason in sorted(fresh, key=lambda pick: pick[1]):
            rows.insert(min(place, len(rows)), (item, score, "new_item", reason))
        taken = {item for item, *_ in rows} | excluded.get(user, set())
        fallbacks = [
            ("demographic", prior_lists.get(user, []), "liked by shoppers like you"),
            ("segment_popular", segment_popular.get(segment_of.get(user, -1), []), "popular with shoppers like you"),
            ("popular", global_popular, "popular right now"),
        ]
        for source, pool, reason in fallbacks:
            for position, item in enumerate(pool):
                if len(rows) >= n:
                    break
                if item not in taken:
                    rows.append((item, -float(position), source, reason))
                    taken.add(item)
        if len(rows) < n:
            raise ValueError(f"cannot fill {n} recommendations for user {user}: catalogue too small after exclusions")
        out.extend(
            Recommendation(user, rank + 1, item, round(score, 6), source, reason)
            for rank, (item, score, source, reason) in enumerate(rows)
        )
    return out
