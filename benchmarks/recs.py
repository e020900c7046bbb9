"""Benchmark: top-N for every user and its publication, each next to yardsticks from the same run.

1. A seeded Surprise SVD is trained on generated sparse ratings (``--users`` x ``--items``,
   ``--ratings-per-user`` distinct items each, item popularity skewed, every item rated at least
   once) for ``--epochs`` epochs: few epochs, because only the shape of the factors matters to
   scoring speed, not their quality.
2. Top-N (``--n``, items the user rated excluded) for all users, timed three ways on the same
   model: the project's blocked scorer (``jobs.recs.topn.score_top_candidates``); Surprise's
   FAQ recipe (anti-testset of the user, ``algo.test``, sort per user) on ``--recipe-users``
   sampled users, extrapolated linearly to all users; and a bare numpy pass (float32 GEMM of
   the factors, ``argpartition``, no biases, no exclusions, no output) as the physical bound.
3. Publication of ~users x n rows: the project's path (``jobs.recs.job.write_recommendations``:
   COPY into a staging table, index, attach as the run's partition, swap the live pointer)
   next to ``pandas.DataFrame.to_sql`` into a plain table, on the same rows.

Each figure is printed as it is measured (``label value unit``), targets next to the measured
values (a miss never changes the exit status), and a last line holds all figures as JSON.
Without ``--database-url`` it uses the embedded cluster under ``.local/bench`` (the one of
``benchmarks.daily_dag``); it writes model run ``bench-recs`` and drops the tables it created.

``python -m benchmarks.recs --users 100000 --items 10000`` (``make bench-recs USERS=... ITEMS=...``).
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import text

from benchmarks.figures import Report, record
from devenv.localdb import start_sandbox
from jobs.core.config import to_sqlalchemy_url

TARGET_VS_RECIPE = 200.0
TARGET_VS_BARE = 0.5
TARGET_PUBLISH_VS_TO_SQL = 10.0
RUN_ID = "bench-recs"
TO_SQL_TABLE = "bench_recs_to_sql"


def generate_ratings(users: int, items: int, per_user: int, seed: int) -> pd.DataFrame:
    """Sparse ratings 1..5: skewed item popularity, every item at least once, no repeated pair."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    picks = rng.choice(items, size=(users, per_user), p=popularity / popularity.sum())
    user_col = np.concatenate([np.repeat(np.arange(users), per_user), np.arange(items) % users])
    item_col = np.concatenate([picks.ravel(), np.arange(items)])
    pairs = pd.DataFrame({"u": user_col, "i": item_col}).drop_duplicates()
    taste = rng.normal(0.0, 1.0, users)[pairs["u"]] * rng.normal(0.0, 1.0, items)[pairs["i"]]
    rating = np.clip(np.rint(3.0 + taste + rng.normal(0.0, 0.7, len(pairs))), 1, 5)
    return pd.DataFrame(
        {"user_id": "u" + pairs["u"].astype(str), "item_id": "i" + pairs["i"].astype(str), "rating": rating}
    )


def recipe_top_n(algo, raw_users: list[str], n: int) -> dict[str, list[tuple[str, float]]]:
    """Surprise's FAQ recipe for these users: their anti-testset, ``algo.test``, sort per user."""
    trainset = algo.trainset
    fill = trainset.global_mean
    anti_testset = []
    for raw in raw_users:
        inner = trainset.to_inner_uid(raw)
        rated = {j for j, _ in trainset.ur[inner]}
        anti_testset += [(raw, trainset.to_raw_iid(i), fill) for i in trainset.all_items() if i not in rated]
    predictions = algo.test(anti_testset)
    top_n = defaultdict(list)
    for uid, iid, _, est, _ in predictions:
        top_n[uid].append((iid, est))
    for uid, ratings in top_n.items():
        ratings.sort(key=lambda x: x[1], reverse=True)
        top_n[uid] = ratings[:n]
    return dict(top_n)


