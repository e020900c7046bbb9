"""The model zoo: EASE's closed form, item-kNN, blends, selection without the hold-out, storage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from jobs.recs import item_models
from jobs.recs.item_models import EaseParams, ItemKnnParams, fit_ease, fit_item_knn, keep_neighbours
from jobs.recs.job import evaluate_candidates
from jobs.recs.ratings import chronological_split, random_split
from jobs.recs.scoring import BlendScorer, ItemScorer, top_items
from jobs.recs.topn import MASKED
from jobs.recs.train import SvdParams
from jobs.recs.zoo import ZooConfig, fit_spec, load_fitted, ranked_lists, select_models, store_fitted
from tests.support.ratings import grouped_interactions


def test_ease_solves_each_columns_ridge_regression_on_the_others():
    ratings = grouped_interactions(users=25, items=9, per_user=5)
    model = fit_ease(ratings, EaseParams(lambda_scale=0.5))
    items = list(model.item_ids)
    x = np.zeros((ratings["user_id"].nunique(), len(items)))
    users = sorted(ratings["user_id"].unique())
    for user, item in zip(ratings["user_id"], ratings["item_id"], strict=True):
        x[users.index(user), items.index(item)] = 1.0
    gram = x.T @ x
    lam = 0.5 * np.diag(gram).mean()
    for j in range(len(items)):
        others = [i for i in range(len(items)) if i != j]
        direct = np.linalg.solve(gram[np.ix_(others, others)] + lam * np.eye(len(others)), gram[others, j])
        np.testing.assert_allclose(model.weights[others, j], direct, rtol=1e-4, atol=1e-6)
        assert model.weights[j, j] == 0.0
    with pytest.raises(ValueError, match="PUSH_EASE_MAX_ITEMS"):
        fit_ease(ratings, EaseParams(max_items=5))


def test_item_knn_is_the_cosine_of_co_occurrence_with_each_items_nearest_kept(monkeypatch):
    ratings = grouped_interactions(users=30, items=12, per_user=5, seed=3)
    model = fit_item_knn(None, ratings, ItemKnnParams(neighbours=3, shrink=2.0))
    # In one block or in blocks of two columns: the same matrix, also when each user's strongest
    # items only are taken (the Spark path is checked against it in the integration tier).
    for cut in (200, 3):
        params = ItemKnnParams(neighbours=3, shrink=2.0, max_user_items=cut)
        monkeypatch.setattr(item_models, "_KNN_BLOCK_CELLS", 2 * 12)
        in_blocks = fit_item_knn(None, ratings, params).weights.toarray()
        monkeypatch.undo()
        np.testing.assert_allclose(in_blocks, fit_item_knn(None, ratings, params).weights.toarray(), rtol=1e-6)
    items = list(model.item_ids)
    users = sorted(ratings["user_id"].unique())
    x = np.zeros((len(users), len(items)))
    for user, item in zip(ratings["user_id"], ratings["item_id"], strict=True):
        x[users.index(user), items.index(item)] = 1.0
    co = x.T @ x
    degree = np.diag(co)
    cosine = co / (np.sqrt(np.outer(degree, degree)) + 2.0)
    np.fill_diagonal(cosine, -np.inf)
    weights = model.weights.toarray()
    for j in range(len(items)):
        nearest = np.lexsort((np.arange(len(items)), -cosine[:, j]))[:3]
        nearest = [i for i in nearest if co[i, j] > 0]
        assert sorted(np.flatnonzero(weights[:, j])) == sorted(nearest)
        np.testing.assert_allclose(weights[nearest, j], cosine[nearest, j], rtol=1e-5)
    narrower = keep_neighbours(model, 1).weights.toarray()
    assert ((narrower > 0).sum(axis=0) <= 1).all()
    np.testing.assert_allclose(narrower.max(axis=0), weights.max(axis=0), rtol=1e-6)


def test_top_items_exclude_seen_and_unavailable_and_break_ties_by_item_order():
    ratings = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"], "rating": [1.0, 1.0, 1.0]})

    class Flat:
        item_ids = np.array(["w", "x", "y", "z"], dtype=object)

        def scores(self, users):
            out = np.ones((len(users), 4), dtype=np.float32)
            out[[n for n, u in enumerate(users) if u == "nobody"]] = MASKED
            return out

    lists = top_items(Flat(), ["a", "b", "nobody"], {"a": {"x", "y"}, "b": {"x"}}, {"z"}, k=3)
    assert lists == {"a": [("w", 1.0)], "b": [("w", 1.0), ("y", 1.0)], "nobody": []}
    model = fit_ease(ratings, EaseParams(lambda_scale=1.0))
    scorer = ItemScorer(model, ratings, np.array(["w", "x", "y"], dtype=object))
    scores = scorer.scores(["a", "b", "stranger"])
    assert (scores[:, 0] == MASKED).all()  # "w" is unknown to the model
    assert (scores[2] == MASKED).all()  # no history, nothing to rank with


def test_blend_standardises_each_part_per_user():
    class Fixed:
        def __init__(self, rows):
            self.item_ids = np.array(["p", "q", "r"], dtype=object)
            self.rows = np.array(rows, dtype=np.float32)

        def scores(self, users):
            return self.rows[: len(users)].copy()

    big = Fixed([[100.0, 0.0, 50.0]])  # z: 1.22, -1.22, 0
    small = Fixed([[0.0, 0.2, 0.1]])  # z: -1.22, 1.22, 0
    blended = BlendScorer([big, small], [0.75, 0.25]).scores(["u"])[0]
    z = np.array([1.0, -1.0, 0.0]) * np.sqrt(1.5)
    np.testing.assert_allclose(blended, 0.75 * z - 0.25 * z, rtol=1e-5)
    unknown = Fixed([[MASKED, MASKED, MASKED]])
    np.testing.assert_allclose(BlendScorer([big, unknown], [0.5, 0.5]).scores(["u"])[0], 0.5 * z, rtol=1e-5)


def _without_seconds(record):
    if isinstance(record, dict):
        return {key: _without_seconds(value) for key, value in record.items() if not key.endswith("seconds")}
    return record


def _small_zoo(families=("svd", "ease")) -> ZooConfig:
    svd = SvdParams(n_factors=4, n_epochs=5, random_state=7)
    return ZooConfig(families=families, svd=svd, k=5, seed=7, validation_split=chronological_split)


def test_changing_the_hold_out_changes_no_trained_parameter_and_no_choice(settings):
    ratings = grouped_interactions(users=80, items=30, per_user=9, seed=5)
    train, test = chronological_split(ratings)
    catalogue = sorted(ratings["item_id"].unique())
    # The same training part against another hold-out: other users' pairs, other items.
    other_test = test.assign(item_id=test["item_id"].sample(frac=1.0, random_state=1).to_numpy())
    other_test = other_test.drop_duplicates(["user_id", "item_id"])
    first = evaluate_candidates(train, test, _small_zoo(), catalogue)
    second = evaluate_candidates(train, other_test, _small_zoo(), catalogue)
    assert _without_seconds(first[2]) == _without_seconds(second[2])  # the chosen spec, every validation trial
    assert set(first[3]) == set(second[3]) == {"svd", "ease", "blend"}
    svd_a, svd_b = first[3]["svd"].model, second[3]["svd"].model
    np.testing.assert_array_equal(svd_a.user_factors, svd_b.user_factors)
    np.testing.assert_array_equal(svd_a.item_factors, svd_b.item_factors)
    np.testing.assert_array_equal(svd_a.item_bias, svd_b.item_bias)
    np.testing.assert_array_equal(first[3]["ease"].model.weights, second[3]["ease"].model.weights)
    assert first[0]["candidates"] != second[0]["candidates"]  # the metrics did read the hold-out


def test_selection_is_seeded_and_chooses_the_best_validation_score():
    ratings = grouped_interactions(users=80, items=30, per_user=9, seed=2)
    train, _ = random_split(ratings, seed=3)
    catalogue = sorted(ratings["item_id"].unique())
    selection = select_models(train, catalogue, _small_zoo())
    again = select_models(train, catalogue, _small_zoo())
    assert selection.candidates == again.candidates
    assert _without_seconds(selection.record) == _without_seconds(again.record)
    scores = selection.record["validation"]["ndcg"]
    assert selection.chosen == max(scores, key=scores.get)
    assert max(trial["ndcg"] for trial in selection.record["trials"]) == scores[selection.chosen]
    models = {trial["model"] for trial in selection.record["trials"]}
    assert models == {"svd", "ease", "blend:ease+svd"} or models == {"svd", "ease", "blend:svd+ease"}
    assert len(selection.record["trials"]) == 6 + 4 + 3  # svd sampling x4 + 2, four lambdas, three weights


def test_a_stored_blend_reloads_and_ranks_identically(tmp_path):
    ratings = grouped_interactions(users=40, items=20, per_user=7, seed=4)
    catalogue = sorted(ratings["item_id"].unique())
    selection = select_models(ratings, catalogue, _small_zoo())
    blend = next(spec for name, spec in selection.candidates.items() if name == "blend")
    fitted = fit_spec(blend, ratings, catalogue, None)
    reloaded = load_fitted(store_fitted(fitted, tmp_path / "run"))
    assert reloaded.spec == fitted.spec
    items = np.array(catalogue, dtype=object)
    users = sorted(ratings["user_id"].unique())
    seen = ratings.groupby("user_id")["item_id"].agg(set).to_dict()
    assert ranked_lists(reloaded, ratings, items, users, seen, set(), 5) == ranked_lists(
        fitted, ratings, items, users, seen, set(), 5
    )
    assert {type(part.model).__name__ for part in reloaded.parts} == {"FactorModel", "ItemModel"}
