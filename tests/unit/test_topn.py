import numpy as np
import pytest

from jobs.recs.topn import assemble_top_n, diversify, score_top_candidates
from jobs.recs.train import FactorModel


def _model():
    # Two users, four items; user u1 likes items along factor 0, u2 along factor 1.
    return FactorModel(
        user_ids=np.array(["u1", "u2"], dtype=object),
        item_ids=np.array(["a", "b", "c", "d"], dtype=object),
        global_mean=3.0,
        user_bias=np.zeros(2),
        item_bias=np.array([0.0, 0.1, 0.2, 0.0]),
        user_factors=np.array([[1.0, 0.0], [0.0, 1.0]]),
        item_factors=np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 3.0]]),
    )


def test_scores_match_the_svd_formula_and_respect_exclusions():
    lists = score_top_candidates(_model(), {"u1": {"a"}}, {"d"}, candidates=3, block_size=1)
    # u1: "a" already bought, "d" unavailable; b = 0.1 + 1*1, c = 0.2 + 0.
    assert [item for item, _ in lists["u1"]] == ["b", "c"]
    assert dict(lists["u1"])["b"] == pytest.approx(1.1)
    assert [item for item, _ in lists["u2"]] == ["c", "b", "a"]
    assert dict(lists["u2"])["c"] == pytest.approx(1.2)


def test_diversify_caps_items_per_category():
    ranked = [("a", 5.0), ("b", 4.0), ("c", 3.0), ("d", 2.0)]
    category = {"a": "x", "b": "x", "c": "x", "d": "y"}
    assert diversify(ranked, category, n=3, max_per_category=2) == [("a", 5.0), ("b", 4.0), ("d", 2.0)]


def test_every_user_gets_exactly_n_with_fallbacks_in_order():
    recs = assemble_top_n(
        users=["u1", "cold"],
        model_lists={"u1": [("a", 2.0)]},
        segment_of={"cold": 0},
        segment_popular={0: ["c", "a"]},
        global_popular=["a", "b", "c", "d"],
        excluded={"u1": {"b"}},
        category_of=dict.fromkeys("abcd", "x"),
        reason_items={("u1", "x"): ["a", "c"]},
        title_of={"a": "Alpha", "b": "Beta", "c": "Gamma", "d": "Delta"},
        n=3,
        max_per_category=3,
    )
    by_user = {}
    for r in recs:
        by_user.setdefault(r.user_id, []).append(r)
    assert [r.item_id for r in by_user["u1"]] == ["a", "c", "d"]
    assert [r.source for r in by_user["u1"]] == ["svd", "popular", "popular"]
    assert by_user["u1"][0].reason == "because you viewed Gamma"
    assert [r.item_id for r in by_user["cold"]] == ["c", "a", "b"]
    assert [r.source for r in by_user["cold"]] == ["segment_popular", "segment_popular", "popular"]
    assert all(r.rank == n + 1 for rows in by_user.values() for n, r in enumerate(rows))


def test_a_catalogue_too_small_is_an_error_not_a_short_list():
    with pytest.raises(ValueError, match="cannot fill"):
        assemble_top_n(["u"], {}, {}, {}, ["a"], {}, {"a": "x"}, {}, {"a": "A"}, n=2, max_per_category=2)


def _small_svd(seed: int = 3):
    """A seeded Surprise SVD on a small random rating set (1..5), with its ratings."""
    import pandas as pd

    from jobs.recs.train import SvdParams, train_svd

    rng = np.random.default_rng(seed)
    users, items = 60, 90
    pairs = {(u, i) for u in range(users) for i in rng.choice(items, size=12, replace=False)}
    ratings = pd.DataFrame(
        [(f"u{u}", f"i{i}", float(rng.integers(1, 6))) for u, i in sorted(pairs)],
        columns=["user_id", "item_id", "rating"],
    )
    algo = train_svd(ratings, SvdParams(n_factors=8, n_epochs=15, random_state=seed), rating_scale=(1.0, 5.0))
    return algo, ratings


