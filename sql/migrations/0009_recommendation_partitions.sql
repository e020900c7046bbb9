-- Recommendations versioned by model run, one partition per run, published by swap.
--
-- A publish COPYs a run's rows into a fresh staging table (no index, no foreign key: the
-- fastest load PostgreSQL has), indexes it, then in the same transaction attaches it as the
-- run's partition and points push.published_recommendations at the run. Readers of
-- analytics.current_recommendations see the old set or the new one, never a mix; a publish
-- killed midway rolls back and leaves no trace (the staging table was created in its
-- transaction). Rows written straight into push.recommendations (fixtures, older runs) land in
-- the default partition, which keeps the table's earlier rows.
ALTER TABLE push.recommendations RENAME TO recommendations_unpartitioned;
ALTER INDEX push.recommendations_pkey RENAME TO recommendations_unpartitioned_pkey;

CREATE TABLE push.recommendations (
    run_id  text NOT NULL,
    user_id text NOT NULL,
    rank    integer NOT NULL CONSTRAINT recommendations_rank_check CHECK (rank >= 1),
    item_id text NOT NULL,
    score   double precision NOT NULL,
    source  text NOT NULL,
    reason  text NOT NULL,
    PRIMARY KEY (run_id, user_id, rank)
) PARTITION BY LIST (run_id);

ALTER TABLE push.recommendations ATTACH PARTITION push.recommendations_unpartitioned DEFAULT;

CREATE OR REPLACE VIEW analytics.current_recommendations AS
SELECT r.user_id, r.rank, r.item_id, i.title, i.category, i.price, r.score, r.source, r.reason, r.run_id
FROM push.published_recommendations p
JOIN push.recommendations r ON r.run_id = p.run_id
JOIN push.items i ON i.item_id = r.item_id;

-- Views bind to a table, not a name: the pseudonymous analyst view of 0007 still points at the
-- renamed table and would see the default partition only. Recreated on the partitioned table.
CREATE OR REPLACE VIEW analytics.latest_recommendations AS
SELECT k.user_key, r.rank, r.item_id, i.title, i.category, i.brand, i.price, i.in_stock, r.score, r.source,
       r.reason, r.run_id, p.published_for
FROM push.published_recommendations p
JOIN push.recommendations r ON r.run_id = p.run_id
JOIN push.user_pseudonyms k ON k.user_id = r.user_id
JOIN push.items i ON i.item_id = r.item_id;

-- The partition table of a run: readable, unique (hash suffix) and short enough for a name.
CREATE FUNCTION push.recommendation_partition(p_run_id text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'recommendations_' || left(regexp_replace(lower(p_run_id), '[^a-z0-9]+', '_', 'g'), 24)
           || '_' || left(md5(p_run_id), 8)
$$;

-- Create the empty staging table of a run (in the caller's transaction) and return its name.
-- run_id defaults to the run, so the COPY carries only the other columns; the CHECK lets
-- ATTACH PARTITION skip its validation scan.
CREATE FUNCTION push.stage_recommendations(p_run_id text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    staging text := push.recommendation_partition(p_run_id) || '_staging';
BEGIN
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

-- Index the staged rows, replace the run's previous rows (a re-run of the same date), attach
-- the staging table as the run's partition and make the run live unless a newer date is.
-- Returns whether the run is now the live one.
CREATE FUNCTION push.swap_in_recommendations(p_run_id text, p_published_for date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    partition text := push.recommendation_partition(p_run_id);
    staging text := partition || '_staging';
    live text;
BEGIN
    EXECUTE 'CREATE UNIQUE INDEX ' || quote_ident(staging || '_key') || ' ON push.' || quote_ident(staging)
        || ' (run_id, user_id, rank)';
    EXECUTE 'ANALYZE push.' || quote_ident(staging);
    EXECUTE 'DROP TABLE IF EXISTS push.' || quote_ident(partition);
    DELETE FROM push.recommendations_unpartitioned WHERE run_id = p_run_id;
    EXECUTE 'ALTER TABLE push.' || quote_ident(staging) || ' RENAME TO ' || quote_ident(partition);
    EXECUTE 'ALTER INDEX push.' || quote_ident(staging || '_key') || ' RENAME TO ' || quote_ident(partition || '_key');
    EXECUTE 'ALTER TABLE push.recommendations ATTACH PARTITION push.' || quote_ident(partition)
        || ' FOR VALUES IN (' || quote_literal(p_run_id) || ')';
    INSERT INTO push.published_recommendations (singleton, run_id, published_for)
    VALUES (true, p_run_id, p_published_for)
    ON CONFLICT (singleton) DO UPDATE SET run_id = EXCLUDED.run_id, published_for = EXCLUDED.published_for
    -- A re-run of an older date never replaces a newer live set.
    WHERE push.published_recommendations.published_for <= EXCLUDED.published_for;
    SELECT run_id INTO live FROM push.published_recommendations;
    RETURN live = p_run_id;
END
$$;
