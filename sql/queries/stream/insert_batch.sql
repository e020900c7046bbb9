INSERT INTO push.stream_batches (query_id, batch_id, run_key, logical_at, watermark, input_rows, clean_rows,
    quarantined_rows, duplicate_rows, late_rows, by_reason, files, source_files, first_landed_at, last_landed_at,
    triggers, trigger_keys, trigger_users, started_at, stored_at, files_quarantined, quarantined_files)
VALUES (:query_id, :batch_id, :run_key, :logical_at, :watermark, :input_rows, :clean_rows, :quarantined_rows,
    :duplicate_rows, :late_rows, CAST(:by_reason AS jsonb), :files, :source_files, :first_landed_at, :last_landed_at,
    :triggers, :trigger_keys, :trigger_users, :started_at, clock_timestamp(), :files_quarantined, :quarantined_files)
