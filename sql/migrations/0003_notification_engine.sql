-- Notification engine: triggers, campaign targeting, quiet hours and caps per user, send-time
-- estimates, adaptive frequency, delivery attempts and feedback.

-- Reference data ---------------------------------------------------------------------------
ALTER TABLE push.users ADD COLUMN webhook_url text;

ALTER TABLE push.campaigns
    ADD COLUMN target_brand text,
    ADD COLUMN target_items text[];

-- Catalogue changes found when a new snapshot replaces the previous one (price drops and
-- items back in stock); triggers are derived from them.
CREATE TABLE push.item_changes (
    item_id     text NOT NULL,
    change      text NOT NULL CHECK (change IN ('price_drop', 'back_in_stock')),
    detected_at timestamptz NOT NULL,
    old_price   numeric(12, 2),
    new_price   numeric(12, 2),
    PRIMARY KEY (item_id, change, detected_at)
);

-- What each user recently viewed, carted or bought, per item (the input of item triggers).
CREATE TABLE push.recent_interactions (
    user_id           text NOT NULL,
    item_id           text NOT NULL,
    last_viewed_at    timestamptz,
    last_carted_at    timestamptz,
    last_purchased_at timestamptz,
    PRIMARY KEY (user_id, item_id)
);
CREATE INDEX recent_interactions_item ON push.recent_interactions (item_id);

-- Behavioural triggers (batch detector or stream): one row per trigger instance. Its key is
-- part of the idempotency key, so the batch and the stream path never send it twice.
CREATE TABLE push.triggers (
    trigger_key  text PRIMARY KEY,
    user_id      text NOT NULL,
    trigger_type text NOT NULL
        CHECK (trigger_type IN ('cart_abandonment', 'browse_intent', 'price_drop', 'back_in_stock')),
    item_id      text,
    category     text,
    detected_at  timestamptz NOT NULL,
    fire_at      timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    origin       text NOT NULL DEFAULT 'batch',
    cancelled_at timestamptz,
    context      jsonb NOT NULL DEFAULT '{}'::jsonb,
    CHECK (fire_at < expires_at)
);
CREATE INDEX triggers_fire_at ON push.triggers (fire_at);
CREATE INDEX triggers_user ON push.triggers (user_id);

-- Per-user notification state. Planners lock these rows (FOR UPDATE, in user order), which is
-- what serialises two planners deciding for the same user; the adaptive caps live here too.
CREATE TABLE push.notify_user_state (
    user_id         text PRIMARY KEY,
    ignored_streak  integer NOT NULL DEFAULT 0,
    fatigued        boolean NOT NULL DEFAULT false,
    last_engaged_at timestamptz,
    updated_at      timestamptz
);

-- The outbox gains what the relay and the caps need.
ALTER TABLE push.notification_ledger
    ADD COLUMN candidate_key   text,
    ADD COLUMN campaign_id     text,
    ADD COLUMN expected_value  double precision,
    ADD COLUMN expires_at      timestamptz,
    ADD COLUMN next_attempt_at timestamptz,
    ADD COLUMN deferred        boolean NOT NULL DEFAULT false;
ALTER TABLE push.notification_ledger DROP CONSTRAINT notification_ledger_status_check;
ALTER TABLE push.notification_ledger ADD CONSTRAINT notification_ledger_status_check
    CHECK (status IN ('pending', 'sent', 'dead', 'cancelled', 'expired'));
CREATE INDEX notification_ledger_campaign ON push.notification_ledger (campaign_id) WHERE campaign_id IS NOT NULL;

-- Every delivery attempt, so a dead letter shows its whole history.
CREATE TABLE push.delivery_attempts (
    idempotency_key text NOT NULL REFERENCES push.notification_ledger (idempotency_key) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    attempted_at    timestamptz NOT NULL,
    channel         text NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('sent', 'retry', 'dead', 'cancelled', 'expired')),
    error           text,
    PRIMARY KEY (idempotency_key, attempt)
);

ALTER TABLE push.notification_decisions
    ADD COLUMN campaign_id   text,
    ADD COLUMN transactional boolean NOT NULL DEFAULT false,
    ADD COLUMN scheduled_at  timestamptz;
CREATE INDEX notification_decisions_user ON push.notification_decisions (user_id, decided_at);

