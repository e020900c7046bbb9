"""One shopper's session after the daily training: what the hourly fold-in should react to."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Session:
    user_id: str
    category: str  # the category browsed, outside the user's planted favourites
    browsed: list[str]
    carted: str
    bought: str
    path: Path


def write_session(landing: Path, user_id: str, listed: list[str], favourites: list[str], start: datetime) -> Session:
    """Two views of each of five items of a category the user does not favour, a cart, a purchase.

    The purchase is the first item of ``listed`` (the user's current list), so a refresh must
    drop it; the events go to ``start``'s landing hour, a few minutes apart.
    """
    items = pd.read_csv(landing / "reference" / "items.csv", dtype={"item_id": str})
    category = next(c for c in sorted(set(items["category"])) if c not in favourites)
    pool = [i for i in items.loc[items["category"] == category, "item_id"] if i not in listed][:6]
    price_of = dict(zip(items["item_id"], items["price"], strict=True))
    steps = [("view", item) for item in pool[:5] for _ in range(2)] + [
        ("add_to_cart", pool[5]),
        ("purchase", listed[0]),
    ]
    lines = [
        json.dumps(
            {
                "event_id": f"session-{user_id}-{n}",
                "user_id": user_id,
                "event_type": kind,
                "item_id": item,
                "price": float(price_of[item]),
                "session_id": f"session-{user_id}",
                "device": "app",
                "ts": (start + timedelta(minutes=2 * n + 1)).isoformat(),
            }
        )
        for n, (kind, item) in enumerate(steps)
    ]
    folder = landing / "events" / f"date={start:%Y-%m-%d}" / f"hour={start:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"session-{user_id}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Session(user_id, category, pool[:5], pool[5], listed[0], path)
