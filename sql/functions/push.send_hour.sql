-- The local hour at which a user's recommendations and campaigns of one local day are planned
-- (docs/notification-policy.md, "Send moments" and "Off-policy evaluation"):
--   random_hour arm         a hashed hour of the day (policy arms, push.policy_arm)
--   explored (user, day)    a hashed hour of the day, for explore_basis_points / 10000 of the
--                           pairs (PUSH_EXPLORE_PERCENT): logged with its propensity, so that
--                           other send-hour rules can be evaluated from the decisions
--   otherwise               best_hour (the estimate, else the profile's, else the run's hour)
-- The hashes are buckets in [0, 10000) modulo 24: hours below 10000 % 24 = 16 are one bucket
-- likelier than the others, which push.send_hour_propensity counts exactly.
CREATE OR REPLACE FUNCTION push.send_hour(
    user_id text, local_day date, arm text, best_hour integer, arms_salt text, explore_salt text,
    explore_basis_points integer
) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN arm = 'random_hour' THEN push.holdout_bucket(user_id || ':' || local_day, arms_salt) % 24
        WHEN push.holdout_bucket(user_id || ':' || local_day, explore_salt) < explore_basis_points
            THEN push.holdout_bucket(user_id || ':' || local_day || ':hour', explore_salt) % 24
        ELSE best_hour
    END
$$;
