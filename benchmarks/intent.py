"""Benchmark: intent weights chosen on validation vs the hand-set defaults, on generated events.

Two worlds from the event generator, the same but for the dwell: in one a view of an item that
suits the user (its price level and brand) lasts about 12x longer (``dwell_signal`` 2.5), in the
other dwell says nothing (``dwell_signal`` 0). For each, the events go through the real
``pair_evidence`` (Spark), the per-user chronological hold-out is cut as training cuts it, the
weights are searched on the training part alone (``jobs.recs.intent.tune_intent``), and EASE and
item-kNN fitted on the training part are scored on the hold-out with the defaults and with the
chosen weights (NDCG@k, P@k). The second world is the control: weights that only fit noise would
show there as a loss.

``python -m benchmarks.intent [--users 1500 --items 400 --days 14 --seed 42]`` (``make bench-intent``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from benchmarks.figures import Report, record
from jobs.core.config import Settings
from jobs.core.spark import get_spark
from jobs.recs.intent import tune_intent
from jobs.recs.item_models import EaseParams, ItemKnnParams
from jobs.recs.ratings import IntentWeights, chronological_split, of_pairs, pair_evidence, ratings_from_evidence
from jobs.recs.zoo import ModelSpec, evaluate_fitted, fit_spec
from simulation.synthetic import GeneratorConfig, generate

EVENT_SCHEMA = "user_id string, item_id string, event_type string, ts timestamp, dwell_ms long"


def read_events(folder: Path) -> pd.DataFrame:
    """The generated item events (the generator's planted malformed lines are off here)."""
    rows = [json.loads(line) for path in sorted(folder.rglob("*.jsonl")) for line in path.open() if line.strip()]
    frame = pd.DataFrame(rows)
    frame = frame[frame["item_id"].notna()][["user_id", "item_id", "event_type", "ts", "dwell_ms"]]
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).dt.tz_convert(None)
    frame["dwell_ms"] = frame["dwell_ms"].astype("Int64")
    return frame


def measure(spark, config: GeneratorConfig, k: int, report: Report, label: str) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        generate(config, Path(folder))
        events = read_events(Path(folder) / "events")
    frame = spark.createDataFrame(events.astype(object).where(events.notna(), None), EVENT_SCHEMA)
    as_of = datetime.combine(config.end_date + timedelta(days=1), datetime.min.time(), UTC).replace(tzinfo=None)
    evidence = pair_evidence(frame, as_of, 7.0)
    train_pairs, _ = chronological_split(ratings_from_evidence(evidence))
    started = time.monotonic()
    weights, power, chosen = tune_intent(of_pairs(evidence, train_pairs), EaseParams(), ItemKnnParams(), k, 42, 20_000)
    search_seconds = time.monotonic() - started
    result = {
        "dwell_signal": config.dwell_signal,
        "events": len(events),
        "pairs": len(evidence),
        "chosen": chosen,
        "search_seconds": round(search_seconds, 2),
    }
    report(f"{label}: chosen", json.dumps({"weights": weights.to_dict(), "history_power": power}))
    report(f"{label}: search", round(search_seconds, 2), "s")
    for family, params in (("ease", EaseParams()), ("item_knn", ItemKnnParams())):
        for name, use, use_power in (("defaults", IntentWeights(), 0.0), ("chosen", weights, power)):
            ratings = ratings_from_evidence(evidence, use)
            train, test = chronological_split(ratings)
            spec = ModelSpec(family, asdict(replace(params, history_power=use_power)))
            metrics = evaluate_fitted(
                fit_spec(spec, train, sorted(ratings["item_id"].unique()), None), train, test, k, []
            )
            figures = {"ndcg": round(metrics[f"ndcg@{k}"], 4), "p": round(metrics[f"precision@{k}"], 4)}
            result[f"{family}_{name}"] = figures
            report(f"{label}: {family} {name} NDCG@{k}", figures["ndcg"], "", f"P@{k} {figures['p']}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    spark = get_spark(Settings.from_env(), "bench-intent")
    base = GeneratorConfig(
        users=args.users, items=args.items, days=args.days, seed=args.seed, malformed_share=0.0, duplicate_share=0.0
    )
    report = Report()
    result = {
        "users": args.users,
        "items": args.items,
        "days": args.days,
        "k": args.k,
        "dwell_says_taste": measure(spark, base, args.k, report, "dwell says taste"),
        "dwell_says_nothing": measure(spark, replace(base, dwell_signal=0.0), args.k, report, "dwell says nothing"),
    }
    record("intent", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