def test_blocked_top_n_equals_surprise_predict_on_the_same_model():
    from jobs.recs.train import factor_model

    algo, ratings = _small_svd()
    model = factor_model(algo)
    seen = ratings.groupby("user_id")["item_id"].agg(set).to_dict()
    n = 10
    lists = score_top_candidates(model, seen, set(), n, block_size=7)
    all_items = sorted(ratings["item_id"].unique())
    exact_lists = 0
    for user in sorted(seen):
        # Surprise's FAQ recipe: predict every unseen item, sort by estimate.
        predicted = sorted(
            ((item, algo.predict(user, item).est) for item in all_items if item not in seen[user]),
            key=lambda pair: -pair[1],
        )
        ours = lists[user]
        assert len(ours) == n
        assert not {item for item, _ in ours} & seen[user]
        # Our scores are Surprise's estimates before the global mean and the clipping to 1..5.
        ours_as_estimates = [min(max(s + model.global_mean, 1.0), 5.0) for _, s in ours]
        assert ours_as_estimates == pytest.approx([est for _, est in predicted[:n]], abs=1e-9)
        for item, score in ours:
            assert min(max(score + model.global_mean, 1.0), 5.0) == pytest.approx(algo.predict(user, item).est)
        # Ties aside (equal or clipped estimates), the lists are the same items in the same order.
        estimates = [est for _, est in predicted[: n + 1]]
        if len(set(estimates)) == len(estimates) and estimates[0] < 5.0:
            assert [item for item, _ in ours] == [item for item, _ in predicted[:n]]
            exact_lists += 1
    assert exact_lists > len(seen) // 2, "too many ties: the comparison would prove little"


def test_exactly_n_per_user_none_bought_none_unavailable_with_a_real_model():
    from jobs.recs.train import factor_model

    algo, ratings = _small_svd(seed=5)
    model = factor_model(algo)
    bought = ratings[ratings["rating"] >= 4].groupby("user_id")["item_id"].agg(set).to_dict()
    unavailable = {"i1", "i2", "i3"}
    items = sorted(ratings["item_id"].unique())
    users = [*sorted(ratings["user_id"].unique()), "cold1", "cold2"]
    n = 10
    candidates = score_top_candidates(model, bought, unavailable, n * 4)
    popular = [i for i in ratings["item_id"].value_counts().index if i not in unavailable]
    recs = assemble_top_n(
        users,
        candidates,
        segment_of={"cold1": 0},
        segment_popular={0: popular[5:15]},
        global_popular=popular,
        excluded=bought,
        category_of={item: f"c{n % 4}" for n, item in enumerate(items)},
        reason_items={},
        title_of={item: item.upper() for item in items},
        n=n,
        max_per_category=3,
    )
    by_user: dict[str, list] = {}
    for r in recs:
        by_user.setdefault(r.user_id, []).append(r)
    assert set(by_user) == set(users)
    for user, rows in by_user.items():
        assert [r.rank for r in rows] == list(range(1, n + 1))
        picked = [r.item_id for r in rows]
        assert len(set(picked)) == n
        assert not set(picked) & bought.get(user, set())
        assert not set(picked) & unavailable
    assert {r.source for r in by_user["cold1"]} == {"segment_popular"}
    assert by_user["cold2"][0].source == "popular"
    assert sum(r.source == "svd" for r in recs) > len(recs) // 2


def test_a_new_item_takes_its_place_and_the_models_items_move_down():
    recs = assemble_top_n(
        users=["u1"],
        model_lists={"u1": [("a", 3.0), ("b", 2.0), ("c", 1.0)]},
        segment_of={},
        segment_popular={},
        global_popular=["a", "b", "c", "d"],
        excluded={},
        category_of=dict.fromkeys("abcdn", "x"),
        reason_items={},
        title_of={},
        n=3,
        max_per_category=3,
        new_items={"u1": [("n", 1, 0.9, "new in x")]},
    )
    assert [(r.item_id, r.source) for r in recs] == [("a", "svd"), ("n", "new_item"), ("b", "svd")]
    assert recs[1].reason == "new in x"
    assert [r.rank for r in recs] == [1, 2, 3]


def test_a_new_users_demographic_list_comes_before_the_popularity_fallbacks():
    recs = assemble_top_n(
        users=["new"],
        model_lists={},
        segment_of={},
        segment_popular={},
        global_popular=["a", "b", "c"],
        excluded={},
        category_of=dict.fromkeys("abc", "x"),
        reason_items={},
        title_of={},
        n=3,
        max_per_category=3,
        prior_lists={"new": ["c"]},
    )
    assert [(r.item_id, r.source) for r in recs] == [("c", "demographic"), ("a", "popular"), ("b", "popular")]