def bare_pass(user_factors: np.ndarray, item_factors: np.ndarray, n: int, block_size: int) -> int:
    """The physical bound: float32 GEMM per block of users and ``argpartition``, nothing else."""
    users, items = user_factors.astype(np.float32), np.ascontiguousarray(item_factors.astype(np.float32).T)
    checksum = 0
    for start in range(0, len(users), block_size):
        scores = users[start : start + block_size] @ items
        checksum += int(np.argpartition(scores, scores.shape[1] - n, axis=1)[:, -1].sum())
    return checksum


def bench_top_n(args, report: Report):
    from surprise import SVD, Dataset, Reader

    from jobs.recs.topn import score_top_candidates
    from jobs.recs.train import factor_model

    print(f"model: {args.users} users x {args.items} items, {args.ratings_per_user} ratings/user", flush=True)
    started = time.perf_counter()
    ratings = generate_ratings(args.users, args.items, args.ratings_per_user, args.seed)
    trainset = Dataset.load_from_df(ratings, Reader(rating_scale=(1, 5))).build_full_trainset()
    report("ratings", len(ratings), "rows")
    report("trainset_users", trainset.n_users, "users")
    report("trainset_items", trainset.n_items, "items")
    report("data_seconds", round(time.perf_counter() - started, 2), "s")
    started = time.perf_counter()
    algo = SVD(n_factors=args.factors, n_epochs=args.epochs, random_state=args.seed)
    algo.fit(trainset)
    report(
        "svd_fit_seconds",
        round(time.perf_counter() - started, 2),
        "s",
        f"({args.factors} factors, {args.epochs} epochs)",
    )
    model = factor_model(algo)
    seen = {model.user_ids[u]: {model.item_ids[i] for i, _ in trainset.ur[u]} for u in trainset.all_users()}

    print(f"top-{args.n} for all users", flush=True)
    started = time.perf_counter()
    lists = score_top_candidates(model, seen, set(), args.n, block_size=args.block_size)
    blocked_seconds = time.perf_counter() - started
    report("blocked_seconds", round(blocked_seconds, 3), "s")
    blocked_rate = report("blocked_users_per_second", round(len(lists) / blocked_seconds, 1), "users/s")

    started = time.perf_counter()
    bare_pass(model.user_factors, model.item_factors, args.n, args.block_size)
    bare_seconds = time.perf_counter() - started
    report("bare_seconds", round(bare_seconds, 3), "s")
    bare_rate = report("bare_users_per_second", round(len(model.user_ids) / bare_seconds, 1), "users/s")

    sample = [
        model.user_ids[u]
        for u in np.random.default_rng(args.seed).choice(len(model.user_ids), args.recipe_users, replace=False)
    ]
    started = time.perf_counter()
    recipe = recipe_top_n(algo, sample, args.n)
    recipe_seconds = time.perf_counter() - started
    report("recipe_sample_users", len(sample), "users")
    report("recipe_sample_seconds", round(recipe_seconds, 3), "s")
    recipe_rate = report("recipe_users_per_second", round(len(sample) / recipe_seconds, 1), "users/s")
    report(
        "recipe_all_users_seconds_extrapolated",
        round(recipe_seconds * len(model.user_ids) / len(sample), 1),
        "s",
        "(linear in users)",
    )
    # The same model must give the same lists (estimates compared: Surprise clips them, so ties differ in order).
    agree = sum(
        np.allclose(
            sorted(np.clip([s + model.global_mean for _, s in lists[u]], 1, 5)), sorted(e for _, e in recipe[u])
        )
        for u in sample
    )
    report("recipe_lists_matching", f"{agree}/{len(sample)}", "users")

    vs_recipe = report("blocked_vs_recipe", round(blocked_rate / recipe_rate, 1), "x")
    vs_bare = report("blocked_vs_bare", round(blocked_rate / bare_rate, 3), "x")
    print(f"{'pass':<34}{'users/s':>14}{'ratio':>10}", flush=True)
    print(f"{'blocked scorer (all users)':<34}{blocked_rate:>14,.0f}{1.0:>10.2f}", flush=True)
    print(f"{'Surprise FAQ recipe (sample)':<34}{recipe_rate:>14,.0f}{recipe_rate / blocked_rate:>10.4f}", flush=True)
    print(f"{'bare GEMM + argpartition':<34}{bare_rate:>14,.0f}{bare_rate / blocked_rate:>10.2f}", flush=True)
    return model, lists, {"blocked_vs_recipe": vs_recipe, "blocked_vs_bare": vs_bare}


