"""New items, new users and fold-in: attribute encoding, the command's four options, planted-truth quality."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from evaluation import ratings as command
from jobs.recs.attributes import CONSTANT, encode_attributes, read_attribute_file
from jobs.recs.coldstart import fold_in_factors
from jobs.recs.ratings import with_sampled_negatives
from jobs.recs.train import SvdParams, factor_model, train_svd
from simulation.attributed import WorldConfig, make_world


def test_attributes_are_one_hot_with_multi_values_numeric_bins_and_empty_cells(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("item_id,genres,price\na,Comedy|Drama,10\nb,Drama,20\nc,,30\nd,Horror,\na,Comedy,40\n")
    frame = read_attribute_file(path, "item_id")
    table = encode_attributes(frame, "item_id", bins=2)
    assert list(table.ids) == ["b", "c", "d", "a"]  # a duplicate id keeps its last row
    assert set(table.describe("a")) == {"genres=Comedy", "price#1"}
    assert set(table.describe("b")) == {"genres=Drama", "price#0"}
    assert table.describe("c") == ["price#1"]  # an empty cell gives nothing
    assert table.describe("d") == ["genres=Horror"]  # no price: no bin
    rows = table.rows(["a", "zzz"]).toarray()
    assert rows[1].tolist() == [1.0 if name == CONSTANT else 0.0 for name in table.names]
    assert rows[0][table.names.index(CONSTANT)] == 1.0


def test_an_attribute_file_must_start_with_its_id_column(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("age,user_id\n30,u1\n")
    with pytest.raises(ValueError, match="user_id"):
        read_attribute_file(path, "user_id")


def test_folding_in_a_users_own_history_recovers_their_ranking():
    world = make_world(WorldConfig(users=120, items=80, seed=3))
    params = SvdParams(n_factors=8, n_epochs=40, random_state=1)
    catalogue = sorted(world.ratings["item_id"].unique())
    model = factor_model(train_svd(with_sampled_negatives(world.ratings, catalogue, 1.0, 1), params))
    user = model.user_ids[0]
    history = world.ratings[world.ratings["user_id"] == user]
    renamed = history.assign(user_id="newcomer")
    folded = fold_in_factors(model, renamed, ["newcomer"], 1.0, params.reg_all, seed=1)
    assert list(folded.user_ids[:-1]) == list(model.user_ids)
    assert folded.user_ids[-1] == "newcomer"
    original = model.user_factors[0] @ model.item_factors.T + model.item_bias
    again = folded.user_factors[-1] @ folded.item_factors.T + folded.item_bias
    correlation = pd.Series(original).corr(pd.Series(again), method="spearman")
    assert correlation > 0.6, correlation


def _write(world, tmp_path, train, recent, items, users, candidates):
    paths = {name: tmp_path / name for name in ("train.tsv", "recent.tsv", "items.csv", "users.csv", "cand.txt")}
    train.to_csv(paths["train.tsv"], sep="\t", header=False, index=False)
    recent.to_csv(paths["recent.tsv"], sep="\t", header=False, index=False)
    items.to_csv(paths["items.csv"], index=False)
    users.to_csv(paths["users.csv"], index=False)
    paths["cand.txt"].write_text("\n".join(candidates) + "\n")
    return paths


def test_the_command_lists_every_user_over_the_candidates_with_recent_events_counted_as_seen(tmp_path, capsys):
    world = make_world(WorldConfig(users=120, items=90, seed=5))
    new_items = sorted(world.items["item_id"])[:15]
    new_users = sorted(world.users["user_id"])[:10]
    ratings = world.ratings[~world.ratings["item_id"].isin(new_items) & ~world.ratings["user_id"].isin(new_users)]
    ratings = ratings.sort_values("timestamp")
    later = ratings["timestamp"] > ratings["timestamp"].quantile(0.8)
    train, recent = ratings[~later], ratings[later].groupby("user_id").head(3)
    candidates = new_items + sorted(set(train["item_id"]))[:25]
    paths = _write(world, tmp_path, train, recent, world.items, world.users, candidates)
    out = tmp_path / "lists.tsv"
    argv = [str(paths["train.tsv"]), "--recommend-out", str(out), "--items", str(paths["items.csv"]),
            "--users", str(paths["users.csv"]), "--candidates", str(paths["cand.txt"]),
            "--recent", str(paths["recent.tsv"]), "--k", "10"]  # fmt: skip
    assert command.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    lists = pd.read_csv(out, sep="\t", header=None, names=["user_id", "item_id", "rank"], dtype=str)

    assert set(lists["user_id"]) == set(world.users["user_id"])  # new users included
    assert lists.groupby("user_id").size().eq(10).all()
    assert set(lists["item_id"]) <= set(candidates)
    assert set(lists["item_id"]) & set(new_items)  # new items are ranked, not only warm ones
    seen = pd.concat([train, recent]).groupby("user_id")["item_id"].apply(set)
    listed = lists.groupby("user_id")["item_id"].apply(set)
    assert all(not (listed[user] & seen.get(user, set())) for user in listed.index)
    assert result["training_seconds"] > 0
    assert result["fold_in_seconds"] >= 0
    assert result["new_item_count"] == len(new_items)
    assert result["new_user_count"] == len(new_users)


def test_the_options_need_recommend_out(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("1\t1\t5\t1\n")
    with pytest.raises(SystemExit):
        command.main([str(path), "--candidates", str(path)])


@pytest.fixture(scope="module")
def planted():
    from benchmarks import coldstart

    world = make_world(WorldConfig(users=250, items=160, seed=11))
    report = coldstart.Report()
    return {
        "new_items": coldstart.new_items(world, 10, 11, report),
        "new_users": coldstart.new_users(world, 10, 11, report),
        "fold_in": coldstart.fold_in(world, 10, 11, report),
    }


def test_new_items_are_ranked_well_above_random_from_their_attributes(planted):
    result = planted["new_items"]
    assert result["hybrid"]["ndcg"] > 1.5 * result["random"]["ndcg"]
    assert result["hybrid"]["ndcg"] > result["attribute_popularity"]["ndcg"]


def test_new_users_get_at_least_popularity_and_every_user_a_list(planted):
    result = planted["new_users"]
    assert result["listed_users"] == result["all_users"]
    assert result["demographic"]["ndcg"] >= result["popularity"]["ndcg"] - 0.01


def test_folding_in_recent_events_beats_the_stale_lists_at_a_fraction_of_retraining(planted):
    result = planted["fold_in"]
    assert result["folded"]["ndcg"] > result["stale"]["ndcg"]
    assert result["fold_in_seconds"] < 0.2 * result["retrain_seconds"]


def test_a_candidate_file_of_new_items_only_gets_lists_from_attributes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    world = make_world(WorldConfig(users=80, items=60, seed=2))
    new_items = sorted(rng.choice(world.items["item_id"], size=12, replace=False))
    train = world.ratings[~world.ratings["item_id"].isin(new_items)]
    paths = _write(world, tmp_path, train, train.head(0), world.items, world.users, new_items)
    out = tmp_path / "lists.tsv"
    argv = [str(paths["train.tsv"]), "--recommend-out", str(out), "--items", str(paths["items.csv"]),
            "--candidates", str(paths["cand.txt"]), "--k", "5"]  # fmt: skip
    assert command.main(argv) == 0
    lists = pd.read_csv(out, sep="\t", header=None, names=["user_id", "item_id", "rank"], dtype=str)
    assert set(lists["item_id"]) <= set(new_items)
    assert set(lists["user_id"]) == set(train["user_id"])
    # Personal, not one popularity order for everybody.
    assert lists[lists["rank"] == "1"]["item_id"].nunique() > 1


def test_a_new_item_enters_the_lists_of_users_whose_items_share_its_attributes(tmp_path):
    from jobs.recs.coldstart import (
        HybridItemScorer,
        ItemColdParams,
        fit_attribute_columns,
        load_item_cold,
        new_item_picks,
        save_item_cold,
    )
    from jobs.recs.item_models import EaseParams, fit_ease

    world = make_world(WorldConfig(users=200, items=120, seed=4))
    new = "i0000"
    train = world.ratings[world.ratings["item_id"] != new]
    attributes = encode_attributes(world.items, "item_id")
    base = fit_ease(train, EaseParams())
    counts = train["item_id"].value_counts()
    cold = fit_attribute_columns(base, base.item_ids, counts, attributes, ItemColdParams(popularity_weight=0.0))
    cold, base = load_item_cold(save_item_cold(cold, base, tmp_path / "cold.npz"))
    universe = np.array(sorted(world.items["item_id"]), dtype=object)
    scorer = HybridItemScorer(cold, base, attributes, counts, train, universe)
    seen = train.groupby("user_id")["item_id"].agg(set).to_dict()
    picks = new_item_picks(scorer, sorted(seen), {new}, seen, 10, 1)
    chosen = set(picks)
    assert 0 < len(chosen) < len(seen)  # some users, not everyone
    assert all(rows == [(new, rows[0][1], rows[0][2])] and rows[0][1] < 10 for rows in picks.values())
    # The users it reached are the ones who took it in the held-back truth, far above the rest.
    took = set(world.ratings.loc[world.ratings["item_id"] == new, "user_id"])
    reached_rate = len(chosen & took) / len(chosen)
    others_rate = len(took - chosen) / max(len(set(seen) - chosen), 1)
    assert reached_rate > 2 * others_rate


def test_the_benchmark_runs_the_same_protocols_on_files_in_the_commands_formats(tmp_path, capsys):
    from benchmarks import coldstart

    world = make_world(WorldConfig(users=90, items=70, seed=9))
    world.ratings.to_csv(tmp_path / "r.tsv", sep="\t", header=False, index=False)
    world.items.to_csv(tmp_path / "items.csv", index=False)
    world.users.to_csv(tmp_path / "users.csv", index=False)
    argv = ["--ratings", str(tmp_path / "r.tsv"), "--item-attributes", str(tmp_path / "items.csv"),
            "--user-attributes", str(tmp_path / "users.csv")]  # fmt: skip
    assert coldstart.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["data"].endswith("r.tsv")
    assert result["new_users"]["listed_users"] == result["new_users"]["all_users"] == 90
    assert set(result["fold_in"]) >= {"stale", "folded", "retrained", "fold_in_seconds"}
