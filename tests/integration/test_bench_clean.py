"""The cleaning benchmark's yardstick: the bare Spark pass reads, deduplicates and writes the day."""

from __future__ import annotations

import json

from benchmarks.clean import bare_pass, generate_day


def test_the_bare_pass_writes_each_event_id_of_the_day_once(spark, tmp_path):
    landing, out = tmp_path / "landing", tmp_path / "bare"
    lines = generate_day(landing, 4800, 2, bad_share=0.01, dup_share=0.05, seed=3)
    whole, truncated = set(), 0
    for path in (landing / "events").rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                whole.add(json.loads(line)["event_id"])
            except json.JSONDecodeError:
                truncated += 1
    written = bare_pass(spark, landing, out)
    ids = [r.event_id for r in spark.read.parquet(str(out)).select("event_id").collect()]

    assert lines == 4800
    assert truncated  # truncated lines
    assert len(whole) + truncated < lines  # and re-delivered ones
    assert written == len(ids)
    kept = [i for i in ids if i is not None]
    assert len(kept) == len(set(kept))  # each event id once
    assert set(kept) <= whole
    assert len(kept) >= len(whole) - lines * 0.01  # at most the spoiled lines lose their id