def bench_publish(url: str, lists: dict, report: Report) -> float:
    from jobs.core.db import apply_migrations, make_engine
    from jobs.recs.job import write_recommendations
    from jobs.recs.topn import Recommendation

    engine = make_engine(url)
    apply_migrations(engine)
    rows = [
        Recommendation(user, rank, item, round(score, 6), "svd", f"because you viewed Item {item[1:]}")
        for user, ranked in lists.items()
        for rank, (item, score) in enumerate(ranked, start=1)
    ]
    frame = pd.DataFrame([(RUN_ID, *vars(r).values()) for r in rows], columns=["run_id", *vars(rows[0])])
    print(f"publish {len(rows)} rows", flush=True)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO push.model_runs VALUES (:r, :d, 'bench', '{}', :d, :d, '{}', '{}', '/dev/null', true,"
                " 'promoted') ON CONFLICT (run_id) DO NOTHING"
            ),
            {"r": RUN_ID, "d": date(1970, 1, 1)},
        )
    started = time.perf_counter()
    write_recommendations(engine, RUN_ID, date(1970, 1, 1), rows)
    publish_rate = report(
        "publish_rows_per_second",
        round(len(rows) / (time.perf_counter() - started), 1),
        "rows/s",
        "(COPY into staging + index + swap)",
    )
    started = time.perf_counter()
    frame.to_sql(TO_SQL_TABLE, engine, schema="public", if_exists="replace", index=False)
    to_sql_rate = report(
        "to_sql_rows_per_second",
        round(len(rows) / (time.perf_counter() - started), 1),
        "rows/s",
        "(DataFrame.to_sql, plain table)",
    )
    with engine.begin() as conn:
        live = conn.execute(
            text("SELECT count(*) FROM push.recommendations WHERE run_id = :r"), {"r": RUN_ID}
        ).scalar_one()
        conn.execute(text(f"DROP TABLE public.{TO_SQL_TABLE}"))
    report("publish_rows_written", live, "rows")
    return report("publish_vs_to_sql", round(publish_rate / to_sql_rate, 2), "x")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--ratings-per-user", type=int, default=10)
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--recipe-users", type=int, default=100, help="users the FAQ recipe is timed on")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-publish", action="store_true")
    parser.add_argument("--database-url", default=None, help="run the publish part against this database")
    args = parser.parse_args(argv)
    if args.items < args.ratings_per_user + args.n or args.users < 1:
        parser.error("--items must exceed --ratings-per-user + --n, --users must be positive")
    args.recipe_users = min(args.recipe_users, args.users)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report()
    report("cpu_count", os.cpu_count(), "cpus")
    _, lists, ratios = bench_top_n(args, report)
    targets = {
        "blocked_vs_recipe": (ratios["blocked_vs_recipe"], TARGET_VS_RECIPE),
        "blocked_vs_bare": (ratios["blocked_vs_bare"], TARGET_VS_BARE),
    }
    if not args.skip_publish:
        url = to_sqlalchemy_url(args.database_url) if args.database_url else start_sandbox()
        targets["publish_vs_to_sql"] = (bench_publish(url, lists, report), TARGET_PUBLISH_VS_TO_SQL)
    for name, (measured, target) in targets.items():
        print(
            f"target {name} {measured} (target >= {target}): {'pass' if measured >= target else 'fall short'}",
            flush=True,
        )
    record(
        "bench-recs",
        {
            "figures": report.figures,
            "targets": {k: {"measured": m, "target": t, "met": m >= t} for k, (m, t) in targets.items()},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
