"""Rating data for the recommendation tests: grouped tastes, and rating files on disk."""

from __future__ import annotations

import numpy as np
import pandas as pd


def grouped_interactions(users=60, items=30, groups=3, per_user=8, seed=0) -> pd.DataFrame:
    """Each user mostly takes items of their own group, with a last_ts to split on."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        own = [item for item in range(items) if item % groups == user % groups]
        others = [item for item in range(items) if item % groups != user % groups]
        chosen = list(rng.choice(own, size=per_user - 2, replace=False)) + list(rng.choice(others, size=2))
        for n, item in enumerate(chosen):
            rows.append((f"u{user:03d}", f"i{item:03d}", float(rng.integers(1, 6)), n))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "step"]).drop_duplicates(["user_id", "item_id"])
    return frame.assign(last_ts=pd.Timestamp("2026-11-01") + pd.to_timedelta(frame["step"], unit="h"))


def write_ratings(path, sep="\t", users=200, items=150, seed=0, header=False):
    """Users rate items they like more often (missing not at random), as in real rating data."""
    rng = np.random.default_rng(seed)
    taste, traits = rng.normal(size=(users, 3)), rng.normal(size=(items, 3))
    lines = ["user\titem\trating\ttimestamp".replace("\t", sep)] if header else []
    for user in range(users):
        affinity = traits @ taste[user]
        chosen = rng.choice(
            items, size=int(rng.integers(15, 40)), replace=False, p=np.exp(affinity) / np.exp(affinity).sum()
        )
        for n, item in enumerate(chosen):
            rating = int(np.clip(np.round(3 + affinity[item] / 1.5 + rng.normal(scale=0.5)), 1, 5))
            lines.append(sep.join([str(user + 1), str(item + 1), str(rating), str(881250949 + 1000 * n + user)]))
    path.write_text("\n".join(lines) + "\n")
    return path
