-- Foundation schema. The pipeline's tables live in schema "push"; analysts read the views in
-- schema "analytics". PII (addresses, names) lives only in push.users.
CREATE SCHEMA IF NOT EXISTS push;
CREATE SCHEMA IF NOT EXISTS analytics;

-- Reference data (snapshots loaded by the daily DAG) ---------------------------------------
CREATE TABLE push.users (
    user_id         text PRIMARY KEY,
    email           text,
    phone           text,
    push_token      text,
    timezone        text NOT NULL DEFAULT 'UTC',
    locale          text NOT NULL DEFAULT 'en',
    signup_date     date,
    consent_email   boolean NOT NULL DEFAULT false,
    consent_sms     boolean NOT NULL DEFAULT false,
    consent_push    boolean NOT NULL DEFAULT false,
    consent_webhook boolean NOT NULL DEFAULT false
);

CREATE TABLE push.items (
    item_id   text PRIMARY KEY,
    title     text NOT NULL,
    category  text NOT NULL,
    brand     text NOT NULL,
    price     numeric(12, 2) NOT NULL CHECK (price >= 0),
    in_stock  boolean NOT NULL DEFAULT true
);

CREATE TABLE push.campaigns (
    campaign_id     text PRIMARY KEY,
    name            text NOT NULL,
    target_category text,
    discount_text   text,
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz NOT NULL,
    priority        integer NOT NULL DEFAULT 0,
    channels        text[] NOT NULL,
    transactional   boolean NOT NULL DEFAULT false
);

-- Ingestion ------------------------------------------------------------------------------
-- One row per cleaned window; input_rows = clean_rows + quarantined_rows + duplicate_rows.
CREATE TABLE push.ingest_runs (
    window_start     timestamptz NOT NULL,
    window_end       timestamptz NOT NULL,
    input_rows       bigint NOT NULL,
    clean_rows       bigint NOT NULL,
    quarantined_rows bigint NOT NULL,
    duplicate_rows   bigint NOT NULL,
    by_reason        jsonb NOT NULL,
    PRIMARY KEY (window_start, window_end),
    CHECK (input_rows = clean_rows + quarantined_rows + duplicate_rows)
);

CREATE TABLE push.quarantine (
    window_start timestamptz NOT NULL,
    source_file  text NOT NULL,
    line_no      bigint,
    reason       text NOT NULL,
    raw          text
);
CREATE INDEX quarantine_window ON push.quarantine (window_start);

CREATE TABLE push.validation_runs (
    suite        text NOT NULL,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    success      boolean NOT NULL,
    evaluated    integer NOT NULL,
    failed       integer NOT NULL,
    failures     jsonb NOT NULL,
    PRIMARY KEY (suite, window_start, window_end)
);

CREATE TABLE push.daily_event_summary (
    event_date date NOT NULL,
    event_type text NOT NULL,
    category   text NOT NULL,
    events     bigint NOT NULL,
    users      bigint NOT NULL,
    PRIMARY KEY (event_date, event_type, category)
);

-- Profiles and segments --------------------------------------------------------------------
CREATE TABLE push.user_profiles (
    as_of              date NOT NULL,
    user_id            text NOT NULL,
    top_categories     text[] NOT NULL,
    top_brands         text[] NOT NULL,
    category_affinity  jsonb NOT NULL,
    price_level        double precision NOT NULL,
    recency_days       double precision NOT NULL,
    frequency          bigint NOT NULL,
    monetary           double precision NOT NULL,
    active_days        integer NOT NULL,
    preferred_hour     integer NOT NULL,
    preferred_weekday  integer NOT NULL,
    segment            integer,
    PRIMARY KEY (as_of, user_id)
);

CREATE TABLE push.segments (
    as_of           date NOT NULL,
    segment         integer NOT NULL,
    size            integer NOT NULL,
    top_categories  text[] NOT NULL,
    avg_price_level double precision NOT NULL,
    avg_frequency   double precision NOT NULL,
    description     text NOT NULL,
    silhouette      double precision NOT NULL,
    PRIMARY KEY (as_of, segment)
);

-- Recommendations --------------------------------------------------------------------------
CREATE TABLE push.model_runs (
    run_id           text PRIMARY KEY,
    as_of            date NOT NULL,
    algorithm        text NOT NULL,
    params           jsonb NOT NULL,
    train_start      timestamptz NOT NULL,
    train_end        timestamptz NOT NULL,
    metrics          jsonb NOT NULL,
    baseline_metrics jsonb NOT NULL,
    artifact_path    text NOT NULL,
    promoted         boolean NOT NULL,
    decision         text NOT NULL
);

CREATE TABLE push.recommendations (
    run_id  text NOT NULL REFERENCES push.model_runs (run_id) ON DELETE CASCADE,
    user_id text NOT NULL,
    rank    integer NOT NULL CHECK (rank >= 1),
    item_id text NOT NULL,
    score   double precision NOT NULL,
    source  text NOT NULL,
    reason  text NOT NULL,
    PRIMARY KEY (run_id, user_id, rank)
);

-- Which recommendation run is live: swapped in one transaction, so readers see the old or
-- the new set, never a mix.
CREATE TABLE push.published_recommendations (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    run_id       text NOT NULL REFERENCES push.model_runs (run_id),
    published_for date NOT NULL
);

-- Notifications -----------------------------------------------------------------------------
-- The outbox: one row per message that passed the policy, keyed by its idempotency key.
CREATE TABLE push.notification_ledger (
    idempotency_key text PRIMARY KEY,
    run_key         text NOT NULL,
    user_id         text NOT NULL,
    channel         text NOT NULL,
    source          text NOT NULL,
    item_id         text,
    scheduled_at    timestamptz NOT NULL,
    transactional   boolean NOT NULL DEFAULT false,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    sent_at         timestamptz,
    last_error      text
);
CREATE INDEX notification_ledger_user_time ON push.notification_ledger (user_id, scheduled_at);
CREATE INDEX notification_ledger_pending ON push.notification_ledger (status) WHERE status = 'pending';

-- Every decision with its reason, one row per (run, candidate).
CREATE TABLE push.notification_decisions (
    run_key         text NOT NULL,
    user_id         text NOT NULL,
    candidate_key   text NOT NULL,
    source          text NOT NULL,
    item_id         text,
    channel         text,
    expected_value  double precision NOT NULL,
    decision        text NOT NULL,
    idempotency_key text NOT NULL,
    decided_at      timestamptz NOT NULL,
    PRIMARY KEY (run_key, user_id, candidate_key)
);

-- Views for analysts ------------------------------------------------------------------------
CREATE VIEW analytics.current_recommendations AS
SELECT r.user_id, r.rank, r.item_id, i.title, i.category, i.price, r.score, r.source, r.reason, r.run_id
FROM push.published_recommendations p
JOIN push.recommendations r ON r.run_id = p.run_id
JOIN push.items i ON i.item_id = r.item_id;

CREATE VIEW analytics.notification_outcomes AS
SELECT date_trunc('day', decided_at)::date AS day, run_key, channel, decision, count(*) AS decisions
FROM push.notification_decisions
GROUP BY 1, 2, 3, 4;

CREATE VIEW analytics.ingest_accounting AS
SELECT window_start, window_end, input_rows, clean_rows, quarantined_rows, duplicate_rows, by_reason,
       round(100.0 * quarantined_rows / nullif(input_rows, 0), 3) AS quarantined_percent
FROM push.ingest_runs;
