"""A benchmark's result is printed as one JSON line and appended, with commit and machine, as data."""

from __future__ import annotations

import json

from benchmarks.figures import machine, record


def test_record_prints_one_json_line_and_appends_it_with_commit_and_machine(tmp_path, capsys):
    results = tmp_path / "results.jsonl"

    record("bench-x", {"rate": 1.5, "at": tmp_path}, results_path=results)
    record("bench-x", {"rate": 2.5}, results_path=results)

    printed = capsys.readouterr().out.strip().splitlines()
    assert json.loads(printed[0]) == {"rate": 1.5, "at": str(tmp_path)}
    entries = [json.loads(line) for line in results.read_text().splitlines()]
    assert [e["result"]["rate"] for e in entries] == [1.5, 2.5]
    assert all(e["benchmark"] == "bench-x" for e in entries)
    assert len(entries[0]["commit"]) == 40  # the checkout's HEAD
    assert entries[0]["machine"] == machine()
    assert entries[0]["machine"]["cpus"] >= 1
