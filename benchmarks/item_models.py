"""Benchmark: seconds and peak memory of fitting each model family at 10^4 and 10^5 items.

For each catalogue size (``--items``), implicit positives are drawn with skewed (Zipf-like)
item popularity and user activity: users = items x ``--users-per-item``, about
``--per-user`` positives each. Each family is fitted in a child process of its own on the same
pairs, so its peak resident memory (``ru_maxrss`` of that child, which includes the Python
interpreter and the data, about 150-300 MB) is its own:

- ``ease``: the dense closed form (refused above ``PUSH_EASE_MAX_ITEMS``, 10,000 by default:
  it is measured here with the limit lifted up to ``--ease-max`` items);
- ``item_knn``: the in-memory blocked co-occurrence model;
- ``svd``: Surprise SVD with one sampled negative per positive (the default spec).

Every figure is printed as it is measured; the last line is one JSON object. The yardstick in
the same run is ``gram``: the bare sparse product X'X of the users x items matrix (SciPy), the
core every item model needs; each family's seconds are also given as a ratio to it, and its
memory as the excess over the yardstick child's.

``python -m benchmarks.item_models --items 10000 100000`` (``make bench-item-models``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import numpy as np
import pandas as pd

from benchmarks.figures import Report, record


def synthetic_positives(items: int, users: int, per_user: int, seed: int) -> pd.DataFrame:
    """Skewed positives: item popularity and user activity both heavy-tailed, one row per pair."""
    rng = np.random.default_rng(seed)
    activity = np.minimum(rng.zipf(1.8, size=users), 20 * per_user)
    counts = np.maximum(1, np.round(activity * per_user / activity.mean())).astype(int)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    user_index = np.repeat(np.arange(users), counts)
    item_index = rng.choice(items, size=len(user_index), p=popularity)
    frame = pd.DataFrame({"u": user_index, "i": item_index}).drop_duplicates()
    return pd.DataFrame(
        {
            "user_id": "u" + frame["u"].astype(str),
            "item_id": "i" + frame["i"].astype(str),
            "rating": rng.uniform(1.0, 5.0, size=len(frame)),
        }
    )


def _fit(family: str, ratings: pd.DataFrame, queue) -> None:
    started = time.perf_counter()
    if family == "ease":
        from jobs.recs.item_models import EaseParams, fit_ease

        fit_ease(ratings, EaseParams(max_items=10**9))
    elif family == "item_knn":
        from jobs.recs.item_models import ItemKnnParams, fit_item_knn

        fit_item_knn(None, ratings, ItemKnnParams())
    elif family == "svd":
        from jobs.recs.ratings import with_sampled_negatives
        from jobs.recs.train import SvdParams, train_svd

        params = SvdParams()
        catalogue = sorted(ratings["item_id"].unique())
        train_svd(with_sampled_negatives(ratings, catalogue, params.negative_ratio, params.random_state), params)
    elif family == "gram":
        from jobs.recs.item_models import _positive_ids, interaction_matrix

        users, items = _positive_ids(ratings)
        matrix = interaction_matrix(ratings, users, items)
        (matrix.T @ matrix).nnz  # noqa: B018 - the product is the work measured
    else:
        raise ValueError(family)
    seconds = time.perf_counter() - started
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))


def measure(family: str, ratings: pd.DataFrame) -> tuple[float, int]:
    """Seconds and peak RSS (MB) of fitting ``family`` on ``ratings`` in a fresh child process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_fit, args=(family, ratings, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--users-per-item", type=float, default=2.0)
    parser.add_argument("--per-user", type=int, default=15)
    parser.add_argument("--ease-max", type=int, default=10_000, help="largest catalogue EASE is measured at")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    report = Report()
    for items in args.items:
        ratings = synthetic_positives(items, int(items * args.users_per_item), args.per_user, args.seed)
        report(f"pairs_{items}", len(ratings), "pairs", f"({ratings['user_id'].nunique()} users)")
        gram_seconds, gram_mb = measure("gram", ratings)
        report(f"gram_{items}_seconds", round(gram_seconds, 3), "s", "(yardstick: sparse X'X)")
        report(f"gram_{items}_peak_mb", gram_mb, "MB")
        families = ["item_knn", "svd"] + (["ease"] if items <= args.ease_max else [])
        for family in families:
            seconds, peak = measure(family, ratings)
            report(f"{family}_{items}_seconds", round(seconds, 2), "s")
            report(f"{family}_{items}_over_gram", round(seconds / max(gram_seconds, 1e-9), 1), "x")
            report(f"{family}_{items}_peak_mb", peak, "MB", f"({peak - gram_mb:+} MB over the yardstick)")
        if items > args.ease_max:
            report(f"ease_{items}_dense_gb", round(3 * 8 * items**2 / 1e9, 1), "GB", "(three dense copies: not run)")
    record("bench-item-models", report.figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
