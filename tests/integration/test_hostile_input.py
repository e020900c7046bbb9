"""Hostile input on real Spark + PostgreSQL: poison-pill lines, unreadable files, exact raw bytes.

Every line ends up clean, quarantined with a reason (and its exact bytes) or a duplicate; every
file is read, read in part (its break recorded) or quarantined; a window with no readable file
fails with one line naming them.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from jobs.core.db import copy_rows, copy_text, copy_text_field
from jobs.core.errors import PermanentDataError, explain_failure
from jobs.ingest.clean import clean_window
from jobs.ingest.lake import read_clean
from jobs.ingest.landing import READ_ERRORS, read_landing
from jobs.ingest.rules import CLEAN_COLUMNS, parse_and_validate
from jobs.ingest.validate import raw_batch
from tests.support.events import make_event
from tests.support.hostile_corpus import write_corpus

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)
END = datetime(2026, 11, 24, 11, tzinfo=UTC)


@pytest.fixture
def lenient(settings, empty_db):
    for folder in (settings.landing_dir / "events", settings.clean_dir):
        shutil.rmtree(folder, ignore_errors=True)
    return replace(settings, max_bad_row_share=1.0)


def _rows(engine, sql: str) -> list:
    with engine.connect() as conn:
        return conn.execute(text(sql)).all()


def test_hostile_lines_get_their_reason_and_keep_their_exact_bytes(spark, lenient, engine):
    corpus = write_corpus(lenient.landing_dir, HOUR, ["u1"], ["i1"])

    result = clean_window(spark, lenient, HOUR, END)

    assert result.input_rows == result.clean_rows + result.quarantined_rows + result.duplicate_rows
    hostile = {
        r.line_no: r
        for r in _rows(
            engine,
            "SELECT line_no, reason, raw, raw_bytes FROM push.quarantine WHERE source_file LIKE '%hostile.jsonl'",
        )
    }
    for line_no, (line, reason) in enumerate(corpus.lines, start=1):
        if reason is None:
            assert line_no not in hostile, (line_no, hostile.get(line_no))
            continue
        row = hostile[line_no]
        assert row.reason == reason, (line_no, line[:80])
        exact = b"\x00" not in line and _is_utf8(line)
        if exact:
            assert row.raw == line.decode()
            assert row.raw_bytes is None
        else:  # the text cannot hold the line: its bytes are kept exactly, a readable copy beside them
            assert bytes(row.raw_bytes) == line
            assert "\x00" not in row.raw
    clean = {r.event_id: r for r in read_clean(spark, lenient, HOUR, END).collect()}
    assert clean[f"hostile-{HOUR:%Y%m%d%H}-1"].user_id == "u1"  # read through its byte-order mark
    assert clean[f"hostile-{HOUR:%Y%m%d%H}-13"].user_id == "4242"
    assert clean[f"hostile-{HOUR:%Y%m%d%H}-14"].session_id == "s-\u00fc-\U0001f600"


def test_unreadable_files_are_quarantined_and_the_rest_of_the_window_is_cleaned(spark, lenient, engine):
    corpus = write_corpus(lenient.landing_dir, HOUR, ["u1"], ["i1"])
    good = [make_event(event_id=f"good-{n}", ts="2026-11-24T10:20:00Z") for n in range(5)]
    (corpus.folder / "good.jsonl").write_text("\n".join(json.dumps(e) for e in good) + "\n")

    first = clean_window(spark, lenient, HOUR, END)

    files = {
        r.source_file.rsplit("/", 1)[-1]: r
        for r in _rows(
            engine, "SELECT source_file, reason, error, partial, lines_read, size_bytes FROM push.quarantined_files"
        )
    }
    assert {name: r.reason for name, r in files.items()} == corpus.files
    assert all(r.error for r in files.values())
    cut = files["cut.jsonl.gz"]
    assert cut.partial
    assert 0 < cut.lines_read < corpus.truncated_lines
    assert not any(r.partial for name, r in files.items() if name != "cut.jsonl.gz")
    # files seen = read + quarantined: good, hostile and the cut gzip are read (one of them in part).
    assert (first.files_seen, first.files_read, first.files_quarantined, first.files_partial) == (6, 3, 3, 1)
    assert first.input_rows == len(good) + corpus.line_count + cut.lines_read
    assert first.input_rows == first.clean_rows + first.quarantined_rows + first.duplicate_rows
    clean_ids = {r.event_id for r in read_clean(spark, lenient, HOUR, END).collect()}
    assert {e["event_id"] for e in good} <= clean_ids
    assert sum(1 for i in clean_ids if i.startswith("hostile-") and int(i.rsplit("-", 1)[1]) >= 100) == cut.lines_read
    run = _rows(engine, "SELECT files_seen, files_read, files_quarantined, files_partial FROM push.ingest_runs")
    assert [tuple(r) for r in run] == [(6, 3, 3, 1)]
    # The raw-batch check reads what cleaning read.
    assert raw_batch(spark, lenient, HOUR, END).count() == first.input_rows

    snapshot = {
        table: _rows(engine, f"SELECT * FROM push.{table} ORDER BY 1, 2, 3, 4")
        for table in ("quarantine", "quarantined_files", "ingest_runs")
    }
    second = clean_window(spark, lenient, HOUR, END)
    assert second == first
    for table, rows in snapshot.items():
        assert _rows(engine, f"SELECT * FROM push.{table} ORDER BY 1, 2, 3, 4") == rows, table
    assert _rows(engine, "SELECT count(*) FROM push.quarantine_incoming")[0][0] == 0


def test_a_window_with_no_readable_file_fails_naming_them(spark, lenient, engine):
    folder = lenient.landing_dir / "events" / "date=2026-11-24" / "hour=10"
    folder.mkdir(parents=True)
    (folder / "only.parquet").write_bytes(b"garbage")

    with pytest.raises(
        PermanentDataError, match=r"no landing file of .* could be read: .*only\.parquet \(corrupt_parquet"
    ):
        clean_window(spark, lenient, HOUR, END)
    assert [tuple(r) for r in _rows(engine, "SELECT files_seen, files_quarantined FROM push.ingest_runs")] == [(1, 1)]


# --- generated lines ------------------------------------------------------------------------------
_hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Z", "Cc")), max_size=40
) | st.sampled_from(["", " ", "\u0000", "x" * 200, "\t", "\u202e", "\ufeff", "\\", '"', "'", "\\N", ",", "\r"])
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_hostile_text, inner, max_size=3),
    max_leaves=5,
)
_field = st.sampled_from(["event_id", "user_id", "item_id", "session_id", "device", "query", "notification_id", "ts"])


@st.composite
def _lines(draw) -> list[bytes]:
    lines = []
    for n in range(draw(st.integers(min_value=5, max_value=25))):
        event = make_event(event_id=f"gen-{n}", ts="2026-11-24T10:15:00Z")
        for name, value in draw(st.dictionaries(_field, _json_value, max_size=3)).items():
            event[name] = value
        line = json.dumps(event, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
        if draw(st.booleans()):
            line = line[: draw(st.integers(0, len(line)))] + draw(st.binary(max_size=4))
        lines.append(line.replace(b"\r", b"").replace(b"\n", b""))
    return lines


@given(lines=_lines())
@hypothesis_settings(
    max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_every_line_gets_one_verdict_and_every_clean_row_can_be_written_downstream(spark, lenient, engine, lines):
    folder = lenient.landing_dir / "events" / "date=2026-11-24" / "hour=10"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "generated.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    judged = parse_and_validate(read_landing(spark, [(str(folder / "generated.jsonl"), HOUR)])).collect()

    assert len(judged) == len(lines)
    clean = [r for r in judged if r.reason is None]
    names = [c for c in CLEAN_COLUMNS if c not in ("landing_date", "landing_hour", "ts")]
    rows = [tuple(getattr(r, c) for c in names) for r in clean]
    # Every downstream write goes through one of these: COPY csv, COPY text, a bound parameter.
    with engine.begin() as conn:
        columns = ", ".join(f"{c} text" for c in names)
        conn.execute(text(f"CREATE TEMP TABLE downstream ({columns}) ON COMMIT DROP"))
        copy_rows(conn, "downstream", names, rows)
        copy_text(
            conn,
            "downstream",
            names,
            ["\t".join("\\N" if v is None else copy_text_field(str(v)) for v in row) + "\n" for row in rows],
        )
        for row in rows:
            conn.execute(
                text(f"INSERT INTO downstream VALUES ({', '.join(f':p{i}' for i in range(len(names)))})"),
                {f"p{i}": None if v is None else str(v) for i, v in enumerate(row)},
            )
        stored = conn.execute(text("SELECT user_id FROM downstream")).scalars().all()
    assert len(stored) == 3 * len(rows)
    for row in clean:
        assert all(len(getattr(row, c) or "") <= 128 for c in ("event_id", "user_id", "item_id", "device"))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_a_failed_spark_job_is_explained_in_one_line_naming_its_cause(spark, tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"garbage")
    with pytest.raises(READ_ERRORS) as caught:
        spark.read.parquet(str(tmp_path / "x.parquet")).count()

    line = explain_failure(caught.value)

    assert line.startswith("a Spark job failed (")
    assert "x.parquet" in line
    assert "caused by" in line
    assert "\n" not in line
