"""Deterministic synthetic e-commerce data with planted truth.

Users get planted tastes (a primary and a secondary favourite category, a favourite brand, a
price level, active hours in their own timezone); sessions follow a view -> click -> cart -> purchase funnel;
there are searches, bots (bursts of views), re-delivered duplicates, late events and a small
share of malformed lines. The planted tastes are written next to the data so that tests can
measure whether profiles and recommendations recover them.

With ``taste_groups`` > 0 users are drawn from that many planted groups instead of having
independent tastes: a group fixes the favourite categories (primary and secondary) and centres
the price level, so segmentation quality can be measured against the planted group
(``truth/user_tastes.json`` holds each user's ``group``).

Layout written under ``--out``::

    events/date=YYYY-MM-DD/hour=HH/events.jsonl   behaviour logs by landing hour
    reference/users.csv  reference/items.csv  reference/campaigns.csv
    truth/user_tastes.json

CLI: ``python -m simulation.synthetic --users 500 --items 300 --days 7 --seed 42 --out DIR``.
"""

from __future__ import annotations

import argparse
import csv
import json
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

CATEGORIES = ("electronics", "shoes", "books", "beauty", "home", "toys", "sports", "grocery")
CATEGORY_BASE_PRICE = {
    "electronics": 300.0,
    "shoes": 80.0,
    "books": 20.0,
    "beauty": 35.0,
    "home": 60.0,
    "toys": 30.0,
    "sports": 70.0,
    "grocery": 8.0,
}
NOUNS = {
    "electronics": "headphones",
    "shoes": "running shoes",
    "books": "novel",
    "beauty": "serum",
    "home": "lamp",
    "toys": "puzzle",
    "sports": "yoga mat",
    "grocery": "green tea",
}
TIMEZONES = ("Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC", "Asia/Tokyo")
DEVICES = ("ios", "android", "web")


@dataclass(frozen=True)
class PlantedTaste:
    user_id: str
    favourite_categories: list[str]
    favourite_brand: str
    price_level: float
    active_hours_local: list[int]
    is_bot: bool
    # Planted group (``GeneratorConfig.taste_groups`` > 0), else None.
    group: int | None = None


@dataclass(frozen=True)
class GeneratorConfig:
    users: int = 500
    items: int = 300
    days: int = 7
    seed: int = 42
    end_date: date = date(2026, 11, 24)
    sessions_per_day: float = 0.8
    malformed_share: float = 0.003
    duplicate_share: float = 0.005
    late_share: float = 0.01
    bot_share: float = 0.01
    # Share of a user's in-taste sessions spent in the primary (first) favourite category.
    primary_share: float = 0.85
    # Planted groups of users sharing favourite categories and price band (0 = independent tastes).
    taste_groups: int = 0
    # Items added to the catalogue on the last day, with no event yet (new arrivals); listed in
    # ``truth/new_items.json``. Their categories and brands are those the planted tastes favour.
    new_items: int = 0
    # Users who signed up on the last day and have no event yet (new users), with demographics
    # and planted tastes like everyone else's.
    new_users: int = 0
    # Chance that a user's demographics follow their primary favourite category (else random).
    demographic_signal: float = 0.7
    # How much longer a user looks at an item that suits them: a view's dwell is uniform in
    # 0.5..8 s times exp(dwell_signal x appeal), appeal in 0..1 being how well the item fits the
    # user's price level and brand (0 = dwell says nothing).
    dwell_signal: float = 2.5
    # Also write reference/campaign_variants.csv: an A/B test on every campaign (make_campaign_variants).
    campaign_variants: bool = False


def make_items(rng: np.random.Generator, count: int) -> list[dict]:
    items = []
    for n in range(count):
        category = CATEGORIES[n % len(CATEGORIES)]
        brand = f"{category[:3]}-brand-{int(rng.integers(0, 5))}"
        price = round(float(CATEGORY_BASE_PRICE[category] * rng.lognormal(0.0, 0.5)), 2)
        items.append(
            {
                "item_id": f"i{n:05d}",
                "title": f"{brand.title()} {NOUNS[category]} {n}",
                "category": category,
                "brand": brand,
                "price": price,
                "in_stock": bool(rng.random() > 0.05),
            }
        )
    return items


AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55+"]
REGIONS = ["north", "south", "east", "west", "centre"]


def add_demographics(rng: np.random.Generator, users: list[dict], tastes: list[PlantedTaste], config) -> None:
    """Age band, gender, region and profiling consent; they hint at the primary favourite category."""
    for user, taste in zip(users, tastes, strict=True):
        primary = CATEGORIES.index(taste.favourite_categories[0])
        if rng.random() < config.demographic_signal:
            age, gender, region = AGE_BANDS[primary % 5], "fm"[primary % 2], REGIONS[(primary * 3 + primary // 5) % 5]
        else:
            age, gender, region = AGE_BANDS[rng.integers(5)], "fm"[rng.integers(2)], REGIONS[rng.integers(5)]
        user.update(age_band=age, gender=gender, region=region, consent_profiling=bool(rng.random() < 0.8))


def make_new_items(config: GeneratorConfig, first: int) -> list[dict]:
    """New arrivals: in stock, categories in turn, a brand the category already has, no events.

    Drawn from a generator of their own, so a data set with new items has exactly the events
    and the other items of the same data set without them.
    """
    rng = np.random.default_rng([config.seed, 1])
    arrivals = []
    for n in range(config.new_items):
        category = CATEGORIES[n % len(CATEGORIES)]
        brand = f"{category[:3]}-brand-{int(rng.integers(0, 5))}"
        arrivals.append(
            {
                "item_id": f"i{first + n:05d}",
                "title": f"New {brand.title()} {NOUNS[category]} {first + n}",
                "category": category,
                "brand": brand,
                "price": round(float(CATEGORY_BASE_PRICE[category] * rng.lognormal(0.0, 0.5)), 2),
                "in_stock": True,
            }
        )
    return arrivals


def group_favourites(group: int) -> list[str]:
    """Favourite categories of a planted group: distinct primaries, disjoint pairs for up to 4 groups."""
    return [CATEGORIES[group % len(CATEGORIES)], CATEGORIES[(group + len(CATEGORIES) // 2) % len(CATEGORIES)]]


def group_price_level(group: int, groups: int) -> float:
    """Centre of a planted group's price level, spread evenly over [0.2, 0.8]."""
    return 0.2 + 0.6 * group / max(groups - 1, 1)


def make_users(
    rng: np.random.Generator, count: int, end_date: date, bot_share: float, taste_groups: int = 0
) -> tuple[list[dict], list[PlantedTaste]]:
    if not 0 <= taste_groups <= len(CATEGORIES):
        raise ValueError(f"taste_groups must be between 0 and {len(CATEGORIES)}, got {taste_groups}")
    users, tastes = [], []
    for n in range(count):
        user_id = f"u{n:05d}"
        tz = TIMEZONES[int(rng.integers(0, len(TIMEZONES)))]
        group = int(rng.integers(0, taste_groups)) if taste_groups else None
        if group is None:
            favourites = [str(c) for c in rng.choice(CATEGORIES, size=2, replace=False)]
        else:
            favourites = group_favourites(group)
        peak = int(rng.integers(7, 23))
        users.append(
            {
                "user_id": user_id,
                "email": f"{user_id}@example.com",
                "phone": f"+1555{n:07d}",
                "push_token": uuid.UUID(int=int(rng.integers(0, 2**63))).hex,
                "timezone": tz,
                "locale": "zh-CN" if tz == "Asia/Shanghai" else "en",
                "signup_date": (end_date - timedelta(days=int(rng.integers(10, 400)))).isoformat(),
                "consent_email": bool(rng.random() < 0.85),
                "consent_sms": bool(rng.random() < 0.4),
                "consent_push": bool(rng.random() < 0.7),
                "consent_webhook": False,
            }
        )
        tastes.append(
            PlantedTaste(
                user_id=user_id,
                favourite_categories=favourites,
                favourite_brand=f"{favourites[0][:3]}-brand-{int(rng.integers(0, 5))}",
                price_level=float(
                    rng.uniform(0.1, 0.9)
                    if group is None
                    else group_price_level(group, taste_groups) + rng.uniform(-0.1, 0.1)
                ),
                active_hours_local=[peak, (peak + 1) % 24],
                is_bot=bool(rng.random() < bot_share),
                group=group,
            )
        )
    return users, tastes


# A campaign with an audience rather than a taste rule: consenting users of one region who
# showed interest in shoes or beauty in the last 24 hours (docs/notification-policy.md).
AUDIENCE_CAMPAIGN = {
    "campaign_id": "c-north-comeback",
    "name": "Come back, north",
    "discount_text": "free delivery",
    "audience": json.dumps({"regions": ["north"], "intent_categories": ["shoes", "beauty"], "intent_hours": 24}),
}


def make_campaigns(end_date: date) -> list[dict]:
    start = datetime.combine(end_date - timedelta(days=3), datetime.min.time(), UTC)
    window = {
        "valid_from": start.isoformat(),
        "valid_to": (start + timedelta(days=7)).isoformat(),
        "channels": "{email,push}",
        "transactional": False,
    }
    by_taste = [
        {
            "campaign_id": f"c-{category}",
            "name": f"{category.title()} week",
            "target_category": category,
            "discount_text": "20% off",
            "priority": priority,
            "audience": "",
            **window,
        }
        for priority, category in enumerate(("shoes", "electronics", "beauty"))
    ]
    return [*by_taste, {**AUDIENCE_CAMPAIGN, "target_category": "", "priority": 5, **window}]


def make_campaign_variants(campaigns: list[dict]) -> list[dict]:
    """An A/B test on every campaign: variant a (control) as it is, variant b worded by the
    'urgent' template (jobs/notify/templates/*/variants/urgent), equal weights."""
    return [
        {"campaign_id": c["campaign_id"], "variant": variant, "weight": 1, "template": template, "control": control}
        for c in campaigns
        for variant, template, control in (("a", "", "true"), ("b", "urgent", "false"))
    ]


class _EventWriter:
    """Collects events by landing hour, applying duplicates, late arrival and malformed lines."""

    def __init__(self, rng: np.random.Generator, config: GeneratorConfig):
        self.rng = rng
        self.config = config
        self.lines: dict[datetime, list[str]] = defaultdict(list)
        self.counter = 0

    def add(self, event: dict, at_utc: datetime, tz: ZoneInfo) -> None:
        self.counter += 1
        local = at_utc.astimezone(tz) if self.rng.random() < 0.3 else at_utc
        event = {"event_id": f"e{self.counter:09d}", **event, "ts": local.isoformat(timespec="milliseconds")}
        landing = at_utc.replace(minute=0, second=0, microsecond=0)
        roll = self.rng.random()
        if roll < self.config.late_share:
            landing += timedelta(hours=1)
        line = json.dumps(event, ensure_ascii=False)
        if self.rng.random() < self.config.malformed_share:
            line = self._corrupt(event, line)
        self.lines[landing].append(line)
        if self.rng.random() < self.config.duplicate_share:
            self.lines[landing + timedelta(hours=int(self.rng.integers(0, 2)))].append(line)

    def _corrupt(self, event: dict, line: str) -> str:
        kind = int(self.rng.integers(0, 5))
        if kind == 0:
            return line[: max(1, len(line) // 2)]  # truncated JSON
        broken = dict(event)
        if kind == 1:
            broken.pop("user_id")
        elif kind == 2:
            broken["event_type"] = "teleport"
        elif kind == 3:
            broken["price"] = -5.0
        else:
            broken["ts"] = "yesterday-ish"
        return json.dumps(broken, ensure_ascii=False)

    def write(self, out: Path, window_start: datetime, window_end: datetime) -> int:
        written = 0
        for landing in sorted(self.lines):
            if not window_start <= landing < window_end:
                continue  # late arrivals past the generated window are not delivered yet
            folder = out / "events" / f"date={landing:%Y-%m-%d}" / f"hour={landing:%H}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "events.jsonl").write_text("\n".join(self.lines[landing]) + "\n", encoding="utf-8")
            written += len(self.lines[landing])
        return written


def _pick_item(rng: np.random.Generator, pool: list[dict], taste: PlantedTaste) -> tuple[dict, float]:
    """An item of ``pool`` drawn by its appeal to ``taste``, and that appeal relative to the best (0..1]."""
    prices = np.array([item["price"] for item in pool])
    target = np.quantile(prices, taste.price_level)
    closeness = np.exp(-np.abs(np.log(prices + 1) - np.log(target + 1)) * 3)
    brand_boost = np.array([2.0 if item["brand"] == taste.favourite_brand else 1.0 for item in pool])
    weights = closeness * brand_boost
    picked = int(rng.choice(len(pool), p=weights / weights.sum()))
    return pool[picked], float(weights[picked] / weights.max())


def _session(rng, writer, taste, user, by_category, start, tz) -> None:
    at = start
    session_id = f"s{writer.counter:09d}"
    device = DEVICES[int(rng.integers(0, len(DEVICES)))]
    category = (
        taste.favourite_categories[0 if rng.random() < writer.config.primary_share else 1]
        if rng.random() < 0.85
        else CATEGORIES[int(rng.integers(0, len(CATEGORIES)))]
    )
    base = {"user_id": user["user_id"], "session_id": session_id, "device": device}
    if rng.random() < 0.3:
        writer.add({**base, "event_type": "search", "query": NOUNS[category]}, at, tz)
    for _ in range(int(rng.integers(2, 7))):
        at += timedelta(seconds=int(rng.integers(5, 120)))
        item, appeal = _pick_item(rng, by_category[category], taste)
        item_fields = {"item_id": item["item_id"], "price": item["price"]}
        # The same draw as before dwell carried a signal (so every other event stays as it was),
        # scaled by the item's appeal: 0.5..8 s at appeal 0, about 12x longer at appeal 1.
        spread = (int(rng.integers(500, 60000)) - 500) / 59500
        dwell = (500 + 7500 * spread) * np.exp(writer.config.dwell_signal * appeal)
        writer.add({**base, **item_fields, "event_type": "view", "dwell_ms": int(dwell)}, at, tz)
        if rng.random() < 0.35:
            writer.add({**base, **item_fields, "event_type": "click"}, at + timedelta(seconds=2), tz)
        if rng.random() < 0.05:
            writer.add({**base, **item_fields, "event_type": "favorite"}, at + timedelta(seconds=3), tz)
        if rng.random() < 0.15:
            at += timedelta(seconds=int(rng.integers(10, 60)))
            writer.add({**base, **item_fields, "event_type": "add_to_cart", "quantity": 1}, at, tz)
            if rng.random() < 0.45:
                at += timedelta(seconds=int(rng.integers(30, 300)))
                writer.add({**base, **item_fields, "event_type": "purchase", "quantity": 1}, at, tz)


def day_sessions(rng, writer, taste, user, by_category, day_start: datetime, window: tuple[datetime, datetime]) -> None:
    """One user's sessions of the UTC day ``day_start``: a Poisson number of them, most at one of
    the user's active hours (their own clock), kept when they start inside ``window`` (and at
    least half an hour before its end)."""
    tz = ZoneInfo(user["timezone"])
    for _ in range(int(rng.poisson(writer.config.sessions_per_day))):
        local_day = day_start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
        hour = taste.active_hours_local[int(rng.integers(0, 2))] if rng.random() < 0.8 else int(rng.integers(0, 24))
        start = (local_day + timedelta(hours=hour, minutes=int(rng.integers(0, 50)))).astimezone(UTC)
        if window[0] <= start < window[1] - timedelta(minutes=30):
            _session(rng, writer, taste, user, by_category, start, tz)


def generate(config: GeneratorConfig, out: Path) -> dict:
    """Write a full data set under ``out`` and return a summary of what was written."""
    rng = np.random.default_rng(config.seed)
    items = make_items(rng, config.items)
    users, tastes = make_users(rng, config.users, config.end_date, config.bot_share, config.taste_groups)
    # Drawn from generators of their own, so that the events and the other users stay the same.
    newcomers, newcomer_tastes = make_users(
        np.random.default_rng([config.seed, 2]), config.new_users, config.end_date, 0.0, config.taste_groups
    )
    for n, user in enumerate(newcomers):
        user.update(user_id=f"n{n:05d}", email=f"n{n:05d}@example.com", phone=f"+1556{n:07d}")
        user["signup_date"] = config.end_date.isoformat()
        newcomer_tastes[n] = replace(newcomer_tastes[n], user_id=user["user_id"])
    add_demographics(np.random.default_rng([config.seed, 3]), users + newcomers, tastes + newcomer_tastes, config)
    by_category: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        by_category[item["category"]].append(item)
    window_end = datetime.combine(config.end_date + timedelta(days=1), datetime.min.time(), UTC)
    window_start = window_end - timedelta(days=config.days)
    writer = _EventWriter(rng, config)
    for user, taste in zip(users, tastes, strict=True):
        tz = ZoneInfo(user["timezone"])
        for day in range(config.days):
            day_start = window_start + timedelta(days=day)
            if taste.is_bot:
                burst = day_start + timedelta(hours=int(rng.integers(0, 24)))
                for n in range(40):
                    item = items[int(rng.integers(0, len(items)))]
                    writer.add(
                        {
                            "user_id": user["user_id"],
                            "event_type": "view",
                            "item_id": item["item_id"],
                            "price": item["price"],
                            "session_id": f"bot-{user['user_id']}",
                            "device": "web",
                        },
                        burst + timedelta(milliseconds=300 * n),
                        tz,
                    )
                continue
            day_sessions(rng, writer, taste, user, by_category, day_start, (window_start, window_end))
    events = writer.write(out, window_start, window_end)
    arrivals = make_new_items(config, len(items))
    write_csv(out / "reference" / "items.csv", items + arrivals)
    write_csv(out / "reference" / "users.csv", users + newcomers)
    campaigns = make_campaigns(config.end_date)
    write_csv(out / "reference" / "campaigns.csv", campaigns)
    if config.campaign_variants:
        write_csv(out / "reference" / "campaign_variants.csv", make_campaign_variants(campaigns))
    truth = out / "truth" / "user_tastes.json"
    truth.parent.mkdir(parents=True, exist_ok=True)
    truth.write_text(json.dumps([asdict(t) for t in tastes + newcomer_tastes], indent=1))
    (truth.parent / "new_items.json").write_text(json.dumps(arrivals, indent=1))
    return {
        "users": len(users),
        "items": len(items),
        "event_lines": events,
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
    }


def read_tastes(landing: Path) -> dict[str, dict]:
    """The planted tastes ``generate`` wrote, by user id."""
    return {t["user_id"]: t for t in json.loads((landing / "truth" / "user_tastes.json").read_text())}


def read_new_items(landing: Path) -> dict[str, dict]:
    """The new arrivals ``generate`` wrote, by item id."""
    return {item["item_id"]: item for item in json.loads((landing / "truth" / "new_items.json").read_text())}


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def add_scale_arguments(parser: argparse.ArgumentParser, users: int = 500, items: int = 300, days: int = 7) -> None:
    """The data-set size options shared by the generator, the demo and the benchmark."""
    parser.add_argument("--users", type=int, default=users)
    parser.add_argument("--items", type=int, default=items)
    parser.add_argument("--days", type=int, default=days)
    parser.add_argument("--seed", type=int, default=42)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scale_arguments(parser)
    parser.add_argument(
        "--end-date",
        type=date.fromisoformat,
        default=GeneratorConfig.end_date,
        help="last generated day (UTC), default %(default)s",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    config = GeneratorConfig(users=args.users, items=args.items, days=args.days, seed=args.seed, end_date=args.end_date)
    print(json.dumps(generate(config, args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
