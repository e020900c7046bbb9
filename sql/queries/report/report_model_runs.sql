-- Evaluation report: every model run up to :until (NULL = all), oldest first, with the metrics of
-- the model and of the popularity baseline on the same chronological hold-out.
SELECT run_id, as_of, algorithm, metrics, baseline_metrics, promoted, decision
FROM push.model_runs
WHERE as_of <= CAST(timezone('UTC', coalesce(CAST(:until AS timestamptz), 'infinity')) AS date)
ORDER BY as_of, run_id;
