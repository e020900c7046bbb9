"""Trigger detection on real Spark and PostgreSQL."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from jobs.core import schema
from jobs.core.db import copy_rows
from jobs.ingest.clean import clean_window
from jobs.ingest.reference import load_reference
from jobs.notify.plan import plan_notifications
from jobs.notify.triggers import browse_intent, cart_abandonment, detect_triggers
from jobs.profiles.interactions import recent_interactions
from tests.support.events import make_event, write_landing

T = datetime(2026, 11, 24, 10, tzinfo=UTC)
DELAY = timedelta(minutes=30)
DAY = timedelta(hours=24)
NAIVE_T = T.replace(tzinfo=None)  # Spark collects UTC timestamps as naive datetimes


def _events(spark, rows):
    """rows: (event_id, user_id, event_type, item_id, minutes after T)."""
    fields = [name for name, _, _ in schema.EVENT_FIELDS]
    data = []
    for event_id, user, kind, item, minutes in rows:
        values = dict.fromkeys(fields)
        values.update(event_id=event_id, user_id=user, event_type=kind, item_id=item, ts=T + timedelta(minutes=minutes))
        data.append(tuple(values[f] for f in fields))
    clean = schema.CLEAN_EVENT_SCHEMA
    return spark.createDataFrame(data, schema=type(clean)([f for f in clean.fields if f.name in fields]))


def test_cart_abandonment_fires_once_after_the_delay_unless_resolved(spark):
    events = _events(
        spark,
        [
            ("1", "a", "add_to_cart", "i1", 0),  # abandoned
            ("2", "a", "add_to_cart", "i1", 5),  # same item, same day: the same trigger
            ("3", "b", "add_to_cart", "i1", 0),
            ("4", "b", "purchase", "i1", 10),  # bought before the delay: no trigger
            ("5", "c", "add_to_cart", "i2", 0),
            ("6", "c", "purchase", "i2", 50),  # bought after it fired: cancelled
            ("7", "d", "add_to_cart", "i3", 0),
            ("8", "d", "remove_from_cart", "i3", 3),  # removed: no trigger
            ("9", "e", "add_to_cart", "i4", 20),  # fires at T + 50 min
        ],
    )
    fired = {r.user_id: r for r in cart_abandonment(events, T + timedelta(minutes=60), DELAY, DAY).collect()}
    assert set(fired) == {"a", "c", "e"}
    assert fired["a"].fire_at == NAIVE_T + DELAY
    assert fired["a"].cancelled_at is None
    assert fired["c"].cancelled_at == NAIVE_T + timedelta(minutes=50)
    again = cart_abandonment(events, T + timedelta(minutes=60), DELAY, DAY).collect()
    assert {r.trigger_key for r in again} == {r.trigger_key for r in fired.values()}
    early = cart_abandonment(events, T + timedelta(minutes=40), DELAY, DAY).collect()
    assert {r.user_id for r in early} == {"a", "c"}  # e's cart fires at +50 min


def test_browse_intent_needs_enough_views_and_no_cart(spark):
    items = spark.createDataFrame(
        [("i1", "shoes"), ("i2", "shoes"), ("i3", "books")], "item_id string, category string"
    )
    rows = [(f"v{n}", "a", "view", "i1" if n % 2 else "i2", n) for n in range(5)]  # 5 shoe views in 5 min
    rows += [(f"w{n}", "b", "view", "i1", n) for n in range(5)] + [("c1", "b", "add_to_cart", "i2", 6)]
    rows += [(f"x{n}", "c", "view", "i3", n) for n in range(4)]  # only 4 views
    fired = browse_intent(_events(spark, rows), items, T + timedelta(hours=1), 5, 30, DAY).collect()
    assert [(r.user_id, r.category, r.item_id, r.fire_at) for r in fired] == [
        ("a", "shoes", "i2", NAIVE_T + timedelta(minutes=30))  # i2 was viewed last
    ]


def test_recent_interactions_keep_the_latest_of_each_kind(spark):
    rows = [("1", "a", "view", "i1", 0), ("2", "a", "click", "i1", 5), ("3", "a", "add_to_cart", "i1", 7)]
    (row,) = recent_interactions(_events(spark, rows)).collect()
    assert (row.last_viewed_at, row.last_carted_at, row.last_purchased_at) == (
        NAIVE_T + timedelta(minutes=5),
        NAIVE_T + timedelta(minutes=7),
        None,
    )


def test_detect_and_plan_end_to_end_with_item_triggers(spark, settings, empty_db):
    for folder in (settings.landing_dir / "events", settings.clean_dir):
        shutil.rmtree(folder, ignore_errors=True)
    reference = settings.landing_dir / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    (reference / "users.csv").write_text(
        "user_id,email,phone,push_token,timezone,locale,signup_date,consent_email,consent_sms,consent_push,consent_webhook\n"
        "a,a@example.com,,tok-a,UTC,en,2026-01-01,true,false,true,false\n"
        "b,b@example.com,,tok-b,UTC,zh-CN,2026-01-01,true,false,true,false\n"
    )
    (reference / "campaigns.csv").write_text(
        "campaign_id,name,target_category,discount_text,valid_from,valid_to,priority,channels,transactional\n"
    )
    (reference / "items.csv").write_text(
        "item_id,title,category,brand,price,in_stock\ni1,Shoe,shoes,b,100,true\ni2,Lamp,home,b,50,false\n"
    )
    load_reference(settings, T - DAY)
    write_landing(
        settings.landing_dir,
        10,
        "part.jsonl",
        [
            make_event(event_id="1", user_id="a", event_type="add_to_cart", item_id="i1", ts="2026-11-24T10:05:00Z"),
            make_event(event_id="2", user_id="b", event_type="view", item_id="i2", ts="2026-11-24T10:10:00Z"),
        ],
    )
    clean_window(spark, settings, T, T + timedelta(hours=1))
    # The next snapshot: the lamp is back in stock and the shoe 20% cheaper.
    (reference / "items.csv").write_text(
        "item_id,title,category,brand,price,in_stock\ni1,Shoe,shoes,b,80,true\ni2,Lamp,home,b,50,true\n"
    )
    assert load_reference(settings, T + timedelta(hours=1))["item_changes"] == 2
    until = T + timedelta(hours=1)
    first = detect_triggers(spark, settings, until)
    assert first["by_type"] == {"cart_abandonment": 1}
    assert first["new_item_triggers"] == 2  # a viewed/carted the shoe, b viewed the lamp
    assert detect_triggers(spark, settings, until)["new_item_triggers"] == 0  # idempotent
    with empty_db.connect() as conn:
        triggers = sorted(conn.execute(text("SELECT user_id, trigger_type, item_id FROM push.triggers")).all())
    assert triggers == [("a", "cart_abandonment", "i1"), ("a", "price_drop", "i1"), ("b", "back_in_stock", "i2")]
    quiet_free = replace(settings, holdout_percent=0.0, quiet_hours_start="00:00", quiet_hours_end="00:00")
    summary = plan_notifications(quiet_free, until, kinds=("trigger",))
    # One message per user (min gap): a's abandoned cart outranks the price drop.
    assert summary["decisions"] == {"sent": 2, "capped_min_gap": 1}
    with empty_db.connect() as conn:
        sent = dict(conn.execute(text("SELECT user_id, source FROM push.notification_ledger")).all())
    assert sent == {"a": "trigger:cart_abandonment", "b": "trigger:back_in_stock"}


def test_item_changes_need_a_real_drop(engine, settings, empty_db):
    with engine.begin() as conn:
        copy_rows(
            conn,
            "push.items",
            ["item_id", "title", "category", "brand", "price", "in_stock"],
            [("i1", "S", "c", "b", 100, True)],
        )
    reference = settings.landing_dir / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    (reference / "items.csv").write_text("item_id,title,category,brand,price,in_stock\ni1,S,c,b,95,true\n")
    (reference / "users.csv").write_text(
        "user_id,email,phone,push_token,timezone,locale,signup_date,consent_email,consent_sms,consent_push,consent_webhook\n"
    )
    (reference / "campaigns.csv").write_text(
        "campaign_id,name,target_category,discount_text,valid_from,valid_to,priority,channels,transactional\n"
    )
    assert load_reference(replace(settings, price_drop_min_percent=10.0), T)["item_changes"] == 0


def test_unknown_timezones_become_utc_and_are_counted(settings, empty_db):
    reference = settings.landing_dir / "reference"
    reference.mkdir(parents=True, exist_ok=True)
    (reference / "users.csv").write_text(
        "user_id,email,phone,push_token,timezone,locale,signup_date,consent_email,consent_sms,consent_push,consent_webhook\n"
        "a,a@example.com,,tok-a,Mars/Olympus_Mons,en,2026-01-01,true,false,true,false\n"
        "b,b@example.com,,tok-b,Asia/Shanghai,zh-CN,2026-01-01,true,false,true,false\n"
    )
    (reference / "items.csv").write_text("item_id,title,category,brand,price,in_stock\n")
    (reference / "campaigns.csv").write_text(
        "campaign_id,name,target_category,discount_text,valid_from,valid_to,priority,channels,transactional\n"
    )
    assert load_reference(settings, T)["timezones_reset_to_utc"] == 1
    with empty_db.connect() as conn:
        zones = dict(conn.execute(text("SELECT user_id, timezone FROM push.users")).all())
    assert zones == {"a": "UTC", "b": "Asia/Shanghai"}
