"""A live model from given ratings, without a daily run: for the stream's tests and benchmark.

``publish_model`` fits EASE on the ratings, records a promoted run trained up to ``train_end``
and publishes it with the real publish step, so the lists and the model files are exactly what
a daily run would leave (only the training window is made up).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import text

from jobs.core.config import Settings
from jobs.core.db import make_engine
from jobs.recs.item_models import EaseParams
from jobs.recs.job import publish_recommendations, ratings_path, run_id_for
from jobs.recs.zoo import ModelSpec, fit_spec, store_fitted


def publish_model(settings: Settings, ratings: pd.DataFrame, as_of: datetime, train_end: datetime) -> str:
    """Fit, record and publish; return the run id. ``ratings`` has the columns training stores."""
    run_id = run_id_for(as_of)
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        catalogue = conn.execute(text("SELECT item_id FROM push.items ORDER BY item_id")).scalars().all()
    spec = ModelSpec("ease", asdict(EaseParams()))
    artifact = store_fitted(fit_spec(spec, ratings, catalogue, None), settings.models_dir / run_id)
    ratings.to_parquet(ratings_path(settings, run_id), index=False)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM push.model_runs WHERE run_id = :r"), {"r": run_id})
        conn.execute(
            text(
                "INSERT INTO push.model_runs (run_id, as_of, algorithm, params, train_start, train_end, metrics,"
                " baseline_metrics, artifact_path, promoted, decision) VALUES (:r, :d, 'ease', CAST(:p AS jsonb),"
                " :start, :end, '{}', '{}', :artifact, true, 'published by simulation.live_model')"
            ),
            {
                "r": run_id,
                "d": as_of.date(),
                "p": json.dumps({"model": spec.to_dict()}),
                "start": train_end - timedelta(days=14),
                "end": train_end,
                "artifact": artifact,
            },
        )
    publish_recommendations(settings, as_of)
    return run_id
