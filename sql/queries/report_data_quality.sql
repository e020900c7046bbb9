-- Evaluation report: one row per cleaned window ending by :until (NULL = all), oldest first, with
-- its accounting (input = clean + quarantined + duplicates) and the result of its validation
-- suites (NULL when no suite ran on that window).
SELECT i.window_start, i.window_end, i.input_rows, i.clean_rows, i.quarantined_rows, i.duplicate_rows,
       i.by_reason, v.suites, v.validated, v.failed_expectations
FROM push.ingest_runs i
LEFT JOIN LATERAL (
    SELECT count(*) AS suites, bool_and(s.success) AS validated, sum(s.failed) AS failed_expectations
    FROM push.validation_runs s
    WHERE s.window_start = i.window_start AND s.window_end = i.window_end
) AS v ON v.suites > 0
WHERE i.window_end <= coalesce(CAST(:until AS timestamptz), 'infinity')
ORDER BY i.window_end, i.window_start;
