-- (Re)grant SELECT on every relation of schema analytics without an identifying column, and
-- revoke it on the others. Run after each migration (jobs.core.db.apply_migrations does), so a
-- view added later is covered too.
CREATE OR REPLACE FUNCTION push.refresh_analyst_grants() RETURNS integer
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
