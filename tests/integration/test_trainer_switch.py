"""The daily train -> gate -> publish stages: the ALS trainer selected by configuration, and what
a refused model publishes with and without an earlier promoted one."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from jobs.ingest.clean import clean_window
from jobs.ingest.reference import load_reference
from jobs.recs.job import publish_recommendations, train_and_evaluate
from simulation.synthetic import GeneratorConfig, generate

pytestmark = pytest.mark.slow

AS_OF = datetime(2026, 11, 25, tzinfo=UTC)


def _clean_two_days(settings, spark) -> None:
    for folder in (settings.landing_dir, settings.lake_dir):
        shutil.rmtree(folder, ignore_errors=True)
    generate(GeneratorConfig(users=60, items=50, days=2, seed=4, end_date=date(2026, 11, 24)), settings.landing_dir)
    load_reference(settings, AS_OF)
    clean_window(spark, settings, AS_OF - timedelta(days=2), AS_OF)


def _per_user_counts(engine, run_id: str, n: int) -> tuple[int, int]:
    """(users without exactly ``n`` rows, users) in the run's published set."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE n <> :n), count(*) FROM"
                " (SELECT user_id, count(*) AS n FROM push.recommendations WHERE run_id = :r GROUP BY 1) t"
            ),
            {"n": n, "r": run_id},
        ).one()


def _live(engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT run_id FROM push.published_recommendations")).scalar_one_or_none()


def test_als_run_is_recorded_gated_and_published(settings, empty_db, spark):
    _clean_two_days(settings, spark)
    als = replace(settings, recs_trainer="als", recs_models=("svd",), svd_tuning="config", als_rank=8, als_iterations=5)

    summary = train_and_evaluate(spark, als, AS_OF)
    with empty_db.connect() as conn:
        run = conn.execute(text("SELECT * FROM push.model_runs WHERE run_id = :r"), {"r": summary["run_id"]}).one()
    assert run.algorithm == "als"
    assert run.params["model"]["family"] == "als"
    assert run.params["model"]["params"]["rank"] == 8
    assert run.params["selection"]["validation"] is None  # one family, configured: nothing to choose
    assert run.artifact_path.endswith("model.json")
    assert (Path(run.artifact_path).parent / "model-als.npz").exists()
    assert (run.train_start, run.train_end) == (AS_OF - timedelta(days=settings.lookback_days), AS_OF)
    k = settings.eval_k
    for metrics in (run.metrics, run.baseline_metrics):
        assert {f"ndcg@{k}", f"map@{k}", "coverage", "diversity", "category_diversity", "novelty"} <= set(metrics)
    assert "rmse" not in run.metrics
    assert run.promoted  # no live model yet
    assert run.metrics[f"ndcg@{k}"] > run.baseline_metrics[f"ndcg@{k}"]

    published = publish_recommendations(als, AS_OF)
    assert published["published"]
    assert published["model"]
    assert _per_user_counts(empty_db, summary["run_id"], settings.top_n) == (0, published["users"])
    assert set(published["by_source"]) <= {"als", "new_item", "demographic", "segment_popular", "popular"}
    assert published["by_source"]["als"] > 0


def test_a_refused_first_model_publishes_popularity_and_a_later_refusal_keeps_the_live_model(settings, empty_db, spark):
    _clean_two_days(settings, spark)
    als = replace(settings, recs_trainer="als", recs_models=("svd",), svd_tuning="config", als_rank=8, als_iterations=5)
    # A tolerance of -100 asks for 101 times the baseline's NDCG, above 1: the gate must refuse.
    strict = replace(als, promotion_tolerance=-100.0)
    first, second, third = AS_OF, AS_OF + timedelta(days=1), AS_OF + timedelta(days=2)

    refused = train_and_evaluate(spark, strict, first)
    # The bar is above what NDCG can reach only while the baseline scores above 1/101.
    assert refused["baseline"][f"ndcg@{settings.eval_k}"] > 0.01
    assert not refused["promoted"]
    assert refused["popularity_fallback"]
    assert "no model promoted yet" in refused["decision"]
    published = publish_recommendations(strict, first)
    assert published["published"]
    assert not published["model"]
    # No model: popularity, and the demographic prior for new users who consented to profiling.
    assert set(published["by_source"]) <= {"demographic", "segment_popular", "popular"}
    assert _per_user_counts(empty_db, refused["run_id"], settings.top_n) == (0, published["users"])
    assert _live(empty_db) == refused["run_id"]

    promoted = train_and_evaluate(spark, als, second)
    assert promoted["promoted"]
    assert publish_recommendations(als, second)["model"]
    assert _live(empty_db) == promoted["run_id"]

    # Refused after a promotion: nothing published, the promoted set stays live.
    later = train_and_evaluate(spark, strict, third)
    assert not later["promoted"]
    assert not later["popularity_fallback"]
    assert "kept live model" in later["decision"]
    assert publish_recommendations(strict, third) == {"run_id": later["run_id"], "published": False, "users": 0}
    assert _live(empty_db) == promoted["run_id"]

    # Re-publishing the first date gives its popularity set again, and never replaces a newer live set.
    with empty_db.connect() as conn:
        before = conn.execute(
            text("SELECT * FROM push.recommendations WHERE run_id = :r ORDER BY 2, 3"), {"r": refused["run_id"]}
        ).all()
    again = publish_recommendations(strict, first)
    assert (again["published"], again["model"], again["live"]) == (True, False, False)
    with empty_db.connect() as conn:
        after = conn.execute(
            text("SELECT * FROM push.recommendations WHERE run_id = :r ORDER BY 2, 3"), {"r": refused["run_id"]}
        ).all()
    assert after == before
    assert _live(empty_db) == promoted["run_id"]
