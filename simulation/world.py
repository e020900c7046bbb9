"""Shoppers who answer notifications, with a planted truth: the closed loop's test bed.

The shoppers, catalogue and sessions are the generator's (``simulation/synthetic.py``: planted
favourite categories and brand, a price level, active hours in the user's own time zone). The
world adds a hidden response model (``ResponseConfig``):

- an **uplift type** per user: a ``sure_thing`` buys in their own sessions whether messaged or
  not; a ``persuadable`` buys only the item of a message they clicked; a ``lost_cause`` never
  buys; a ``sleeping_dog`` never buys and is easily annoyed;
- a delivered message is **opened** with a chance that is highest inside the user's active
  hours (their own clock) and divided by ``1 + fatigue``, where fatigue adds up the user's
  earlier messages, each fading with a half-life;
- an opened message is **clicked** with a chance set by how its item fits the user's tastes
  (primary favourite category, secondary, other), and a persuadable **buys** the clicked item
  with a chance set by the same fit;
- every delivered message may **annoy** the user into opting out (all consents off in the
  next users snapshot): likely for a sleeping dog, rare for the others, both growing with
  fatigue.

Answers are events (``notification_open`` and ``notification_click`` carrying the message's
id, ``purchase``) written into the landing hour in which they happen. Users who get no message
behave by the same model without the nudge. Every draw comes from a generator seeded by the
world's seed and the user, day or message, so a run is reproducible and one user's answers do
not depend on another's.

A share of the users (``oracle_share``) never reach the product: the world plans their messages
itself from the planted truth (one a day, persuadables only, a best-fitting item at their
active hour), as the ceiling a policy could reach. Their behaviour is simulated alike and not
written to the landing zone.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from simulation.synthetic import (
    GeneratorConfig,
    PlantedTaste,
    _EventWriter,
    _pick_item,
    add_demographics,
    day_sessions,
    make_campaign_variants,
    make_campaigns,
    make_items,
    make_users,
    write_csv,
)

UPLIFT_TYPES = ("sure_thing", "persuadable", "lost_cause", "sleeping_dog")
CONSENTS = ("consent_email", "consent_sms", "consent_push", "consent_webhook")


@dataclass(frozen=True)
class ResponseConfig:
    """The planted response model; every chance is per delivered message unless it says otherwise."""

    # Shares of sure_thing, persuadable, lost_cause and sleeping_dog users.
    uplift_shares: tuple[float, float, float, float] = (0.2, 0.4, 0.3, 0.1)
    open_in_active_hours: float = 0.5  # within an hour of one of the user's active hours
    open_off_hours: float = 0.15
    open_sleeping_dog: float = 0.3  # a sleeping dog's open chance is this share of the above
    # Each earlier message adds this much fatigue, fading with the half-life.
    fatigue_per_message: float = 0.6
    fatigue_half_life_hours: float = 48.0
    # Click chance of an opened message by the fit of its item: primary, secondary, other category.
    click: tuple[float, float, float] = (0.6, 0.35, 0.08)
    # A persuadable's chance to buy a clicked item, by the same fit.
    buy_after_click: tuple[float, float, float] = (0.6, 0.35, 0.05)
    # Chance a message makes its user opt out, times (1 + fatigue).
    annoy_sleeping_dog: float = 0.15
    annoy_others: float = 0.004
    # Users the product never sees, planned by the world from the planted truth.
    oracle_share: float = 0.12
    # The click chance of an opened message is multiplied by its wording's factor (the campaign
    # variant's template, ``make_campaign_variants``): the truth an A/B/n test should find.
    wording_click: tuple[tuple[str, float], ...] = (("urgent", 1.3),)


@dataclass
class Shopper:
    user: dict
    taste: PlantedTaste
    uplift: str
    oracle: bool
    received: list[datetime] = field(default_factory=list)
    opted_out_at: datetime | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.user["timezone"])


@dataclass
class Tally:
    """What the world saw happen to one user (the truth the comparison is computed from)."""

    messages: int = 0
    opens: int = 0
    clicks: int = 0
    nudged_purchases: int = 0
    purchases: int = 0
    revenue: float = 0.0
    opted_out: bool = False


def _seed_of(*parts) -> int:
    """A stable 64-bit seed from strings and numbers (Python's hash() is salted per process)."""
    digest = hashlib.blake2b("|".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def fit(taste: PlantedTaste, category: str | None) -> int:
    """0: the user's primary favourite category, 1: the secondary, 2: any other."""
    favourites = taste.favourite_categories
    if category == favourites[0]:
        return 0
    return 1 if category in favourites[1:] else 2


def in_active_hours(taste: PlantedTaste, local_hour: int) -> bool:
    """Within an hour of one of the user's active hours, on a 24-hour clock."""
    return any(min((local_hour - h) % 24, (h - local_hour) % 24) <= 1 for h in taste.active_hours_local)


def active_moment(shopper: Shopper, day: date) -> datetime:
    """Five past the user's first active hour (their own clock) within the UTC day ``day``."""
    day_start = datetime.combine(day, datetime.min.time(), UTC)
    for offset in (-1, 0, 1):
        local = datetime.combine(day + timedelta(days=offset), datetime.min.time(), shopper.tz)
        at = (local + timedelta(hours=shopper.taste.active_hours_local[0], minutes=5)).astimezone(UTC)
        if day_start <= at < day_start + timedelta(days=1):
            return at
    raise AssertionError("every local hour occurs within a UTC day")


class World:
    """The shoppers, their catalogue and their hidden response model, day after day."""

    def __init__(self, config: GeneratorConfig, response: ResponseConfig = ResponseConfig()):
        self.config = replace(config, new_items=0, new_users=0)
        self.response = response
        rng = np.random.default_rng(config.seed)  # the generator's draws, in its order
        self.items = make_items(rng, config.items)
        users, tastes = make_users(rng, config.users, config.end_date, config.bot_share, config.taste_groups)
        add_demographics(np.random.default_rng([config.seed, 3]), users, tastes, config)
        self.item_by_id = {item["item_id"]: item for item in self.items}
        self.by_category: dict[str, list[dict]] = defaultdict(list)
        for item in self.items:
            self.by_category[item["category"]].append(item)
        kinds = np.random.default_rng([config.seed, 7]).choice(
            len(UPLIFT_TYPES), size=len(users), p=np.array(response.uplift_shares) / sum(response.uplift_shares)
        )
        oracle = np.random.default_rng([config.seed, 8]).random(len(users)) < response.oracle_share
        self.shoppers = {
            user["user_id"]: Shopper(user, taste, UPLIFT_TYPES[int(kind)], bool(is_oracle))
            for user, taste, kind, is_oracle in zip(users, tastes, kinds, oracle, strict=True)
        }
        self.tally = {user_id: Tally() for user_id in self.shoppers}
        self._pending: dict[datetime, list[str]] = defaultdict(list)  # answer lines by landing hour

    def reset_tallies(self) -> None:
        """Start counting afresh (after the warm-up, before the first messages)."""
        self.tally = {user_id: Tally() for user_id in self.shoppers}

    # --- the product's view ----------------------------------------------------------------
    def write_reference(self, landing: Path, start: date, end: date) -> None:
        """Catalogue, the product's users (consents as of now) and campaigns valid over [start, end],
        each with an A/B test of its wording."""
        users = []
        for shopper in self.shoppers.values():
            if shopper.oracle:
                continue
            row = dict(shopper.user)
            if shopper.opted_out_at is not None:
                row.update(dict.fromkeys(CONSENTS, False))
            users.append(row)
        write_csv(landing / "reference" / "items.csv", self.items)
        write_csv(landing / "reference" / "users.csv", users)
        window = {
            "valid_from": datetime.combine(start, datetime.min.time(), UTC).isoformat(),
            "valid_to": datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC).isoformat(),
        }
        campaigns = [{**c, **window} for c in make_campaigns(end)]
        write_csv(landing / "reference" / "campaigns.csv", campaigns)
        write_csv(landing / "reference" / "campaign_variants.csv", make_campaign_variants(campaigns))
        truth = landing / "truth"
        truth.mkdir(parents=True, exist_ok=True)
        (truth / "user_tastes.json").write_text(json.dumps([asdict(s.taste) for s in self.shoppers.values()]))
        (truth / "uplift.json").write_text(
            json.dumps({u: {"uplift": s.uplift, "oracle": s.oracle} for u, s in self.shoppers.items()})
        )

    def write_day(self, landing: Path, day: date) -> int:
        """The users' own sessions of ``day`` plus the answers that land in it; returns lines written."""
        day_start = datetime.combine(day, datetime.min.time(), UTC)
        day_end = day_start + timedelta(days=1)
        # Event ids stay unique across days: each day numbers its events from its own block.
        writer = _EventWriter(np.random.default_rng(0), self.config)
        writer.counter = day.toordinal() * 10_000_000
        for shopper in self.shoppers.values():
            self._own_sessions(writer, shopper, day_start, day_end)
        for landing_hour in [h for h in self._pending if h < day_end]:
            writer.lines[landing_hour].extend(self._pending.pop(landing_hour))
        return writer.write(landing, day_start, day_end)

    def _own_sessions(self, writer: _EventWriter, shopper: Shopper, day_start: datetime, day_end: datetime) -> None:
        """The generator's sessions of one user-day; only sure things keep their purchases.

        Drawn by the generator's session model from a generator of the user-day's own, without
        its malformed, duplicate and late lines (the product's handling of those is tested on
        the generator's data sets).
        """
        rng = np.random.default_rng(_seed_of(self.config.seed, "day", shopper.user["user_id"], day_start.date()))
        own = _EventWriter(rng, replace(self.config, malformed_share=0.0, duplicate_share=0.0, late_share=0.0))
        own.counter = writer.counter
        day_sessions(rng, own, shopper.taste, shopper.user, self.by_category, day_start, (day_start, day_end))
        writer.counter = own.counter
        for landing_hour, lines in own.lines.items():
            for line in lines:
                event = json.loads(line)
                if event["event_type"] == "purchase":
                    if shopper.uplift != "sure_thing":
                        continue  # only sure things buy on their own
                    self._count_purchase(shopper, event["item_id"])
                if not shopper.oracle:
                    writer.lines[landing_hour].append(line)

    def _count_purchase(self, shopper: Shopper, item_id: str, nudged: bool = False) -> None:
        tally = self.tally[shopper.user["user_id"]]
        tally.purchases += 1
        tally.revenue += float(self.item_by_id[item_id]["price"])
        tally.nudged_purchases += int(nudged)

    # --- answers -----------------------------------------------------------------------------
    def answer(self, messages: list[dict]) -> int:
        """Answer delivered messages (``idempotency_key``, ``user_id``, ``item_id``, ``scheduled_at``,
        optionally ``template``).

        In time order per user; returns how many answer events were drawn. A message reaching a
        user who already opted out is counted but never answered.
        """
        drawn = 0
        for message in sorted(messages, key=lambda m: (m["scheduled_at"], m["idempotency_key"])):
            shopper = self.shoppers.get(message["user_id"])
            if shopper is None:
                continue
            events = self._answer_one(shopper, message)
            drawn += len(events)
            if shopper.oracle:
                continue  # the product never sees the oracle's users
            for at, event in events:
                landing = at.replace(minute=0, second=0, microsecond=0)
                self._pending[landing].append(json.dumps(event))
        return drawn

    def _answer_one(self, shopper: Shopper, message: dict) -> list[tuple[datetime, dict]]:
        """The answer events to one message, each with an event id derived from the message's."""
        key = message["idempotency_key"]
        return [
            (when, {"event_id": f"r-{_seed_of(key, event['event_type']):016x}", **event, "ts": when.isoformat()})
            for when, event in self._draw_answer(shopper, message)
        ]

    def fatigue(self, shopper: Shopper, at: datetime) -> float:
        """The fatigue the user's earlier messages leave at ``at``: each adds its share, halving
        every half-life."""
        cfg = self.response
        return sum(
            cfg.fatigue_per_message * 0.5 ** ((at - earlier).total_seconds() / 3600 / cfg.fatigue_half_life_hours)
            for earlier in shopper.received
            if earlier <= at
        )

    def open_chance(self, shopper: Shopper, at: datetime) -> float:
        """The chance the user opens a message delivered at ``at``."""
        cfg = self.response
        local_hour = at.astimezone(shopper.tz).hour
        chance = cfg.open_in_active_hours if in_active_hours(shopper.taste, local_hour) else cfg.open_off_hours
        if shopper.uplift == "sleeping_dog":
            chance *= cfg.open_sleeping_dog
        return chance / (1 + self.fatigue(shopper, at))

    def _draw_answer(self, shopper: Shopper, message: dict) -> list[tuple[datetime, dict]]:
        cfg, taste = self.response, shopper.taste
        at: datetime = message["scheduled_at"]
        user_id, key = shopper.user["user_id"], message["idempotency_key"]
        tally = self.tally[user_id]
        tally.messages += 1
        fatigue, p_open = self.fatigue(shopper, at), self.open_chance(shopper, at)
        shopper.received.append(at)
        if shopper.opted_out_at is not None and shopper.opted_out_at <= at:
            return []
        rng = np.random.default_rng(_seed_of(self.config.seed, "message", key))
        item = self.item_by_id.get(message.get("item_id") or "")
        level = fit(taste, item["category"] if item else None)
        annoy = cfg.annoy_sleeping_dog if shopper.uplift == "sleeping_dog" else cfg.annoy_others
        draws = rng.random(4)
        events: list[tuple[datetime, dict]] = []
        base = {"user_id": user_id, "notification_id": key, "device": "ios", "session_id": f"n-{key[:24]}"}
        if draws[0] < min(annoy * (1 + fatigue), 1.0):
            shopper.opted_out_at = at + timedelta(minutes=5)
            tally.opted_out = True
            return events
        if item is None or draws[1] >= p_open:
            return events
        opened = at + timedelta(minutes=float(rng.uniform(1, 90)))
        tally.opens += 1
        item_fields = {"item_id": item["item_id"], "price": item["price"]}
        events.append((opened, {**base, **item_fields, "event_type": "notification_open"}))
        if draws[2] >= cfg.click[level] * dict(cfg.wording_click).get(message.get("template") or "", 1.0):
            return events
        clicked = opened + timedelta(seconds=float(rng.uniform(5, 120)))
        tally.clicks += 1
        events.append((clicked, {**base, **item_fields, "event_type": "notification_click"}))
        if shopper.uplift == "persuadable" and draws[3] < cfg.buy_after_click[level]:
            bought = clicked + timedelta(minutes=float(rng.uniform(1, 30)))
            self._count_purchase(shopper, item["item_id"], nudged=True)
            events.append((bought, {**base, **item_fields, "event_type": "purchase", "quantity": 1}))
        return events

    # --- the ceiling ---------------------------------------------------------------------------
    def oracle_messages(self, day: date) -> list[dict]:
        """The oracle's messages for ``day``: persuadables who still consent, their best-fitting
        item of their primary category at their first active hour (their own clock)."""
        messages = []
        for user_id, shopper in self.shoppers.items():
            if not shopper.oracle or shopper.uplift != "persuadable" or shopper.opted_out_at is not None:
                continue
            if not (shopper.user["consent_push"] or shopper.user["consent_email"]):
                continue
            rng = np.random.default_rng(_seed_of(self.config.seed, "oracle", user_id, day))
            pool = self.by_category[shopper.taste.favourite_categories[0]]
            item, _ = _pick_item(rng, pool, shopper.taste)
            at = active_moment(shopper, day)
            messages.append(
                {
                    "idempotency_key": f"oracle-{user_id}-{day}",
                    "user_id": user_id,
                    "item_id": item["item_id"],
                    "scheduled_at": at,
                }
            )
        return messages
