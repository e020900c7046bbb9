-- The stream records the landing files it could not read (a corrupt or truncated gzip) in
-- push.quarantined_files, as the batch cleaner does, and counts them on the batch's row:
-- the files the source gave the batch = files (read) + files_quarantined.
ALTER TABLE push.stream_batches
    ADD COLUMN files_quarantined integer NOT NULL DEFAULT 0,
    ADD COLUMN quarantined_files text[] NOT NULL DEFAULT '{}';
