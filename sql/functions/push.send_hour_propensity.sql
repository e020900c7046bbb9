-- The chance that push.send_hour picks ``hour`` for a user of this arm with this best hour: a
-- random hour's share of the buckets, plus, outside the random_hour arm, the share of pairs not
-- explored when the hour is the best one.
CREATE OR REPLACE FUNCTION push.send_hour_propensity(
    hour integer, arm text, best_hour integer, explore_basis_points integer
) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN arm = 'random_hour' THEN 1.0 ELSE explore_basis_points / 10000.0 END
           * (CASE WHEN hour < 10000 % 24 THEN 10000 / 24 + 1 ELSE 10000 / 24 END) / 10000.0
           + CASE WHEN arm <> 'random_hour' AND hour = best_hour THEN 1 - explore_basis_points / 10000.0 ELSE 0 END
$$;
