-- Publishes run one at a time (a transaction-scoped advisory lock, taken before the staging
-- table is made): two swaps that both held the parent's share lock from their staging tables'
-- LIKE and then asked for its exclusive lock would deadlock.
CREATE OR REPLACE FUNCTION push.stage_recommendations(p_run_id text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    staging text := push.recommendation_partition(p_run_id) || '_staging';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('push.publish_recommendations'));
    IF NOT EXISTS (SELECT 1 FROM push.model_runs WHERE run_id = p_run_id) THEN
        RAISE EXCEPTION USING MESSAGE = 'model run ' || p_run_id || ' not found';
    END IF;
    EXECUTE 'DROP TABLE IF EXISTS push.' || quote_ident(staging);
    EXECUTE 'CREATE TABLE push.' || quote_ident(staging)
        || ' (LIKE push.recommendations INCLUDING DEFAULTS INCLUDING CONSTRAINTS, CONSTRAINT '
        || quote_ident(staging || '_run') || ' CHECK (run_id = ' || quote_literal(p_run_id) || '))';
    EXECUTE 'ALTER TABLE push.' || quote_ident(staging) || ' ALTER COLUMN run_id SET DEFAULT '
        || quote_literal(p_run_id);
    RETURN 'push.' || quote_ident(staging);
END
$$;
