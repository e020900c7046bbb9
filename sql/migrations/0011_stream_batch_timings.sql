-- Where a micro-batch's time goes, kept per batch so that latency can be explained from the table.
--
-- writer_ms: the foreachBatch writer's own phases (account: the Spark actions and collect of the
-- batch; store: the effects' transaction; plan: the policy engine; relay: the outbox relay).
-- spark_ms: Spark's progress report durationMs (triggerExecution, latestOffset, getBatch,
-- queryPlanning, addBatch - which contains the writer -, walCommit, commitOffsets).
ALTER TABLE push.stream_batches ADD COLUMN writer_ms jsonb, ADD COLUMN spark_ms jsonb;
