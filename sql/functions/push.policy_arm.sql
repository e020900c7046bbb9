-- The policy arm of a user (docs/notification-policy.md, "Policy arms"): the first arm whose
-- upper bound exceeds the user's keyed hash bucket in [0, 10000), else 'full'. bounds are the
-- arms' cumulative shares in basis points (jobs/notify/policy.py builds them from
-- PUSH_POLICY_ARMS); with no arm every user is 'full'.
CREATE OR REPLACE FUNCTION push.policy_arm(user_id text, salt text, arms text[], bounds integer[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        arms[(SELECT min(b.n) FROM unnest(bounds) WITH ORDINALITY AS b (bound, n)
              WHERE push.holdout_bucket(user_id, salt) < b.bound)],
        'full')
$$;
