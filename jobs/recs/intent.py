"""Intent weights chosen on validation: how much a click, a favourite, a cart, a purchase and a
long view count, and how much that strength counts when an item model reads a user's history.

The evidence of a (user, item) pair is a weighted sum of its decayed event counts
(``ratings.pair_evidence``), so any weights turn it into ratings without another pass over the
events. ``tune_intent`` searches from the hand-set defaults: the dwell exponent and the history
power of item models together (at power 0 a history row is 0/1 and no weight shows), then each
event type's weight one at a time, then the power again,
keeping a change only when it raises NDCG@k on a per-user chronological validation split of the
training part. The item model it scores with (EASE, or item-kNN above EASE's size limit) is
fitted once on the fit part's 0/1 matrix, which no weight changes, so each trial is one scoring
pass. The split only cuts pairs by time, never by weight: every candidate weight is positive,
so every candidate has the same pairs.

The chosen weights then make the run's ratings (what SVD trains on and what item models read)
and are stored with the run, so the hourly and stream refreshes compute recent ratings the same
way.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd

from jobs.recs.item_models import EaseParams, ItemKnnParams, fit_ease, fit_item_knn
from jobs.recs.ratings import DWELL_EXPONENTS, IntentWeights, chronological_split, of_pairs, ratings_from_evidence
from jobs.recs.zoo import FittedModel, ModelSpec, item_universe, validation_ndcg

log = logging.getLogger(__name__)

# The values each coordinate may take (a view counts 1). The defaults are among them.
TYPE_GRID: dict[str, tuple[float, ...]] = {
    "click": (1.0, 2.0, 4.0),
    "favorite": (1.0, 3.0, 6.0),
    "add_to_cart": (2.0, 4.0, 8.0),
    "purchase": (3.0, 6.0, 12.0),
}
HISTORY_POWERS = (0.0, 0.5, 1.0, 2.0)


def tune_intent(
    evidence: pd.DataFrame,
    ease: EaseParams,
    knn: ItemKnnParams,
    k: int,
    seed: int,
    tuning_users: int,
    catalogue: list[str] | None = None,
) -> tuple[IntentWeights, float, dict]:
    """(weights, history power, record) chosen on ``evidence`` (the training part only)."""
    defaults = IntentWeights()
    ratings = ratings_from_evidence(evidence, defaults)
    fit_part, check_part = chronological_split(ratings)
    users = np.array(sorted(check_part["user_id"].unique()), dtype=object)
    if len(users) == 0 or fit_part.empty:
        return defaults, 0.0, {"why": "too few pairs to validate on: defaults kept"}
    if len(users) > tuning_users:
        users = np.sort(np.random.default_rng(seed).choice(users, size=tuning_users, replace=False))
    check_part = check_part[check_part["user_id"].isin(set(users))]
    fit_evidence = of_pairs(evidence, fit_part)
    item_count = fit_part["item_id"].nunique()
    if item_count <= ease.max_items:
        model, family = fit_ease(fit_part, ease), "ease"
    else:
        model, family = fit_item_knn(None, fit_part, knn), "item_knn"
    items = item_universe(fit_part, catalogue or [])

    def score(weights: IntentWeights, power: float) -> float:
        history = ratings_from_evidence(fit_evidence, weights)
        fitted = FittedModel(ModelSpec(family), replace(model, params={**model.params, "history_power": power}))
        return validation_ndcg(fitted, history, check_part, items, k)

    best_weights, best_power = defaults, 0.0
    best = start = score(defaults, 0.0)
    trials = 1

    def consider(weights: IntentWeights, power: float) -> None:
        nonlocal best, best_weights, best_power, trials
        value = score(weights, power)
        trials += 1
        if value > best + 1e-9:
            best, best_weights, best_power = value, weights, power

    # Dwell and history power together: at power 0 a row is 0/1 and no weight shows.
    for exponent in DWELL_EXPONENTS:
        for power in HISTORY_POWERS:
            if (exponent, power) != (0.0, 0.0):
                consider(replace(defaults, dwell_exponent=exponent), power)
    for kind, values in TYPE_GRID.items():
        current = best_weights
        for value in values:
            if value != current.types[kind]:
                consider(replace(current, types={**current.types, kind: value}), best_power)
    settled = best_weights
    for power in HISTORY_POWERS:
        if power != best_power:
            consider(settled, power)
    record = {
        "weights": best_weights.to_dict(),
        "history_power": best_power,
        "scored_with": family,
        "validation_users": len(users),
        f"validation_ndcg@{k}": {"defaults": round(start, 6), "chosen": round(best, 6)},
        "trials": trials,
    }
    log.info("intent weights: %s", record)
    return best_weights, best_power, record
