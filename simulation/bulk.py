"""Vectorised synthetic behaviour at benchmark scale: 10^6 to 10^7 events in seconds.

The per-session generator in ``synthetic`` plants tastes event by event (thousands of events
per second), which is right for recovery tests and far too slow for 10^7 events. Here every
column is drawn at once with numpy and assembled with Arrow. The shape is still that of a shop:

- events come in user-item **interactions**: the first event of one is a view, the following
  ones (about one more on average) clicks, views, favourites, carts, removals and purchases,
  seconds apart;
- **user activity** is skewed (log-normal weights), and each user has a favourite category that
  most of their interactions fall into;
- **item popularity** is skewed (Zipf-like over item ids, the same within every category);
- a share of events are searches, with a query and no item.

Items follow ``synthetic.make_items``' convention (item ``n`` is in category ``n % 8``), so the
catalogue written next to the events describes them.

``python -m simulation.bulk --events 1000000 --out DIR`` writes a clean lake (the layout
``jobs.ingest.clean`` writes and reads) plus the reference snapshots, and prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simulation.synthetic import CATEGORIES, make_campaigns, make_items, make_users, write_csv

SEARCH_SHARE = 0.08
# After the opening view: what else a user does with the item (relative weights).
FOLLOW_UPS = ("view", "click", "favorite", "add_to_cart", "remove_from_cart", "purchase")
FOLLOW_UP_WEIGHTS = np.array([0.30, 0.35, 0.08, 0.15, 0.04, 0.08])
EVENTS_PER_INTERACTION = 2.0
FAVOURITE_SHARE = 0.7
POPULARITY_EXPONENT = 1.0
ACTIVITY_SIGMA = 1.0
DEVICES = ("web", "ios", "android")
QUERIES = ("running shoes", "headphones", "green tea", "yoga mat", "novel", "lamp")
LATE_SHARE = 0.02


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded numbers (``u00042``), built in Arrow rather than per row in Python."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width=width, padding="0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _skewed(rng: np.random.Generator, count: int, size: int, exponent: float) -> np.ndarray:
    """``size`` draws from ``range(count)``, index k weighted 1 / (k + 1) ** exponent."""
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return rng.choice(count, size=size, p=weights / weights.sum())


def _interaction_lengths(rng: np.random.Generator, item_events: int) -> np.ndarray:
    """Events per interaction (1 + geometric), summing to exactly ``item_events``."""
    lengths = np.empty(0, dtype=np.int64)
    while lengths.sum() < item_events:
        more = int((item_events - lengths.sum()) / EVENTS_PER_INTERACTION * 1.2) + 1
        lengths = np.concatenate([lengths, rng.geometric(1.0 / EVENTS_PER_INTERACTION, more)])
    ends = np.cumsum(lengths)
    last = int(np.searchsorted(ends, item_events))
    lengths = lengths[: last + 1]
    lengths[-1] -= ends[last] - item_events
    return lengths


def bulk_events(
    rng: np.random.Generator,
    events: int,
    users: int,
    items: int,
    start: datetime,
    end: datetime,
    first_id: int = 0,
    item_prices: np.ndarray | None = None,
) -> pa.Table:
    """``events`` events with ``ts`` in [start, end), sorted by time; columns of the clean event schema.

    Users are ``u`` + 5 digits, items ``i`` + 5 digits, event ids ``e`` + 11 digits from
    ``first_id``. Prices are the catalogue's (``item_prices``) or drawn per item.
    """
    span = int((end - start).total_seconds())
    activity = rng.lognormal(0.0, ACTIVITY_SIGMA, users)
    activity /= activity.sum()
    favourite = rng.integers(0, len(CATEGORIES), users)
    device_of = rng.integers(0, len(DEVICES), users)
    prices = item_prices if item_prices is not None else np.round(rng.uniform(1, 500, items), 2)

    searches = rng.binomial(events, SEARCH_SHARE) if events > 1 else 0
    lengths = _interaction_lengths(rng, events - searches)
    interactions = len(lengths)
    pair_user = rng.choice(users, interactions, p=activity)
    # Same popularity tier, moved into the user's favourite category when that item exists.
    ranked = _skewed(rng, items, interactions, POPULARITY_EXPONENT)
    in_favourite = favourite[pair_user] + len(CATEGORIES) * (ranked // len(CATEGORIES))
    likes_favourite = (rng.random(interactions) < FAVOURITE_SHARE) & (in_favourite < items)
    pair_item = np.where(likes_favourite, in_favourite, ranked)
    pair_start = rng.integers(0, span, interactions)

    pair_of_event = np.repeat(np.arange(interactions), lengths)
    position = np.arange(len(pair_of_event)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    follow_up = rng.choice(len(FOLLOW_UPS), len(pair_of_event), p=FOLLOW_UP_WEIGHTS / FOLLOW_UP_WEIGHTS.sum())
    item_kind = np.where(position == 0, 0, follow_up)  # FOLLOW_UPS[0] is the opening view
    item_seconds = pair_start[pair_of_event] + position * 40 + rng.integers(0, 30, len(pair_of_event))

    kinds = np.array([*FOLLOW_UPS, "search"])
    user = np.concatenate([pair_user[pair_of_event], rng.choice(users, searches, p=activity)])
    item = np.concatenate([pair_item[pair_of_event], np.full(searches, -1)])
    kind = np.concatenate([item_kind, np.full(searches, len(FOLLOW_UPS))])
    seconds = np.minimum(np.concatenate([item_seconds, rng.integers(0, span, searches)]), span - 1)
    session = np.concatenate([pair_of_event, interactions + np.arange(searches)]) + first_id

    order = np.argsort(seconds, kind="stable")
    user, item, kind, seconds, session = user[order], item[order], kind[order], seconds[order], session[order]
    has_item = item >= 0
    carts = np.isin(kind, [FOLLOW_UPS.index("add_to_cart"), FOLLOW_UPS.index("purchase")])
    micros = np.datetime64(start.astimezone(UTC).replace(tzinfo=None), "us") + seconds.astype("timedelta64[s]")
    missing = pa.nulls(events)
    return pa.table(
        {
            "event_id": _ids("e", np.arange(first_id, first_id + events), 11),
            "user_id": _ids("u", user, 5),
            "event_type": pa.array(kinds[kind]),
            "item_id": pc.if_else(pa.array(has_item), _ids("i", np.maximum(item, 0), 5), pa.scalar(None, pa.string())),
            "query": pa.array(np.where(has_item, None, np.array(QUERIES, dtype=object)[session % len(QUERIES)])),
            "price": pa.array(np.where(has_item, prices[np.maximum(item, 0)], np.nan), mask=~has_item),
            "quantity": pa.array(np.ones(events, dtype=np.int64), mask=~carts),
            "session_id": _ids("s", session, 1),
            "device": pa.array(np.array(DEVICES)[device_of[user]]),
            "ts": pa.array(micros, pa.timestamp("us", tz="UTC")),
            "dwell_ms": missing.cast(pa.int64()),
            "notification_id": missing.cast(pa.string()),
        }
    )


def landing_hours(rng: np.random.Generator, ts: pa.Array, last_hour: datetime, late_share: float) -> np.ndarray:
    """Landing hour of each event: its own hour, or 1-3 hours later for a ``late_share`` (never after ``last_hour``)."""
    hour = ts.to_numpy(zero_copy_only=False).astype("datetime64[h]")
    delay = np.where(rng.random(len(hour)) < late_share, rng.integers(1, 4, len(hour)), 0)
    return np.minimum(hour + delay.astype("timedelta64[h]"), np.datetime64(last_hour.replace(tzinfo=None), "h"))


def write_clean_lake(table: pa.Table, landing: np.ndarray, clean_dir: Path) -> int:
    """One Parquet file per (event hour, landing hour) leaf, in the cleaner's partition layout; returns leaves."""
    from jobs.ingest.lake import leaf_path

    event_hour = table.column("ts").to_numpy(zero_copy_only=False).astype("datetime64[h]")
    keys = np.stack([event_hour.astype(np.int64), landing.astype(np.int64)], axis=1)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    leaves, first = np.unique(keys[order], axis=0, return_index=True)
    bounds = [*first.tolist(), len(order)]
    for n, (event_h, landing_h) in enumerate(leaves):
        event_at = datetime.fromtimestamp(int(event_h) * 3600, UTC)
        landing_at = datetime.fromtimestamp(int(landing_h) * 3600, UTC)
        folder = leaf_path(clean_dir, event_at.date(), event_at.hour, landing_at.date(), landing_at.hour)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.take(order[bounds[n] : bounds[n + 1]]), folder / "part-00000.parquet")
    return len(leaves)


