"""Cleaning on real Spark + PostgreSQL with a corpus of hostile lines."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from jobs.ingest.clean import BadInputShareExceeded, clean_window
from jobs.ingest.lake import read_clean
from tests.support.events import make_event, write_landing

START = datetime(2026, 11, 24, 10, tzinfo=UTC)
END = datetime(2026, 11, 24, 12, tzinfo=UTC)


HOSTILE = {
    "truncated": ('{"event_id": "x1", "user_id": "u1", "event_ty', "malformed_json"),
    "empty": ("", "empty_line"),
    "whitespace": ("   ", "empty_line"),
    "wrong_type": (make_event(event_id="x2", price="cheap"), "wrong_type"),
    "no_user": (make_event(event_id="x3", user_id=None), "missing_user_id"),
    "blank_user": (make_event(event_id="x3b", user_id="  "), "missing_user_id"),
    "unknown_type": (make_event(event_id="x4", event_type="teleport"), "unknown_event_type"),
    "bad_ts": (make_event(event_id="x5", ts="yesterday"), "bad_timestamp"),
    "future_ts": (make_event(event_id="x6", ts="2027-01-01T00:00:00Z"), "timestamp_in_future"),
    "negative_price": (make_event(event_id="x7", price=-1), "price_out_of_range"),
    "huge_quantity": (make_event(event_id="x8", quantity=10**9), "quantity_out_of_range"),
    "view_without_item": (make_event(event_id="x9", item_id=None), "missing_item_id"),
    "not_an_object": ("[1, 2, 3]", "malformed_json"),
    "long_query": (make_event(event_id="x10", query="x" * 50_000, event_type="search", item_id=None), "text_too_long"),
    "nul_in_query": (
        make_event(event_id="x11", query="nul\u0000byte", event_type="search", item_id=None),
        "nul_in_text",
    ),
}

GOOD = [
    make_event(event_id="g1"),
    # Another zone: 18:20 in Shanghai is 10:20 UTC.
    make_event(event_id="g2", ts="2026-11-24T18:20:00+08:00", event_type="PURCHASE", quantity=2),
    make_event(event_id="g3", event_type="search", item_id=None, query="'; DROP TABLE push.users; --"),
    make_event(event_id="g4", query="x" * 2_000, event_type="search", item_id=None),
    make_event(event_id="g5", query="tab\tand line\nbreak", event_type="search", item_id=None),
]


@pytest.fixture
def landing(settings, empty_db):
    import shutil

    for folder in (settings.landing_dir / "events", settings.clean_dir):
        shutil.rmtree(folder, ignore_errors=True)
    lines = GOOD + [line for line, _ in HOSTILE.values()]
    write_landing(settings.landing_dir, 10, "part-1.jsonl", lines, encoding_errors=b'{"event_id": "bad\xff\xfe"}\n')
    # The same events delivered again in the next hour (a re-delivered file) plus one new event.
    write_landing(
        settings.landing_dir, 11, "part-1.jsonl", [*GOOD[:2], make_event(event_id="g6", ts="2026-11-24T11:05:00Z")]
    )
    return settings.landing_dir


def test_every_line_is_accounted_for_with_the_right_reason(spark, settings, landing, engine):
    lenient = replace(settings, max_bad_row_share=1.0)
    result = clean_window(spark, lenient, START, END)
    line_count = sum(len(p.read_bytes().splitlines()) for p in (landing / "events").rglob("*.jsonl"))
    assert result.input_rows == line_count
    assert result.input_rows == result.clean_rows + result.quarantined_rows + result.duplicate_rows
    assert result.duplicate_rows == 2
    clean_ids = sorted(r.event_id for r in read_clean(spark, settings, START, END).collect())
    assert clean_ids == ["g1", "g2", "g3", "g4", "g5", "g6"]

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT reason, raw, line_no FROM push.quarantine ORDER BY line_no")).all()
        run = conn.execute(text("SELECT * FROM push.ingest_runs")).mappings().one()
    by_raw = {r.raw: r.reason for r in rows}
    for name, (line, reason) in HOSTILE.items():
        raw = line if isinstance(line, str) else json.dumps(line)
        assert by_raw.get(raw) == reason, name
    assert sum(run["by_reason"].values()) == run["quarantined_rows"] == len(rows)
    assert by_raw.get('{"event_id": "bad\ufffd\ufffd"}') == "invalid_utf8"
    assert all(r.line_no >= 1 for r in rows)
    with engine.connect() as conn:
        summary = dict(
            conn.execute(text("SELECT event_type, sum(events) FROM push.daily_event_summary GROUP BY 1")).all()
        )
    assert summary == {"view": 2, "purchase": 1, "search": 3}


def test_clean_rows_are_normalised(spark, settings, landing):
    clean_window(spark, replace(settings, max_bad_row_share=1.0), START, END)
    rows = {r.event_id: r for r in read_clean(spark, settings, START, END).collect()}
    assert rows["g2"].event_type == "purchase"
    assert rows["g2"].ts.replace(tzinfo=None) == datetime(2026, 11, 24, 10, 20)
    assert rows["g3"].query == "'; DROP TABLE push.users; --"
    assert len(rows["g4"].query) == 2_000
    assert rows["g5"].query == "tab\tand line\nbreak"
    assert (rows["g1"].landing_date.isoformat(), rows["g1"].landing_hour) == ("2026-11-24", 10)


def test_rerun_is_identical_and_redelivery_adds_nothing(spark, settings, landing, engine):
    lenient = replace(settings, max_bad_row_share=1.0)
    first = clean_window(spark, lenient, START, END)
    snapshot = sorted(tuple(r) for r in read_clean(spark, settings, START, END).collect())
    with engine.connect() as conn:
        quarantine = conn.execute(text("SELECT * FROM push.quarantine ORDER BY source_file, line_no")).all()
    second = clean_window(spark, lenient, START, END)
    assert first == second
    assert sorted(tuple(r) for r in read_clean(spark, settings, START, END).collect()) == snapshot
    with engine.connect() as conn:
        assert conn.execute(text("SELECT * FROM push.quarantine ORDER BY source_file, line_no")).all() == quarantine
        assert conn.execute(text("SELECT count(*) FROM push.ingest_runs")).scalar_one() == 1


def test_too_many_bad_rows_fail_the_run_naming_the_top_reasons(spark, settings, landing, engine):
    with pytest.raises(BadInputShareExceeded, match="malformed_json"):
        clean_window(spark, replace(settings, max_bad_row_share=0.05), START, END)
    with engine.connect() as conn:  # the accounting is recorded even when the run fails
        assert conn.execute(text("SELECT count(*) FROM push.ingest_runs")).scalar_one() == 1


def test_bots_are_quarantined_as_bots(spark, settings, empty_db, engine):
    import shutil

    shutil.rmtree(settings.landing_dir / "events", ignore_errors=True)
    burst = [make_event(event_id=f"b{n}", user_id="bot", ts=f"2026-11-24T10:30:{n % 60:02d}Z") for n in range(45)]
    write_landing(settings.landing_dir, 10, "bots.jsonl", [*burst, make_event(event_id="human")])
    result = clean_window(spark, replace(settings, bot_events_per_minute=30), START, END)
    assert result.by_reason == {"bot": 45}
    assert result.clean_rows == 1
    assert result.bad_share == 0.0
    # Bots are found after the raw text left the cache: their lines are read again, exactly.
    with engine.connect() as conn:
        kept = conn.execute(text("SELECT line_no, raw FROM push.quarantine WHERE reason = 'bot' ORDER BY line_no"))
        assert [(line_no, json.loads(raw)) for line_no, raw in kept] == list(enumerate(burst, start=1))


def test_gzipped_files_are_read_with_line_numbers(spark, settings, empty_db, engine):
    import gzip
    import shutil

    shutil.rmtree(settings.landing_dir / "events", ignore_errors=True)
    folder = settings.landing_dir / "events" / "date=2026-11-24" / "hour=10"
    folder.mkdir(parents=True)
    lines = [json.dumps(make_event(event_id=f"z{n}")) for n in range(3)] + ["{broken"]
    (folder / "part-0.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    result = clean_window(spark, replace(settings, max_bad_row_share=1.0), START, END)
    assert (result.input_rows, result.clean_rows, result.quarantined_rows) == (4, 3, 1)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT line_no, reason FROM push.quarantine")).one() == (4, "malformed_json")


def test_redelivery_in_a_later_window_is_a_duplicate_and_windows_keep_their_quarantine(
    spark, settings, landing, engine
):
    from datetime import timedelta

    lenient = replace(settings, max_bad_row_share=1.0)
    hour = timedelta(hours=1)
    first = clean_window(spark, lenient, START, START + hour)
    second = clean_window(spark, lenient, START + hour, END)
    assert (second.input_rows, second.clean_rows, second.duplicate_rows) == (3, 1, 2)
    assert first.clean_rows + second.clean_rows == 6
    assert sorted(r.event_id for r in read_clean(spark, settings, START, END).collect()) == [
        "g1",
        "g2",
        "g3",
        "g4",
        "g5",
        "g6",
    ]
    # Cleaning the daily window afterwards replaces the same hours' quarantine, never doubles it.
    clean_window(spark, lenient, START, END)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM push.quarantine")).scalar_one() == first.quarantined_rows


def test_a_window_not_on_the_hour_is_widened_to_whole_hours(spark, settings, landing):
    from datetime import timedelta

    result = clean_window(spark, replace(settings, max_bad_row_share=1.0), START + timedelta(minutes=30), END)
    assert (result.window_start, result.window_end) == (START, END)
    assert result.clean_rows == 6


def test_a_failed_window_writes_nothing_to_the_lake(spark, settings, landing):
    with pytest.raises(BadInputShareExceeded):
        clean_window(spark, replace(settings, max_bad_row_share=0.01), START, END)
    assert read_clean(spark, settings, START, END).count() == 0


def test_the_first_delivery_of_each_event_wins(spark):
    from datetime import date

    from jobs.ingest.rules import drop_duplicates

    # (event_id, landing date, landing hour, file, line, marker): the marker tells copies apart.
    rows = [
        ("a", date(2026, 11, 24), 11, "f1", 1, "a-later-hour"),
        ("a", date(2026, 11, 24), 10, "f2", 7, "a-first"),
        ("a", date(2026, 11, 24), 10, "f3", 1, "a-later-file"),
        ("b", date(2026, 11, 24), 12, "f1", 3, "b-only"),
        ("c", date(2026, 11, 23), 23, "f9", 5, "c-later-line"),
        ("c", date(2026, 11, 23), 23, "f9", 2, "c-first"),
        ("d", date(2026, 11, 25), 0, "f1", 1, "d-first"),
        ("d", date(2026, 11, 25), 0, "f1", 2, "d-later-line"),
    ]
    frame = spark.createDataFrame(
        rows, "event_id string, landing_date date, landing_hour int, source_file string, line_no long, marker string"
    )
    kept = drop_duplicates(frame)
    assert kept.columns == frame.columns
    assert sorted(r.marker for r in kept.collect()) == ["a-first", "b-only", "c-first", "d-first"]
