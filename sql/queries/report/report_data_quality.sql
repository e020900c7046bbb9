-- Evaluation report: one row per cleaned window begun before :until (NULL = all; a window is
-- widened to whole hours, so it may end after :until), oldest first, with
-- its accounting (input = clean + quarantined + duplicates) and the result of its validation
-- suites (NULL when no suite ran on that window). Cleaning records the window widened to whole UTC
-- hours, validation the window it was asked for: a suite belongs to the cleaned window its
-- bounds widen to.
SELECT i.window_start, i.window_end, i.input_rows, i.clean_rows, i.quarantined_rows, i.duplicate_rows,
       i.by_reason, v.suites, v.validated, v.failed_expectations
FROM push.ingest_runs i
LEFT JOIN LATERAL (
    SELECT count(*) AS suites, bool_and(s.success) AS validated, sum(s.failed) AS failed_expectations
    FROM push.validation_runs s
    WHERE date_trunc('hour', s.window_start, 'UTC') = i.window_start
      AND date_trunc('hour', s.window_end - interval '1 microsecond', 'UTC') + interval '1 hour' = i.window_end
) AS v ON v.suites > 0
WHERE i.window_start < coalesce(CAST(:until AS timestamptz), 'infinity')
ORDER BY i.window_end, i.window_start;
