"""The cart-abandonment state machine of the stream (pure), against the batch detector's rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from jobs.stream.transforms import advance_carts, fire_due_carts, next_timeout

T = datetime(2026, 11, 24, 10)
DELAY_MS = 30 * 60 * 1000


def _ms(minutes: float) -> int:
    return int((T.replace(tzinfo=UTC) + timedelta(minutes=minutes)).timestamp() * 1000)


def _events(*rows: tuple[str, float]) -> pd.DataFrame:
    return pd.DataFrame({"event_type": [k for k, _ in rows], "ts": [T + timedelta(minutes=m) for _, m in rows]})


def test_a_cart_waits_for_its_delay_then_fires_once():
    carts, emitted = advance_carts({}, _events(("add_to_cart", 0)), DELAY_MS, watermark_ms=0)
    assert emitted == []
    assert next_timeout(carts, DELAY_MS) == _ms(30)
    assert fire_due_carts(carts, _ms(29)) == []
    assert fire_due_carts(carts, _ms(31)) == [("2026-11-24", _ms(30), None)]
    assert fire_due_carts(carts, _ms(40)) == []  # once
    assert next_timeout(carts, DELAY_MS) == _ms(60)  # kept a while for late cancellations


def test_a_purchase_before_the_delay_cancels_silently():
    carts, emitted = advance_carts({}, _events(("purchase", 10), ("add_to_cart", 0)), DELAY_MS, 0)
    assert emitted == []
    assert carts["2026-11-24"]["phase"] == "resolved"
    assert fire_due_carts(carts, _ms(60)) == []


def test_a_purchase_at_the_same_instant_resolves_the_cart():
    carts, _ = advance_carts({}, _events(("purchase", 0), ("add_to_cart", 0)), DELAY_MS, 0)
    assert carts["2026-11-24"]["phase"] == "resolved"


def test_a_purchase_after_the_due_time_fires_it_cancelled_like_the_batch():
    carts, emitted = advance_carts({}, _events(("add_to_cart", 0), ("purchase", 50)), DELAY_MS, 0)
    assert emitted == [("2026-11-24", _ms(30), _ms(50))]
    carts, emitted = advance_carts({}, _events(("add_to_cart", 0)), DELAY_MS, 0)
    fire_due_carts(carts, _ms(31))
    _, emitted = advance_carts(carts, _events(("remove_from_cart", 40)), DELAY_MS, _ms(31))
    assert emitted == [("2026-11-24", _ms(30), _ms(40))]


def test_redelivered_and_repeated_carts_of_a_day_are_one_cart_from_the_first():
    carts, _ = advance_carts({}, _events(("add_to_cart", 5), ("add_to_cart", 5), ("add_to_cart", 20)), DELAY_MS, 0)
    carts, _ = advance_carts(carts, _events(("add_to_cart", 1)), DELAY_MS, 0)  # an earlier one arrives late
    assert carts == {"2026-11-24": {"carted": _ms(1), "fire": _ms(31), "phase": "pending"}}


def test_a_cart_already_due_by_the_watermark_fires_at_once():
    _, emitted = advance_carts({}, _events(("add_to_cart", 0)), DELAY_MS, watermark_ms=_ms(45))
    assert emitted == [("2026-11-24", _ms(30), None)]
