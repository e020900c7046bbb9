-- Whether a model run that the gate refused publishes popularity recommendations instead: set
-- at training time, when no model had been promoted before the run's date, so that the gate's
-- recorded decision and what the publish task does always agree (a re-run of the publish task
-- alone, or one run after other dates were trained, reads the same answer).
ALTER TABLE push.model_runs ADD COLUMN popularity_fallback boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN push.model_runs.popularity_fallback IS
    'refused by the gate with no earlier promoted model: the run publishes popularity recommendations';
