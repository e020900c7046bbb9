"""Top-N for every user in one vectorised, blocked scoring pass over the SVD factors.

Scores are ``b_u + b_i + p_u . q_i`` for a block of users against all items at once (the
global mean does not change the order). Excluded items (already bought, unavailable) are
masked before selection; a category cap keeps lists diverse; users the model does not know,
or whose list comes up short, are filled from their segment's most popular items and then the
global ones, so every user gets exactly N items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from jobs.recs.train import FactorModel


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
    excluded: Mapping[str, set[str]],
    unavailable: set[str],
    candidates: int,
    block_size: int = 2048,
    only_users: set[str] | None = None,
) -> dict[str, list[tuple[str, float]]]:
    """For each user the model knows (or each of ``only_users``), the ``candidates`` best (item, score) pairs."""
    item_index = model.item_index()
    unavailable_mask = np.zeros(len(model.item_ids), dtype=bool)
    for item in unavailable:
        if item in item_index:
            unavailable_mask[item_index[item]] = True
    rows = np.arange(len(model.user_ids))
    if only_users is not None:
        rows = np.array([n for n, user in enumerate(model.user_ids) if user in only_users], dtype=int)
    take = min(candidates, len(model.item_ids))
    result: dict[str, list[tuple[str, float]]] = {}
    for start in range(0, len(rows), block_size):
        block = rows[start : start + block_size]
        users = model.user_ids[block]
        scores = (
            model.user_bias[block, None] + model.item_bias[None, :] + model.user_factors[block] @ model.item_factors.T
        )
        scores[:, unavailable_mask] = -np.inf
        for row, user in enumerate(users):
            for item in excluded.get(user, ()):
                column = item_index.get(item)
                if column is not None:
                    scores[row, column] = -np.inf
        # argpartition then a stable sort of the few survivors: O(items) per user, ties by item order.
        top = (
            np.argpartition(-scores, take - 1, axis=1)[:, :take]
            if take < scores.shape[1]
            else np.tile(np.arange(scores.shape[1]), (len(block), 1))
        )
        for row, user in enumerate(users):
            columns = top[row]
            values = scores[row, columns]
            order = np.lexsort((columns, -values))
            result[user] = [(model.item_ids[columns[n]], float(values[n])) for n in order if np.isfinite(values[n])]
    return result


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
) -> list[Recommendation]:
    """Exactly ``n`` recommendations per user: model first, then segment, then global popularity."""
    out: list[Recommendation] = []
    for user in users:
        picked = diversify(model_lists.get(user, []), category_of, n, max_per_category)
        rows = []
        for item, score in picked:
            # Explain with the user's strongest other item of the same category.
            anchors = reason_items.get((user, category_of.get(item, "")), [])
            anchor = next((a for a in anchors if a != item and a in title_of), None)
            reason = f"because you viewed {title_of[anchor]}" if anchor else "picked for your taste"
            rows.append((item, score, "svd", reason))
        taken = {item for item, *_ in rows} | excluded.get(user, set())
        fallbacks = [
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
