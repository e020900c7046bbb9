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
