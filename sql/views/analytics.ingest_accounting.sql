CREATE OR REPLACE VIEW analytics.ingest_accounting AS
SELECT window_start, window_end, input_rows, clean_rows, quarantined_rows, duplicate_rows, by_reason,
       round(100.0 * quarantined_rows / nullif(input_rows, 0), 3) AS quarantined_percent
FROM push.ingest_runs;
