"""The daily train -> gate -> publish stages with the ALS trainer selected by configuration."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from jobs.generate.synthetic import GeneratorConfig, generate
from jobs.ingest.clean import clean_window
from jobs.ingest.reference import load_reference
from jobs.recs.job import publish_recommendations, train_and_evaluate

AS_OF = datetime(2026, 11, 25, tzinfo=UTC)


def test_als_run_is_recorded_gated_and_published(settings, empty_db, spark):
    for folder in (settings.landing_dir, settings.lake_dir):
        shutil.rmtree(folder, ignore_errors=True)
    generate(GeneratorConfig(users=60, items=50, days=2, seed=4, end_date=date(2026, 11, 24)), settings.landing_dir)
    load_reference(settings, AS_OF)
    clean_window(spark, settings, AS_OF - timedelta(days=2), AS_OF)
    als = replace(settings, recs_trainer="als", als_rank=8, als_iterations=5)

    summary = train_and_evaluate(spark, als, AS_OF)
    with empty_db.connect() as conn:
        run = conn.execute(text("SELECT * FROM push.model_runs WHERE run_id = :r"), {"r": summary["run_id"]}).one()
    assert run.algorithm == "spark_als"
    assert run.params["trainer"] == "als"
    assert run.params["rank"] == 8
    assert run.artifact_path.endswith(".npz")
    assert (run.train_start, run.train_end) == (AS_OF - timedelta(days=settings.lookback_days), AS_OF)
    k = settings.eval_k
    for metrics in (run.metrics, run.baseline_metrics):
        assert {f"ndcg@{k}", f"map@{k}", "coverage", "diversity", "category_diversity", "novelty"} <= set(metrics)
    assert "rmse" not in run.metrics
    assert run.promoted  # no live model yet
    assert run.metrics[f"ndcg@{k}"] > run.baseline_metrics[f"ndcg@{k}"]

    published = publish_recommendations(als, AS_OF)
    assert published["published"]
    with empty_db.connect() as conn:
        per_user = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE n <> :n), count(*) FROM"
                " (SELECT user_id, count(*) AS n FROM push.recommendations WHERE run_id = :r GROUP BY 1) t"
            ),
            {"n": settings.top_n, "r": summary["run_id"]},
        ).one()
    assert per_user == (0, published["users"])
    assert set(published["by_source"]) <= {"als", "segment_popular", "popular"}
    assert published["by_source"]["als"] > 0
