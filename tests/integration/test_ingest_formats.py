"""Landing formats (CSV, Parquet), event-time partitions and catalogue checks, on real Spark + PostgreSQL."""

from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import text

from jobs.ingest.clean import clean_window
from jobs.ingest.lake import read_clean, read_clean_by_event_time
from tests.support.events import make_event

START = datetime(2026, 11, 24, 10, tzinfo=UTC)
END = datetime(2026, 11, 24, 12, tzinfo=UTC)


@pytest.fixture
def lenient(settings, empty_db):
    for folder in (settings.landing_dir / "events", settings.landing_dir / "reference", settings.clean_dir):
        shutil.rmtree(folder, ignore_errors=True)
    return replace(settings, max_bad_row_share=1.0)


def _folder(settings, hour: int):
    folder = settings.landing_dir / "events" / "date=2026-11-24" / f"hour={hour:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _quarantine(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT line_no, reason, raw FROM push.quarantine ORDER BY 1"))]


def test_csv_rows_get_the_same_rules_as_json(spark, lenient, engine):
    body = [
        "Event_ID,user_id,event_type,item_id,price,quantity,ts,query,extra",  # header: case and extras ignored
        "c1,u1,view,i1,10.5,,2026-11-24T10:15:00Z,,x",
        'c2,u1,search,,,,2026-11-24T18:20:00+08:00,"shoes, red ""sale""",x',
        "c3,u2,view,i2,cheap,,2026-11-24T10:16:00Z,,x",
        "c4,u2,view,i2,1.0,2026-11-24T10:16:00Z",
        "",
        "c5,,view,i3,1.0,,2026-11-24T10:17:00Z,,x",
    ]
    (_folder(lenient, 10) / "part-0.csv").write_text("\n".join(body) + "\n")

    result = clean_window(spark, lenient, START, END)

    assert (result.input_rows, result.clean_rows, result.duplicate_rows) == (6, 2, 0)
    assert result.by_reason == {"wrong_type": 1, "malformed_csv": 1, "empty_line": 1, "missing_user_id": 1}
    rows = {r.event_id: r for r in read_clean(spark, lenient, START, END).collect()}
    assert rows["c1"].price == 10.5
    assert rows["c2"].query == 'shoes, red "sale"'
    assert rows["c2"].ts.replace(tzinfo=None) == datetime(2026, 11, 24, 10, 20)  # +08:00 converted to UTC
    # Line numbers count the header, so they point at the file's own lines; raw is the CSV text.
    assert _quarantine(engine) == [
        (4, "wrong_type", body[3]),
        (5, "malformed_csv", body[4]),
        (6, "empty_line", ""),
        (7, "missing_user_id", body[6]),
    ]


def test_parquet_rows_are_cleaned_and_quarantined_as_json(spark, lenient, engine):
    frame = pd.DataFrame(
        [
            {
                "event_id": "p1",
                "user_id": "u1",
                "event_type": "VIEW",
                "item_id": "i1",
                "price": 3.5,
                "ts": "2026-11-24T10:01:00Z",
            },
            {
                "event_id": "p2",
                "user_id": "u1",
                "event_type": "view",
                "item_id": "i1",
                "price": -1.0,
                "ts": "2026-11-24T10:02:00Z",
            },
            {
                "event_id": "p3",
                "user_id": "u2",
                "event_type": "purchase",
                "item_id": "i2",
                "price": 9.0,
                "ts": "2026-11-24T11:03:00+01:00",
            },
        ]
    )
    frame.to_parquet(_folder(lenient, 10) / "part-0.parquet", index=False)

    result = clean_window(spark, lenient, START, END)

    assert (result.input_rows, result.clean_rows, result.quarantined_rows) == (3, 2, 1)
    clean = {r.event_id: r for r in read_clean(spark, lenient, START, END).collect()}
    assert clean["p1"].event_type == "view"
    assert clean["p3"].ts.replace(tzinfo=None) == datetime(2026, 11, 24, 10, 3)
    [(line_no, reason, raw)] = _quarantine(engine)
    assert (line_no, reason, json.loads(raw)["event_id"]) == (2, "price_out_of_range", "p2")


def _lake_leaves(settings) -> list[str]:
    return sorted(
        str(p.relative_to(settings.clean_dir))
        for p in settings.clean_dir.glob("event_date=*/*/*/*")
        if any(p.iterdir())
    )


def test_late_events_sit_in_their_event_hour_and_count_for_their_date(spark, lenient, engine):
    on_time = make_event(event_id="now", ts="2026-11-24T11:10:00Z")
    late = make_event(event_id="late", ts="2026-11-23T22:40:00-02:00")  # 2026-11-24 00:40 UTC
    older = make_event(event_id="older", ts="2026-11-22T23:59:00Z")
    (_folder(lenient, 11) / "part-0.jsonl").write_text("\n".join(json.dumps(e) for e in (on_time, late, older)))

    clean_window(spark, lenient, START, END)

    assert _lake_leaves(lenient) == [
        "event_date=2026-11-22/event_hour=23/landing_date=2026-11-24/landing_hour=11",
        "event_date=2026-11-24/event_hour=0/landing_date=2026-11-24/landing_hour=11",
        "event_date=2026-11-24/event_hour=11/landing_date=2026-11-24/landing_hour=11",
    ]
    by_time = read_clean_by_event_time(
        spark, lenient, datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)
    )
    assert [r.event_id for r in by_time.collect()] == ["older"]
    with engine.connect() as conn:
        summary = dict(
            conn.execute(text("SELECT event_date::text, sum(events) FROM push.daily_event_summary GROUP BY 1")).all()
        )
    assert summary == {"2026-11-22": 1, "2026-11-24": 2}