def write_bench_data(
    landing_dir: Path, clean_dir: Path, events: int, users: int, items: int, end: datetime, days: int, seed: int
) -> dict:
    """Reference snapshots (users, items, campaigns) and ``days`` of clean events ending at ``end``."""
    rng = np.random.default_rng(seed)
    catalogue = make_items(rng, items)
    people, _ = make_users(rng, users, (end - timedelta(days=1)).date(), bot_share=0.0)
    write_csv(landing_dir / "reference" / "items.csv", catalogue)
    write_csv(landing_dir / "reference" / "users.csv", people)
    write_csv(landing_dir / "reference" / "campaigns.csv", make_campaigns((end - timedelta(days=1)).date()))
    prices = np.array([item["price"] for item in catalogue])
    table = bulk_events(rng, events, users, items, end - timedelta(days=days), end, item_prices=prices)
    landing = landing_hours(rng, table.column("ts"), end - timedelta(hours=1), LATE_SHARE)
    leaves = write_clean_lake(table, landing, clean_dir)
    has_item = pc.is_valid(table.column("item_id"))
    with_item = table.filter(has_item)
    pairs = pc.binary_join_element_wise(with_item.column("user_id"), with_item.column("item_id"), "|")
    return {
        "events": table.num_rows,
        "users": users,
        "items": items,
        "days": days,
        "leaves": leaves,
        "item_events": with_item.num_rows,
        "active_users": len(pc.unique(with_item.column("user_id"))),
        "interacted_pairs": len(pc.unique(pairs)),
        "by_type": {
            str(row["values"]): int(row["counts"]) for row in pc.value_counts(table.column("event_type")).to_pylist()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--end", type=date.fromisoformat, default=date(2026, 11, 25), help="window end (exclusive)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--landing-dir", type=Path, required=True)
    parser.add_argument("--clean-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.monotonic()
    end = datetime.combine(args.end, datetime.min.time(), UTC)
    summary = write_bench_data(
        args.landing_dir, args.clean_dir, args.events, args.users, args.items, end, args.days, args.seed
    )
    print(json.dumps({**summary, "seconds": round(time.monotonic() - started, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
