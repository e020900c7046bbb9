-- Hostile input: exact raw bytes for quarantined lines, quarantined files, files in the accounting.

-- The line's exact bytes when its text cannot hold them (invalid UTF-8, or a NUL byte, which
-- PostgreSQL text refuses); raw then holds a readable copy (invalid bytes as U+FFFD, NUL as \u0000).
ALTER TABLE push.quarantine ADD COLUMN raw_bytes bytea;
COMMENT ON COLUMN push.quarantine.raw_bytes IS
    'exact bytes of the line when raw cannot hold them (invalid UTF-8 or NUL); otherwise null';

-- Rejected rows are written by the Spark tasks themselves (never collected to the driver) into
-- this staging table under the run's token, then moved into push.quarantine in the transaction
-- that records the run. Rows of a run that died before that move are replaced by its re-run.
CREATE UNLOGGED TABLE push.quarantine_incoming (
    token        text NOT NULL,
    window_start timestamptz NOT NULL,
    landing_hour timestamptz NOT NULL,
    source_file  text NOT NULL,
    line_no      bigint,
    reason       text NOT NULL,
    raw          text,
    raw_bytes    bytea
);
CREATE INDEX quarantine_incoming_token ON push.quarantine_incoming (token);

-- Landing files that could not be read (or only partly: a truncated gzip keeps its readable
-- prefix, lines_read lines, judged as usual).
CREATE TABLE push.quarantined_files (
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    landing_hour timestamptz NOT NULL,
    source_file  text NOT NULL,
    size_bytes   bigint,
    reason       text NOT NULL,
    error        text NOT NULL,
    partial      boolean NOT NULL,
    lines_read   bigint,
    PRIMARY KEY (window_start, source_file)
);
CREATE INDEX quarantined_files_landing_hour ON push.quarantined_files (landing_hour);

-- files_seen = files_read + files_quarantined (a partly read file counts as read).
ALTER TABLE push.ingest_runs
    ADD COLUMN files_seen integer NOT NULL DEFAULT 0,
    ADD COLUMN files_read integer NOT NULL DEFAULT 0,
    ADD COLUMN files_quarantined integer NOT NULL DEFAULT 0,
    ADD COLUMN files_partial integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT ingest_runs_files_balance CHECK (files_seen = files_read + files_quarantined);

-- For analysts: which landing files were not read, and why (paths only, no event content).
CREATE VIEW analytics.quarantined_files AS
SELECT window_start, window_end, landing_hour, source_file, size_bytes, reason, error, partial, lines_read
FROM push.quarantined_files;
