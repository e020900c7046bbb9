-- Real-time path (jobs.stream): per micro-batch metrics and ownership, stream-quarantined lines.

-- One row per micro-batch of the streaming job. The row is written in the same transaction as
-- the batch's triggers, quarantine rows and interactions, so its presence means "this batch's
-- effects are stored": a replay of the batch after a crash finds it and only finishes planning.
CREATE TABLE push.stream_batches (
    query_id              text NOT NULL,        -- Spark's query id, kept in the checkpoint
    batch_id              bigint NOT NULL,
    run_key               text NOT NULL,        -- the planning run of this batch's triggers
    logical_at            timestamptz,          -- the batch's decision time (max fire time of its triggers)
    watermark             timestamptz,          -- event-time watermark the batch ran with
    input_rows            bigint NOT NULL,      -- lines read in this batch
    clean_rows            bigint NOT NULL,      -- valid, on time, first delivery
    quarantined_rows      bigint NOT NULL,      -- bad lines, late events and bots
    duplicate_rows        bigint NOT NULL,
    late_rows             bigint NOT NULL,      -- events at or before the watermark
    by_reason             jsonb NOT NULL DEFAULT '{}'::jsonb,
    files                 integer NOT NULL DEFAULT 0,
    source_files          text[] NOT NULL DEFAULT '{}',
    first_landed_at       timestamptz,          -- modification time of the oldest file in the batch
    last_landed_at        timestamptz,
    triggers              integer NOT NULL DEFAULT 0,
    trigger_keys          text[] NOT NULL DEFAULT '{}',
    trigger_users         text[] NOT NULL DEFAULT '{}',
    decisions             jsonb,                -- set once the batch's plan has run
    relayed               jsonb,
    started_at            timestamptz NOT NULL, -- wall clock: foreachBatch began
    stored_at             timestamptz NOT NULL, -- wall clock: effects committed
    recorded_at           timestamptz,          -- wall clock: decisions committed and relayed
    -- From Spark's progress report (filled in after the batch by a query listener).
    input_rows_per_second     double precision,
    processed_rows_per_second double precision,
    duration_ms           bigint,
    state_rows            bigint,
    state_memory_bytes    bigint,
    rows_dropped_by_watermark bigint,
    PRIMARY KEY (query_id, batch_id),
    CHECK (input_rows = clean_rows + quarantined_rows + duplicate_rows)
);
CREATE INDEX stream_batches_recorded ON push.stream_batches (recorded_at);

-- Lines the stream rejected carry the micro-batch that rejected them (NULL: the batch cleaner).
-- A file is read by exactly one micro-batch, so (file, line) identifies a stream row.
ALTER TABLE push.quarantine ADD COLUMN stream_batch bigint;
CREATE UNIQUE INDEX quarantine_stream_line ON push.quarantine (source_file, line_no) WHERE stream_batch IS NOT NULL;
-- The batch cleaner's re-clean of a landing hour replaces only its own rows (stream_batch IS NULL).
