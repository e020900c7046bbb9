"""The simulated world's response model and the closed loop's figures, on small hand-made cases."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from jobs.core.schema import EVENT_TYPES
from simulation.closed_loop import compare, lift, render_table
from simulation.synthetic import GeneratorConfig
from simulation.world import UPLIFT_TYPES, ResponseConfig, World, active_moment, fit, in_active_hours

DAY = date(2026, 11, 2)


@pytest.fixture(scope="module")
def world_config():
    return GeneratorConfig(users=200, items=80, seed=3, end_date=DAY - timedelta(days=1), bot_share=0.0)


def _message(world: World, user_id: str, at: datetime, item_id: str | None = None, key: str = "k") -> dict:
    shopper = world.shoppers[user_id]
    if item_id is None:
        item_id = world.by_category[shopper.taste.favourite_categories[0]][0]["item_id"]
    return {"idempotency_key": f"{key}-{user_id}", "user_id": user_id, "item_id": item_id, "scheduled_at": at}


def _active_moment(world: World, user_id: str) -> datetime:
    return active_moment(world.shoppers[user_id], DAY)


def test_the_world_is_the_same_for_a_seed_and_its_uplift_types_follow_their_shares(world_config):
    first, second = World(world_config), World(world_config)
    assert {u: s.uplift for u, s in first.shoppers.items()} == {u: s.uplift for u, s in second.shoppers.items()}
    counts = {kind: sum(s.uplift == kind for s in first.shoppers.values()) for kind in UPLIFT_TYPES}
    for kind, share in zip(UPLIFT_TYPES, ResponseConfig().uplift_shares, strict=True):
        assert abs(counts[kind] / len(first.shoppers) - share) < 0.1, kind
    assert 0 < sum(s.oracle for s in first.shoppers.values()) < 0.3 * len(first.shoppers)


def test_only_sure_things_buy_on_their_own_and_oracle_users_never_reach_the_landing_zone(world_config, tmp_path):
    world = World(world_config)
    lines = world.write_day(tmp_path, DAY)
    events = [json.loads(line) for f in (tmp_path / "events").rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert len(events) == lines > 0
    assert {e["event_type"] for e in events} <= set(EVENT_TYPES)
    buyers = {e["user_id"] for e in events if e["event_type"] == "purchase"}
    assert buyers
    assert all(world.shoppers[u].uplift == "sure_thing" for u in buyers)
    assert not any(world.shoppers[e["user_id"]].oracle for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    # The tallies count every purchase, the oracle users' too.
    assert sum(t.purchases for t in world.tally.values()) >= sum(e["event_type"] == "purchase" for e in events)
    assert world.write_day(tmp_path / "again", DAY) == lines


def test_answers_are_reproducible_carry_the_message_id_and_land_in_their_hour(world_config, tmp_path):
    def answered():
        world = World(world_config)
        users = [u for u, s in world.shoppers.items() if s.uplift == "persuadable" and not s.oracle][:40]
        world.answer([_message(world, u, _active_moment(world, u)) for u in users])
        world.write_day(tmp_path, DAY)
        return world, [
            json.loads(line)
            for f in sorted((tmp_path / "events").rglob("*.jsonl"))
            for line in f.read_text().splitlines()
            if '"notification_id"' in line
        ]

    world, events = answered()
    _, again = answered()
    assert events == again
    opens = [e for e in events if e["event_type"] == "notification_open"]
    assert opens
    assert all(e["notification_id"] == f"k-{e['user_id']}" for e in events)
    assert sum(t.opens for t in world.tally.values()) == len(opens)
    # A persuadable who clicks an item of their primary category at their active hour often buys it.
    assert sum(t.nudged_purchases for t in world.tally.values()) > 0
    for event in events:
        at = datetime.fromisoformat(event["ts"])
        assert at >= _active_moment(world, event["user_id"])


def test_opening_falls_off_outside_active_hours_and_with_fatigue(world_config):
    world = World(world_config)
    user = next(u for u, s in world.shoppers.items() if s.uplift == "persuadable")
    shopper, at = world.shoppers[user], _active_moment(world, user)
    fresh = world.open_chance(shopper, at)
    assert fresh == ResponseConfig().open_in_active_hours
    assert world.open_chance(shopper, at + timedelta(hours=6)) == ResponseConfig().open_off_hours
    world.answer([_message(world, user, at - timedelta(hours=n), key=f"f{n}") for n in (1, 2, 3)])
    tired = world.open_chance(shopper, at)
    assert tired < fresh / 2
    # Fatigue fades: two half-lives later, a quarter of it is left.
    later = at + timedelta(hours=2 * ResponseConfig().fatigue_half_life_hours)
    assert world.fatigue(shopper, later) == pytest.approx(world.fatigue(shopper, at) / 4)


def test_sleeping_dogs_opt_out_and_are_not_answered_after(world_config):
    world = World(world_config, replace(ResponseConfig(), annoy_sleeping_dog=1.0))
    dogs = [u for u, s in world.shoppers.items() if s.uplift == "sleeping_dog"]
    world.answer(
        [
            _message(world, u, _active_moment(world, u) + timedelta(minutes=n), key=f"m{n}")
            for u in dogs
            for n in range(3)
        ]
    )
    assert all(world.tally[u].opted_out and world.tally[u].opens == 0 for u in dogs)
    assert all(world.tally[u].messages == 3 for u in dogs)


def test_the_oracle_writes_to_consenting_persuadables_at_their_active_hour(world_config):
    world = World(world_config)
    messages = world.oracle_messages(DAY)
    assert messages
    for message in messages:
        shopper = world.shoppers[message["user_id"]]
        assert shopper.oracle
        assert shopper.uplift == "persuadable"
        assert message["scheduled_at"].astimezone(shopper.tz).hour == shopper.taste.active_hours_local[0]
        assert fit(shopper.taste, world.item_by_id[message["item_id"]]["category"]) == 0


def test_active_hours_wrap_around_midnight(world_config):
    taste = replace(World(world_config).shoppers["u00000"].taste, active_hours_local=[23, 0])
    assert in_active_hours(taste, 1)
    assert in_active_hours(taste, 22)
    assert not in_active_hours(taste, 12)


def test_the_lift_interval_covers_the_difference_and_narrows_with_more_users():
    small = lift([True] * 30 + [False] * 70, [True] * 10 + [False] * 90)
    large = lift([True] * 300 + [False] * 700, [True] * 100 + [False] * 900)
    assert small["estimate"] == large["estimate"] == pytest.approx(0.2)
    assert small["ci_low"] < 0.2 < small["ci_high"]
    assert large["ci_high"] - large["ci_low"] < small["ci_high"] - small["ci_low"]
    assert lift([], [True])["estimate"] is None


def test_the_comparison_reports_every_policy_against_the_control_group_and_the_oracle(world_config):
    world = World(world_config)
    users = list(world.shoppers)
    for n, user in enumerate(users):
        world.tally[user].purchases = int(n % 3 == 0)
        world.tally[user].messages = 2 if n >= 50 else 0
        world.tally[user].clicks = 1 if n >= 50 and n % 2 else 0
    groups = {"none": users[:50], "full": users[50:120], "oracle": users[120:]}
    result = compare(world, groups)
    full = result["policies"]["full"]
    assert full["messages"] == 140
    assert full["ctr"] == pytest.approx(35 / 140, abs=1e-4)
    assert result["policies"]["none"]["lift"]["estimate"] == 0
    ceiling = result["oracle"]["lift"]["estimate"]
    assert full["share_of_oracle_lift"] == round(full["lift"]["estimate"] / ceiling, 3)
    table = render_table(result)
    assert table.count("\n") == 4  # header, rule, full, none, oracle
