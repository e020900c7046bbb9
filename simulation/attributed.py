"""A rating world with a planted truth in its attributes: genres drive tastes, demographics hint them.

Items have one to three genres, a brand (mostly within one genre), a year and a price. Each user
belongs to a taste group (a few favourite genres); their age band, gender and region follow the
group loosely, so demographics say something but not everything. Interactions are drawn with
probability proportional to an item's appeal times ``exp(strength x genre match)``, in time
order; after ``shift_at`` (a share of each user's history) some users move to another group's
genres: the interest shift a fold-in should follow.

Used by the cold-start tests and benchmark: new items are scored from their genres and brand,
new users from their demographics, shifted users from their latest events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

GENRES = [f"g{n:02d}" for n in range(12)]
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55+"]
REGIONS = ["north", "south", "east", "west", "centre"]


@dataclass(frozen=True)
class WorldConfig:
    users: int = 600
    items: int = 400
    groups: int = 6
    events_per_user: tuple[int, int] = (20, 60)
    strength: float = 2.5
    # Chance that a user's demographics are drawn from their group's profile rather than at random.
    demographic_signal: float = 0.6
    shift_share: float = 0.3
    shift_at: float = 0.7
    seed: int = 7


@dataclass
class World:
    ratings: pd.DataFrame  # user_id, item_id, rating, timestamp
    items: pd.DataFrame  # item_id, genres, brand, year, price
    users: pd.DataFrame  # user_id, age_band, gender, region
    groups: np.ndarray  # each user's taste group


def make_world(config: WorldConfig = WorldConfig()) -> World:
    rng = np.random.default_rng(config.seed)
    n_genres = len(GENRES)
    favourites = [rng.choice(n_genres, size=3, replace=False) for _ in range(config.groups)]
    item_genres = np.zeros((config.items, n_genres))
    brands, years, prices, genre_text = [], [], [], []
    for item in range(config.items):
        main = int(rng.integers(n_genres))
        extra = rng.choice(n_genres, size=int(rng.integers(0, 3)), replace=False)
        chosen = sorted({main, *extra.tolist()})
        item_genres[item, chosen] = 1.0
        genre_text.append("|".join(GENRES[g] for g in chosen))
        brands.append(
            f"b{main:02d}-{int(rng.integers(3))}" if rng.random() < 0.8 else f"b{int(rng.integers(40)):02d}-x"
        )
        years.append(int(rng.integers(1980, 2027)))
        prices.append(round(float(rng.lognormal(3.5, 0.6)), 2))
    appeal = rng.lognormal(0.0, 0.8, size=config.items)

    groups = rng.integers(config.groups, size=config.users)
    profiles = [
        (AGE_BANDS[g % len(AGE_BANDS)], "f" if g % 2 else "m", REGIONS[(g * 2) % len(REGIONS)])
        for g in range(config.groups)
    ]
    user_rows, rating_rows = [], []
    for user in range(config.users):
        group = int(groups[user])
        if rng.random() < config.demographic_signal:
            age, gender, region = profiles[group]
        else:
            age, gender, region = rng.choice(AGE_BANDS), rng.choice(["f", "m"]), rng.choice(REGIONS)
        user_id = f"u{user:04d}"
        user_rows.append((user_id, age, gender, region))
        count = int(rng.integers(*config.events_per_user))
        shifted = rng.random() < config.shift_share
        later_group = int(rng.integers(config.groups)) if shifted else group
        taken: set[int] = set()
        for step in range(count):
            current = later_group if step >= config.shift_at * count else group
            match = item_genres[:, favourites[current]].sum(axis=1)
            weights = appeal * np.exp(config.strength * match)
            weights[list(taken)] = 0.0
            item = int(rng.choice(config.items, p=weights / weights.sum()))
            taken.add(item)
            rating = int(np.clip(round(3 + match[item] + rng.normal(scale=0.7)), 1, 5))
            rating_rows.append((user_id, f"i{item:04d}", rating, 1_700_000_000 + 3600 * step + user))
    ratings = pd.DataFrame(rating_rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame(
        {
            "item_id": [f"i{n:04d}" for n in range(config.items)],
            "genres": genre_text,
            "brand": brands,
            "year": years,
            "price": prices,
        }
    )
    users = pd.DataFrame(user_rows, columns=["user_id", "age_band", "gender", "region"])
    return World(ratings, items, users, groups)
