"""Benchmark: seconds per stage of the daily pipeline at a chosen scale.

Runs the same stage functions the DAG tasks call, on a generated data set, in its own
folder and database (``.local/bench``), and prints what it measured. Fixed overheads are
reported on their own: Spark session start, and Airflow start (importing Airflow and parsing
the project's DAGs in a fresh interpreter). As a yardstick measured in the same run, plain
single-threaded Python reads and ``json.loads`` every landing line; the cleaning stage is
reported as a ratio to it.

``python -m benchmarks.daily_dag --users 2000 --items 1000 --days 14`` (``make bench``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from benchmarks.figures import record
from jobs.core.config import PROJECT_ROOT
from simulation.synthetic import add_scale_arguments


def _timed(label: str, results: dict, fn, *args):
    started = time.monotonic()
    value = fn(*args)
    results[label] = round(time.monotonic() - started, 2)
    print(f"  {label:<28} {results[label]:>8.2f} s", flush=True)
    return value


def _yardstick(landing: Path) -> int:
    count = 0
    for path in sorted((landing / "events").rglob("*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                json.loads(line)
            count += 1
    return count


def _airflow_start() -> None:
    code = f"from airflow.dag_processing.dagbag import DagBag; DagBag(dag_folder={str(PROJECT_ROOT / 'dags')!r})"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=dict(os.environ))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scale_arguments(parser, users=2000, items=1000, days=14)
    args = parser.parse_args(argv)
    from devenv.localdb import start_sandbox
    from jobs.core.db import apply_migrations, make_engine

    results: dict[str, float] = {}
    # A sandbox of its own: every run starts from a new database and empty folders.
    url = start_sandbox("bench")
    apply_migrations(make_engine(url))
    for folder in ("landing", "lake", "outbox", "gx"):
        shutil.rmtree(Path(os.environ["PUSH_LOCAL_DIR"]) / folder, ignore_errors=True)
    os.environ["PUSH_DATABASE_URL"] = url

    from jobs.core.config import Settings
    from jobs.core.spark import get_spark
    from jobs.ingest.clean import clean_window
    from jobs.ingest.reference import load_reference
    from jobs.ingest.validate import validate_clean_window
    from jobs.notify.plan import plan_notifications
    from jobs.notify.relay import relay_pending
    from jobs.profiles.job import run_profiles
    from jobs.recs.job import publish_recommendations, train_and_evaluate
    from simulation.synthetic import GeneratorConfig, generate

    settings = Settings.from_env()
    as_of = datetime(2026, 11, 25, tzinfo=UTC)
    start = as_of - timedelta(days=args.days)
    print(f"scale: {args.users} users, {args.items} items, {args.days} days (seed {args.seed})")
    print("fixed overheads")
    _timed("airflow_start_and_parse", results, _airflow_start)
    spark = _timed("spark_start", results, get_spark, settings)
    print("data")
    generated = _timed(
        "generate",
        results,
        generate,
        GeneratorConfig(
            users=args.users, items=args.items, days=args.days, seed=args.seed, end_date=date(2026, 11, 24)
        ),
        settings.landing_dir,
    )
    lines = _timed("yardstick_python_json", results, _yardstick, settings.landing_dir)
    print("stages")
    _timed("load_reference", results, load_reference, settings)
    cleaned = _timed("clean_events", results, clean_window, spark, settings, start, as_of)
    _timed("validate_events", results, validate_clean_window, settings, start, as_of)
    _timed("build_profiles", results, run_profiles, spark, settings, as_of)
    model = _timed("train_and_evaluate", results, train_and_evaluate, spark, settings, as_of)
    _timed("publish_recommendations", results, publish_recommendations, settings, as_of)
    _timed("plan_notifications", results, plan_notifications, settings, as_of)
    _timed("relay_notifications", results, relay_pending, settings)
    stages = sum(
        v
        for k, v in results.items()
        if k not in ("airflow_start_and_parse", "spark_start", "generate", "yardstick_python_json")
    )
    summary = {
        "scale": vars(args),
        "event_lines": generated["event_lines"],
        "seconds": results,
        "stages_total_seconds": round(stages, 2),
        "clean_events_per_second": round(cleaned.input_rows / results["clean_events"]),
        "yardstick_lines_per_second": round(lines / max(results["yardstick_python_json"], 1e-6)),
        "clean_vs_yardstick_time_ratio": round(results["clean_events"] / results["yardstick_python_json"], 2),
        "ndcg@k": model["metrics"].get(f"ndcg@{settings.eval_k}"),
        "baseline_ndcg@k": model["baseline"].get(f"ndcg@{settings.eval_k}"),
    }
    record("bench", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
