"""The stages benchmark at tiny scale, in-process, on the test session's database and Spark.

Checks the shape and the accounting of its report, never a timing.
"""

from __future__ import annotations

import json

from benchmarks import stages as bench_stages


def test_benchmark_times_every_stage_with_consistent_counts(spark, empty_db, tmp_path, monkeypatch, capsys):
    url = empty_db.url.render_as_string(hide_password=False)
    # main() sets PUSH_DATABASE_URL for the rest of the process; its lake goes to a folder of its own.
    monkeypatch.setenv("PUSH_DATABASE_URL", url)
    monkeypatch.setenv("PUSH_LOCAL_DIR", str(tmp_path))
    argv = ["--database-url", url, "--events", "10000", "--events-per-item", "100", "--days", "2", "--seed", "7"]
    assert bench_stages.main(argv) == 0

    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    run = summary["runs"]["10000"]
    generated = run["generated"]
    assert generated["events"] == run["lake_events"] == 10000
    assert (generated["users"], generated["items"]) == (200, 100)
    assert generated["leaves"] >= 2 * 24
    # Every user with an item event gets a profile; every interacted pair one rating.
    assert run["profiles"] == generated["active_users"]
    assert run["ratings"] == generated["interacted_pairs"]
    assert run["segments_k"] >= 2
    # Every user in the snapshot gets exactly top_n recommendations.
    assert run["published_users"] == generated["users"]
    assert run["published_rows"] == generated["users"] * summary["settings"]["top_n"]
    assert set(generated["by_type"]) >= {"view", "click", "add_to_cart", "purchase", "search"}

    figures = summary["figures"]
    for stage in bench_stages.STAGES:
        assert run["seconds"][stage] > 0
        assert figures[f"{stage}_10000_events_per_second"] > 0
        assert figures[f"{stage}_10000_memory_samples"] >= 2
        assert figures[f"{stage}_10000_peak_jvm_mb"] > 0
        assert figures[f"{stage}_10000_peak_driver_mb"] > 0
        assert figures[f"{stage}_10000_peak_rss_mb"] >= figures[f"{stage}_10000_peak_jvm_mb"]
    assert figures["training_10000_promoted"] in ("true", "false")  # scoring is timed either way
    assert summary["growth"] == {}
    # Every figure in the JSON was printed as a "label value unit" line while measuring.
    printed = {line.split(" ", 1)[0] for line in lines[:-1]}
    assert set(figures) <= printed


def test_peak_memory_counts_this_process():
    with bench_stages.PeakMemory(interval=0.01) as peak:
        block = bytearray(64 * bench_stages.MB)
        block[::4096] = b"x" * len(block[::4096])
    assert peak.samples >= 2
    assert peak.driver >= 64 * bench_stages.MB
    assert peak.total >= peak.driver


def test_growth_is_the_time_ratio_of_the_largest_to_the_smallest_size():
    runs = {
        10: {"seconds": dict.fromkeys(bench_stages.STAGES, 2.0)},
        100: {"seconds": dict.fromkeys(bench_stages.STAGES, 5.0)},
    }
    assert bench_stages.growth(runs) == dict.fromkeys(bench_stages.STAGES, 2.5)
