-- Re-publishing a run that already has a partition (a re-run, a retry) replaces its rows in
-- place, DELETE then INSERT in the swapping transaction, instead of dropping the partition and
-- renaming the staging table into its place. Dropping is not MVCC-safe: a reader whose statement
-- took its snapshot before the swap, then waited on the swap's lock, found the new table with
-- rows its snapshot cannot see, and read an empty live set (seen when one statement spanned two
-- publishes). A run seen for the first time is still renamed in and attached, now under an
-- ACCESS EXCLUSIVE lock on the parent: ATTACH alone takes a weaker lock, and a reader planning
-- between the swap's commit and its cache invalidation saw the new live run without its
-- partition, again an empty set. Readers wait for the short swap instead.
CREATE OR REPLACE FUNCTION push.swap_in_recommendations(p_run_id text, p_published_for date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    partition text := push.recommendation_partition(p_run_id);
    staging text := partition || '_staging';
    live text;
BEGIN
    IF to_regclass('push.' || quote_ident(partition)) IS NOT NULL THEN
        EXECUTE 'DELETE FROM push.' || quote_ident(partition);
        EXECUTE 'INSERT INTO push.' || quote_ident(partition) || ' SELECT * FROM push.' || quote_ident(staging);
        EXECUTE 'DROP TABLE push.' || quote_ident(staging);
    ELSE
        EXECUTE 'CREATE UNIQUE INDEX ' || quote_ident(staging || '_key') || ' ON push.' || quote_ident(staging)
            || ' (run_id, user_id, rank)';
        EXECUTE 'ANALYZE push.' || quote_ident(staging);
        DELETE FROM push.recommendations_unpartitioned WHERE run_id = p_run_id;
        EXECUTE 'ALTER TABLE push.' || quote_ident(staging) || ' RENAME TO ' || quote_ident(partition);
        EXECUTE 'ALTER INDEX push.' || quote_ident(staging || '_key') || ' RENAME TO ' || quote_ident(partition || '_key');
        LOCK TABLE push.recommendations IN ACCESS EXCLUSIVE MODE;
        EXECUTE 'ALTER TABLE push.recommendations ATTACH PARTITION push.' || quote_ident(partition)
            || ' FOR VALUES IN (' || quote_literal(p_run_id) || ')';
    END IF;
    INSERT INTO push.published_recommendations (singleton, run_id, published_for)
    VALUES (true, p_run_id, p_published_for)
    ON CONFLICT (singleton) DO UPDATE SET run_id = EXCLUDED.run_id, published_for = EXCLUDED.published_for
    -- A re-run of an older date never replaces a newer live set.
    WHERE push.published_recommendations.published_for <= EXCLUDED.published_for;
    SELECT run_id INTO live FROM push.published_recommendations;
    RETURN live = p_run_id;
END
$$;