-- One row per planning run: its parameters and counts (a run's decisions are immutable once
-- recorded; re-running it decides only for users it has not decided yet).
CREATE TABLE push.notification_runs (
    run_key       text PRIMARY KEY,
    logical_time  timestamptz NOT NULL,
    horizon_hours integer NOT NULL,
    campaign_id   text,
    users         integer NOT NULL,
    decisions     jsonb NOT NULL
);

-- Feedback: notification opens/clicks (by notification id = idempotency key) and purchases,
-- collected from the clean events; attribution and send-time estimates derive from them.
CREATE TABLE push.notification_feedback (
    event_id        text PRIMARY KEY,
    notification_id text,
    user_id         text NOT NULL,
    event_type      text NOT NULL CHECK (event_type IN ('notification_open', 'notification_click', 'purchase')),
    item_id         text,
    revenue         double precision,
    ts              timestamptz NOT NULL
);
CREATE INDEX notification_feedback_user_ts ON push.notification_feedback (user_id, ts);
CREATE INDEX notification_feedback_notification ON push.notification_feedback (notification_id);

-- Send-time optimisation: the best local hour per user and weekday, with its estimated rate
-- (click rate x conversion rate, Beta-Binomial shrunk toward the segment, then global).
CREATE TABLE push.send_time_estimates (
    user_id   text NOT NULL,
    weekday   integer NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    best_hour integer NOT NULL CHECK (best_hour BETWEEN 0 AND 23),
    rate      double precision NOT NULL,
    basis     text NOT NULL CHECK (basis IN ('user', 'segment', 'global', 'activity')),
    PRIMARY KEY (user_id, weekday)
);

-- Policy building blocks, one definition each, used by the batch planner and the stream alike.

-- Stable control-group bucket in [0, 10000): a keyed hash of the user id.
CREATE FUNCTION push.holdout_bucket(user_id text, salt text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT mod(('x' || substr(md5(salt || ':' || user_id), 1, 8))::bit(32)::bigint, 10000)::integer
$$;

-- Deterministic idempotency key per (user, candidate, slot): a retry computes the same key.
-- STABLE like convert_to, so that PostgreSQL inlines it into set-based queries.
CREATE FUNCTION push.idempotency_key(user_id text, candidate_key text, slot text) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT left(encode(sha256(convert_to(user_id || '|' || candidate_key || '|' || slot, 'UTF8')), 'hex'), 32)
$$;

-- When a message due at "due_at" falls in the quiet window [quiet_start, quiet_end) of the
-- user's local time, the end of that window (UTC); NULL when it is not quiet. The window may
-- wrap midnight (22:00-08:00). Local wall-clock arithmetic, so it is right across DST changes.
CREATE FUNCTION push.quiet_hours_end(due_at timestamptz, tz text, quiet_start time, quiet_end time)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN quiet_start = quiet_end THEN NULL
        WHEN quiet_start < quiet_end THEN
            CASE WHEN timezone(tz, due_at)::time >= quiet_start AND timezone(tz, due_at)::time < quiet_end
                 THEN timezone(tz, timezone(tz, due_at)::date + quiet_end) END
        WHEN timezone(tz, due_at)::time >= quiet_start THEN timezone(tz, (timezone(tz, due_at)::date + 1) + quiet_end)
        WHEN timezone(tz, due_at)::time < quiet_end THEN timezone(tz, timezone(tz, due_at)::date + quiet_end)
    END
$$;

-- The frequency rules for one candidate, given what is already used: NULL when it may go,
-- else the reason code of the first rule that binds (the order of the README).
CREATE FUNCTION push.cap_decision(
    exempt boolean, gap_blocked boolean, min_gap_positive boolean, accepted_before integer,
    day_used integer, day_cap integer, week_used integer, week_cap integer,
    channel_used integer, channel_cap integer, campaign_used integer, campaign_cap integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN exempt THEN NULL
        WHEN gap_blocked OR (min_gap_positive AND accepted_before > 0) THEN 'capped_min_gap'
        WHEN day_used + accepted_before >= day_cap THEN 'capped_daily'
        WHEN week_used + accepted_before >= week_cap THEN 'capped_weekly'
        WHEN channel_used >= channel_cap THEN 'capped_channel'
        WHEN campaign_used >= campaign_cap THEN 'capped_campaign'
    END
$$;