def test_a_rerun_after_the_landing_file_changed_drops_the_leaves_it_no_longer_makes(spark, lenient, engine):
    path = _folder(lenient, 10) / "part-0.jsonl"
    late = make_event(event_id="late", ts="2026-11-23T08:00:00Z")
    path.write_text("\n".join(json.dumps(e) for e in (make_event(event_id="a"), late)))
    clean_window(spark, lenient, START, END)
    assert len(_lake_leaves(lenient)) == 2

    path.write_text(json.dumps(make_event(event_id="a")))  # the producer re-delivered the hour without the late event
    clean_window(spark, lenient, START, END)

    assert _lake_leaves(lenient) == ["event_date=2026-11-24/event_hour=10/landing_date=2026-11-24/landing_hour=10"]
    with engine.connect() as conn:
        dates = conn.execute(text("SELECT event_date::text FROM push.daily_event_summary")).scalars().all()
    assert dates == ["2026-11-24"]


def test_unknown_items_are_kept_or_quarantined_as_configured(spark, lenient, engine):
    reference = lenient.landing_dir / "reference"
    reference.mkdir(parents=True)
    (reference / "items.csv").write_text("item_id,title,category,brand,price,in_stock\ni1,Mug,home,acme,10.0,true\n")
    events = [
        make_event(event_id="known"),
        make_event(event_id="ghost", item_id="i404"),
        make_event(event_id="q", event_type="search", item_id=None, query="mug"),
    ]
    (_folder(lenient, 10) / "part-0.jsonl").write_text("\n".join(json.dumps(e) for e in events))

    kept = clean_window(spark, lenient, START, END)
    assert (kept.clean_rows, kept.quarantined_rows) == (3, 0)
    quarantined = clean_window(spark, replace(lenient, unknown_items="quarantine"), START, END)
    assert (quarantined.clean_rows, quarantined.by_reason) == (2, {"unknown_item": 1})
    assert [r[1] for r in _quarantine(engine)] == ["unknown_item"]
    with pytest.raises(ValueError, match="PUSH_UNKNOWN_ITEMS"):
        clean_window(spark, replace(lenient, unknown_items="drop"), START, END - timedelta(hours=1))


def test_a_catalogue_that_does_not_know_the_items_fails_the_clean_suite(spark, lenient, engine):
    from jobs.ingest.validate import DataQualityError, validate_clean_window

    reference = lenient.landing_dir / "reference"
    reference.mkdir(parents=True)
    (reference / "items.csv").write_text("item_id,title,category,brand,price,in_stock\ni1,Mug,home,acme,10.0,true\n")
    events = [make_event(event_id=f"e{n}", item_id="i1" if n < 5 else "i404") for n in range(10)]
    (_folder(lenient, 10) / "part-0.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    clean_window(spark, lenient, START, END)  # "keep": the events are clean

    with pytest.raises(DataQualityError, match=r"clean_events.*item_in_catalogue"):
        validate_clean_window(replace(lenient, max_bad_row_share=0.01), START, END)
    with engine.connect() as conn:
        runs = dict(conn.execute(text("SELECT suite, success FROM push.validation_runs")).all())
    assert runs == {"raw_events": True, "clean_events": False}


def test_events_can_be_read_from_a_url(spark, lenient, engine, tmp_path):
    """PUSH_EVENTS_URL: listing and reading go through Spark's file systems (file:// here)."""
    remote = tmp_path / "bucket" / "events" / "date=2026-11-24" / "hour=10"
    remote.mkdir(parents=True)
    (remote / "part-0.jsonl.gz").write_bytes(
        gzip.compress(("\n".join(json.dumps(make_event(event_id=f"r{n}")) for n in range(3)) + "\n{").encode())
    )
    (remote / "_SUCCESS").write_text("")  # a marker file, not data
    url = f"file://{tmp_path / 'bucket' / 'events'}"

    result = clean_window(spark, replace(lenient, events_url=url), START, END)

    assert (result.input_rows, result.clean_rows, result.by_reason) == (4, 3, {"malformed_json": 1})
    [(line_no, reason, _)] = _quarantine(engine)
    assert (line_no, reason) == (4, "malformed_json")
    with engine.connect() as conn:
        source = conn.execute(text("SELECT source_file FROM push.quarantine")).scalar_one()
    assert source.startswith("file:")
    assert source.endswith("hour=10/part-0.jsonl.gz")
