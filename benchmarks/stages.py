"""Benchmark: seconds and peak memory of profiles, segments, training and scoring at 10^6 and 10^7 events.

For each size (``--events``), a clean lake of ``--days`` days is written directly in the
cleaner's partitioned Parquet layout by the vectorised generator (``simulation.bulk``,
run in a child process so its memory is not counted below), with users = events /
``--events-per-user`` and items = events / ``--events-per-item``, plus the users, items and
campaigns snapshots, which ``load_reference`` loads as the daily DAG does. A Spark count of the
lookback window checks that the stages will see every generated event. Then the functions the
daily DAG's tasks call run in order, each timed:

- **profiles**: ``jobs.profiles.job.build_profiles`` (read the lake, build and cache the profiles);
- **segments**: ``jobs.profiles.job.segment_and_store`` (K-means for each k, describe, write
  profiles and segments to PostgreSQL); the two make up the ``build_profiles`` task;
- **training**: ``jobs.recs.job.train_and_evaluate`` with the configured trainer (SVD by
  default): implicit ratings, the hold-out model and its metrics, the final model;
- **scoring**: ``jobs.recs.job.publish_recommendations``: top-N for every user and its
  publication (COPY and swap).

While a stage runs, a thread samples every ``--sample-seconds`` the resident memory (RSS) of
this process (the Spark driver's Python side) and of all its descendants: the Spark JVM
(``java``) and the rest (Python workers). Each stage reports its peak of the sum (shared pages
count once per process, so the sum errs high) and the peak of each part. The JVM lives across
stages and sizes, so its figure is the heap it has grown to so far, bounded by
``spark.driver.memory``.

Every figure is printed as it is measured (``label value unit``); the last line is one JSON
object with all of them. Without ``--database-url`` it runs in its own sandbox (``.local/
bench-stages``, embedded PostgreSQL); either way it EMPTIES every ``push.*`` table and the
sandbox's lake first.

``python -m benchmarks.stages --events 1000000 10000000`` (``make bench-stages``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psutil
from sqlalchemy import text

from benchmarks.figures import Report, record
from devenv.localdb import start_sandbox
from jobs.core.config import PROJECT_ROOT, to_sqlalchemy_url

AS_OF = datetime(2026, 11, 25, tzinfo=UTC)
STAGES = ("profiles", "segments", "training", "scoring")
MB = 1024 * 1024


@dataclass
class PeakMemory:
    """Peak RSS (bytes) of this process, its Spark JVM and its other descendants, sampled in a thread."""

    interval: float = 0.2
    total: int = 0
    driver: int = 0
    jvm: int = 0
    workers: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        me = psutil.Process()
        driver, jvm, workers = me.memory_info().rss, 0, 0
        for child in me.children(recursive=True):
            try:
                rss, name = child.memory_info().rss, child.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue  # ended between listing and reading
            if name == "java":
                jvm += rss
            else:
                workers += rss
        self.total = max(self.total, driver + jvm + workers)
        self.driver, self.jvm, self.workers = max(self.driver, driver), max(self.jvm, jvm), max(self.workers, workers)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def scale_of(events: int, events_per_user: int, events_per_item: int) -> tuple[int, int]:
    """(users, items) for ``events``: the shop grows with its traffic (at least 50 items)."""
    return max(events // events_per_user, 10), max(events // events_per_item, 50)


def time_stage(report: Report, events: int, stage: str, interval: float, run):
    """Run one stage under the memory sampler; report seconds, events/s and peaks; return its result."""
    with PeakMemory(interval) as peak:
        started = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - started
    key = f"{stage}_{events}"
    report(f"{key}_seconds", round(seconds, 2), "s")
    report(f"{key}_events_per_second", round(events / seconds), "events/s")
    report(f"{key}_peak_rss_mb", round(peak.total / MB), "MB", "(driver + JVM + workers, sampled together)")
    report(f"{key}_peak_driver_mb", round(peak.driver / MB), "MB", "(Python driver)")
    report(f"{key}_peak_jvm_mb", round(peak.jvm / MB), "MB", "(Spark JVM)")
    report(f"{key}_peak_workers_mb", round(peak.workers / MB), "MB", "(other children: Python workers)")
    report(f"{key}_memory_samples", peak.samples, "samples")
    return result, seconds


def generate(settings, events: int, users: int, items: int, days: int, seed: int) -> dict:
    """Write the size's lake and snapshots in a child process (its memory stays out of the stages')."""
    command = [
        sys.executable,
        "-m",
        "simulation.bulk",
        *("--events", str(events), "--users", str(users), "--items", str(items), "--days", str(days)),
        *("--end", AS_OF.date().isoformat(), "--seed", str(seed)),
        *("--landing-dir", str(settings.landing_dir), "--clean-dir", str(settings.clean_dir)),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True, cwd=PROJECT_ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _force_promotion(url: str, as_of: datetime) -> dict:
    """The gate's verdict on the date's model run; a refused run is promoted here anyway.

    Scoring only runs for a promoted model, and this benchmark times scoring whatever the gate
    thought of the model on generated data (the verdict is printed next to the figures).
    """
    from jobs.core.db import make_engine
    from jobs.recs.job import run_id_for

    run_id = run_id_for(as_of)
    with make_engine(url).begin() as conn:
        run = conn.execute(
            text("SELECT promoted, decision, metrics->>'model' AS model FROM push.model_runs WHERE run_id = :r"),
            {"r": run_id},
        ).one()
        if not run.promoted:
            conn.execute(text("UPDATE push.model_runs SET promoted = true WHERE run_id = :r"), {"r": run_id})
    forced = "" if run.promoted else "; promoted here to time scoring"
    return {"promoted": run.promoted, "decision": f"(model {run.model}: {run.decision}{forced})"}


def run_scale(spark, settings, url: str, events: int, args, report: Report) -> dict:
    """Generate one size, then time the four stages on it; return its figures."""
    from jobs.core.db import make_engine, truncate_pipeline_tables
    from jobs.ingest.lake import lookback_events
    from jobs.ingest.reference import load_reference
    from jobs.profiles.job import build_profiles, segment_and_store
    from jobs.recs.job import publish_recommendations, train_and_evaluate

    truncate_pipeline_tables(make_engine(url))
    for folder in (settings.landing_dir, settings.lake_dir):
        shutil.rmtree(folder, ignore_errors=True)
    users, items = scale_of(events, args.events_per_user, args.events_per_item)
    print(f"\n{events:,} events, {users:,} users, {items:,} items, {args.days} days", flush=True)
    data = generate(settings, events, users, items, args.days, args.seed)
    report(f"generate_{events}_seconds", data["seconds"], "s", "(child process, not a stage)")
    started = time.perf_counter()
    loaded = load_reference(settings, AS_OF)
    report(f"load_reference_{events}_seconds", round(time.perf_counter() - started, 2), "s", "(not a stage)")
    in_lake = report(f"lake_events_{events}", lookback_events(spark, settings, AS_OF).count(), "events")
    if in_lake != data["events"]:
        raise SystemExit(f"the stages would read {in_lake} events of the {data['events']} generated")

    seconds = {}
    active, seconds["profiles"] = time_stage(
        report, events, "profiles", args.sample_seconds, lambda: build_profiles(spark, settings, AS_OF)
    )
    profiles, seconds["segments"] = time_stage(
        report, events, "segments", args.sample_seconds, lambda: segment_and_store(settings, AS_OF, active)
    )
    model, seconds["training"] = time_stage(
        report, events, "training", args.sample_seconds, lambda: train_and_evaluate(spark, settings, AS_OF)
    )
    gate = _force_promotion(url, AS_OF)
    report(f"training_{events}_promoted", str(gate["promoted"]).lower(), "(bool)", gate["decision"])
    published, seconds["scoring"] = time_stage(
        report, events, "scoring", args.sample_seconds, lambda: publish_recommendations(settings, AS_OF)
    )
    report(f"profiles_{events}_rows", profiles["profiles"], "users")
    report(f"segments_{events}_k", profiles["k"], "segments")
    report(f"training_{events}_ratings", model["ratings"], "pairs")
    report(f"scoring_{events}_rows", published["rows"], "recommendations", f"({published['users']} users)")
    return {
        "generated": data,
        "loaded": loaded,
        "lake_events": in_lake,
        "seconds": {stage: round(s, 2) for stage, s in seconds.items()},
        "profiles": profiles["profiles"],
        "segments_k": profiles["k"],
        "ratings": model["ratings"],
        "ndcg": model["metrics"].get(f"ndcg@{settings.eval_k}"),
        "published_users": published["users"],
        "published_rows": published["rows"],
    }


def growth(runs: dict[int, dict]) -> dict[str, float]:
    """Time ratio of each stage from the smallest to the largest size (equal to the event ratio = linear)."""
    small, large = min(runs), max(runs)
    return {stage: round(runs[large]["seconds"][stage] / runs[small]["seconds"][stage], 2) for stage in STAGES}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--events-per-user", type=int, default=50)
    parser.add_argument("--events-per-item", type=int, default=500)
    parser.add_argument("--days", type=int, default=14, help="days of events (within the lookback window)")
    parser.add_argument("--sample-seconds", type=float, default=0.2, help="memory sampling interval")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database-url", default=None, help="run against this database instead of a sandbox")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = to_sqlalchemy_url(args.database_url) if args.database_url else start_sandbox("bench-stages")
    from jobs.core.db import apply_migrations, make_engine

    apply_migrations(make_engine(url))
    os.environ["PUSH_DATABASE_URL"] = url
    from jobs.core.config import Settings
    from jobs.core.spark import get_spark

    settings = Settings.from_env()
    if args.days > settings.lookback_days:
        raise SystemExit(f"--days {args.days} exceeds the lookback window ({settings.lookback_days} days)")
    report = Report()
    report("cpu_count", os.cpu_count(), "cpus")
    report("memory_total_mb", round(psutil.virtual_memory().total / MB), "MB")
    started = time.perf_counter()
    spark = get_spark(settings)
    report("spark_start_seconds", round(time.perf_counter() - started, 2), "s", "(not a stage)")
    runs = {events: run_scale(spark, settings, url, events, args, report) for events in sorted(set(args.events))}

    print(f"\n{'stage':<10}{'events':>12}{'seconds':>10}{'events/s':>12}{'peak MB':>9}{'JVM MB':>8}{'driver MB':>10}")
    for stage in STAGES:
        for events in runs:
            key = f"{stage}_{events}"
            print(
                f"{stage:<10}{events:>12,}{report.figures[f'{key}_seconds']:>10}"
                f"{report.figures[f'{key}_events_per_second']:>12,}{report.figures[f'{key}_peak_rss_mb']:>9}"
                f"{report.figures[f'{key}_peak_jvm_mb']:>8}{report.figures[f'{key}_peak_driver_mb']:>10}",
                flush=True,
            )
    ratios = growth(runs) if len(runs) > 1 else {}
    for stage, ratio in ratios.items():
        report(f"{stage}_time_growth", ratio, "x", f"(events x{max(runs) / min(runs):g})")
    record(
        "bench-stages",
        {
            "scale": {k: v for k, v in vars(args).items() if k != "database_url"},
            "settings": {
                "spark_master": settings.spark_master,
                "spark_driver_memory": settings.spark_driver_memory,
                "trainer": settings.recs_trainer,
                "svd_factors": settings.svd_factors,
                "svd_epochs": settings.svd_epochs,
                "top_n": settings.top_n,
            },
            "runs": {str(events): run for events, run in runs.items()},
            "growth": ratios,
            "figures": report.figures,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
