"""Telling why a landing file cannot be read, without Spark (what the stream's reader skips)."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

from jobs.ingest.landing import file_path, read_problem
from jobs.stream.sink import batch_source_files, landing_hour_of, unread_files

HOUR = datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_good_truncated_and_false_gzips_and_directories_are_told_apart(tmp_path):
    lines = b"".join(b'{"event_id": "e%d"}\n' % n for n in range(500))
    packed = gzip.compress(lines)
    files = {
        "good.jsonl.gz": packed,
        "cut.jsonl.gz": packed[: len(packed) // 2],
        "fake.jsonl.gz": b"plain text\n",
        "plain.jsonl": lines,
        "empty.jsonl": b"",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / "folder.jsonl").mkdir()

    found = {name: read_problem(str(tmp_path / name), HOUR) for name in [*files, "folder.jsonl"]}

    assert {name: problem.reason if problem else None for name, problem in found.items()} == {
        "good.jsonl.gz": None,
        "cut.jsonl.gz": "truncated_gzip",
        "fake.jsonl.gz": "corrupt_gzip",
        "plain.jsonl": None,
        "empty.jsonl": None,
        "folder.jsonl": "unreadable_file",
    }
    cut = found["cut.jsonl.gz"]
    assert cut.size_bytes == len(packed) // 2
    assert "EOFError" in cut.error
    assert cut.landing_hour == HOUR
    assert read_problem(str(tmp_path / "missing.jsonl"), HOUR).reason == "unreadable_file"


def test_file_uris_become_local_paths():
    assert str(file_path("file:///data/landing/a%20b.jsonl")) == "/data/landing/a b.jsonl"
    assert str(file_path("file:/data/x.jsonl")) == "/data/x.jsonl"
    assert str(file_path("/data/x.jsonl")) == "/data/x.jsonl"


def test_a_batchs_files_come_from_the_source_log_plain_or_compacted(tmp_path):
    sources, offsets = tmp_path / "sources" / "0", tmp_path / "offsets"
    sources.mkdir(parents=True)
    offsets.mkdir()
    entry = lambda path, n: json.dumps({"path": path, "timestamp": 1, "batchId": n})  # noqa: E731
    # Source batches 0..9 compacted into 9.compact, then 10 and 11 as plain files.
    (sources / "9.compact").write_text("v1\n" + "\n".join(entry(f"file:///l/{n}.jsonl", n) for n in range(10)) + "\n")
    for n in (10, 11):
        (sources / str(n)).write_text(f"v1\n{entry(f'file:///l/{n}.jsonl.gz', n)}\n")
    # Query batches: 0 read source batches 0..8, 1 read 9 and 10, 2 read nothing new (a timeout
    # step), 3 read 11.
    for batch, log_offset in enumerate((8, 10, 10, 11)):
        (offsets / str(batch)).write_text(f'v1\n{{"batchWatermarkMs":0}}\n{{"logOffset":{log_offset}}}\n')

    assert batch_source_files(tmp_path, 0) == sorted(f"/l/{n}.jsonl" for n in range(9))
    assert batch_source_files(tmp_path, 1) == ["/l/10.jsonl.gz", "/l/9.jsonl"]
    assert batch_source_files(tmp_path, 2) == []
    assert batch_source_files(tmp_path, 3) == ["/l/11.jsonl.gz"]
    assert batch_source_files(tmp_path, 4) == []
    # A Kafka source records topic offsets, not a file log.
    (offsets / "4").write_text('v1\n{}\n{"events":{"0":42}}\n')
    assert batch_source_files(tmp_path, 4) == []


def test_only_files_without_lines_are_probed_and_landing_hours_come_from_the_folders(tmp_path):
    folder = tmp_path / "date=2026-11-24" / "hour=10"
    folder.mkdir(parents=True)
    (folder / "read.jsonl").write_bytes(b"not probed: it gave lines\n")
    (folder / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:20])
    (folder / "empty.jsonl").write_bytes(b"")
    listed = [str(folder / name) for name in ("read.jsonl", "cut.jsonl.gz", "empty.jsonl")]

    [problem] = unread_files(listed, ["file://" + str(folder / "read.jsonl")])

    assert problem.path == str(folder / "cut.jsonl.gz")
    # A file on a remote file system is not probed from the driver.
    assert unread_files(["s3a://bucket/events/date=2026-11-24/hour=10/x.jsonl.gz"], []) == []
    assert problem.landing_hour == HOUR
    assert landing_hour_of(str(folder / "x.jsonl")) == HOUR
