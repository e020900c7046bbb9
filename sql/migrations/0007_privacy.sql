-- Privacy and access: keyed-hash pseudonyms for analysts, an erasure suppression list, analyst
-- views that carry only pseudonyms, and the read-only role push_analyst. The HMAC key
-- (PUSH_PSEUDONYM_KEY) never enters the database: pseudonyms are computed by the loaders.

-- The pseudonym of every loaded user (HMAC-SHA256 of the user id, 32 hex digits), written by
-- the users loader with the snapshot. Analysts see user_key, never user_id.
CREATE TABLE push.user_pseudonyms (
    user_id  text PRIMARY KEY,
    user_key text NOT NULL UNIQUE
);

-- Erased users: only the keyed hash of the id stays, so that loaders and the cleaner can skip
-- the user's rows in later snapshots and landing files without keeping the id itself.
CREATE TABLE push.erased_users (
    user_key  text PRIMARY KEY,
    erased_at timestamptz NOT NULL,
    removed   jsonb NOT NULL DEFAULT '{}'::jsonb  -- rows and files removed, per table / folder
);

-- Analyst views (pseudonymous) --------------------------------------------------------------
-- The live recommendations with item titles.
CREATE VIEW analytics.latest_recommendations AS
SELECT k.user_key, r.rank, r.item_id, i.title, i.category, i.brand, i.price, i.in_stock, r.score, r.source,
       r.reason, r.run_id, p.published_for
FROM push.published_recommendations p
JOIN push.recommendations r ON r.run_id = p.run_id
JOIN push.user_pseudonyms k ON k.user_id = r.user_id
JOIN push.items i ON i.item_id = r.item_id;

-- Segments as described by the daily run, with their share of the profiled users.
CREATE VIEW analytics.segment_summary AS
SELECT s.as_of, s.segment, s.size,
       round(CAST(s.size AS numeric) / nullif(sum(s.size) OVER (PARTITION BY s.as_of), 0), 4) AS share,
       s.top_categories, s.avg_price_level, s.avg_frequency, s.description, s.silhouette
FROM push.segments s;

-- Profiles by pseudonym (behaviour only: no address, no timezone).
CREATE VIEW analytics.user_profile_facts AS
SELECT p.as_of, k.user_key, p.segment, p.top_categories, p.top_brands, p.price_level, p.recency_days,
       p.frequency, p.monetary, p.active_days, p.preferred_hour, p.preferred_weekday
FROM push.user_profiles p
JOIN push.user_pseudonyms k ON k.user_id = p.user_id;

-- One row per notification decision, with the outbox status and the message's outcome.
CREATE VIEW analytics.notification_facts AS
SELECT k.user_key, d.run_key, d.source, d.campaign_id, d.item_id, d.channel, d.transactional,
       d.expected_value, d.decision, d.decided_at, d.scheduled_at,
       l.status AS outbox_status, l.sent_at, o.opened_at, o.clicked_at, o.converted_at, o.revenue
FROM push.notification_decisions d
JOIN push.user_pseudonyms k ON k.user_id = d.user_id
LEFT JOIN push.notification_ledger l
       ON l.idempotency_key = d.idempotency_key AND d.decision IN ('sent', 'deferred_quiet_hours')
LEFT JOIN push.message_outcomes o ON o.idempotency_key = l.idempotency_key;

-- The read-only analyst role -----------------------------------------------------------------
-- NOLOGIN: grant it to a login role (GRANT push_analyst TO alice). It may use schema analytics
-- and read its views, except views with an identifying column (raw ids, keys, addresses): those
-- are for operators. It has no privilege on schema push, so it can neither read PII nor write.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'push_analyst') THEN
        CREATE ROLE push_analyst NOLOGIN;
    END IF;
END
$$;

CREATE FUNCTION push.analyst_identifying_columns() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['user_id', 'email', 'phone', 'push_token', 'webhook_url', 'idempotency_key', 'candidate_key',
                 'trigger_key', 'trigger_users', 'raw', 'payload', 'notification_id']
$$;

-- (Re)grant SELECT on every relation of schema analytics without an identifying column, and
-- revoke it on the others. Run after each migration (jobs.core.db.apply_migrations does), so a
-- view added later is covered too.
CREATE FUNCTION push.refresh_analyst_grants() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    relation record;
    granted integer := 0;
BEGIN
    REVOKE ALL ON SCHEMA push FROM push_analyst;
    GRANT USAGE ON SCHEMA analytics TO push_analyst;
    FOR relation IN
        SELECT c.oid, c.relname,
               EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                         AND a.attname = ANY (push.analyst_identifying_columns())) AS identifying
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'analytics' AND c.relkind IN ('r', 'v', 'm', 'p', 'f')
    LOOP
        EXECUTE 'REVOKE ALL ON analytics.' || quote_ident(relation.relname) || ' FROM push_analyst';
        IF NOT relation.identifying THEN
            EXECUTE 'GRANT SELECT ON analytics.' || quote_ident(relation.relname) || ' TO push_analyst';
            granted := granted + 1;
        END IF;
    END LOOP;
    RETURN granted;
END
$$;

SELECT push.refresh_analyst_grants();
