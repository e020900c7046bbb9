-- For analysts: which landing files were not read, and why (paths only, no event content).
CREATE OR REPLACE VIEW analytics.quarantined_files AS
SELECT window_start, window_end, landing_hour, source_file, size_bytes, reason, error, partial, lines_read
FROM push.quarantined_files;
