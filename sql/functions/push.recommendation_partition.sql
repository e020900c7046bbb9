-- The partition table of a run: readable, unique (hash suffix) and short enough for a name.
CREATE OR REPLACE FUNCTION push.recommendation_partition(p_run_id text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'recommendations_' || left(regexp_replace(lower(p_run_id), '[^a-z0-9]+', '_', 'g'), 24)
           || '_' || left(md5(p_run_id), 8)
$$;
