-- The send moment of every user this run still has to decide, into the temp table plan_users
-- (numbered in user order: batches are ranges of that number): the earliest due new candidate,
-- moved to the end of the quiet window when it falls inside it (the user's own clock), and
-- control-group membership and policy arm. Consent and fatigue are read later, per batch, under the lock.
INSERT INTO plan_users (user_id, n, scheduled_at, deferred, in_holdout, policy_arm)
SELECT m.user_id, row_number() OVER (ORDER BY m.user_id), coalesce(q.quiet_end, m.natural_at),
       q.quiet_end IS NOT NULL, push.holdout_bucket(m.user_id, :holdout_salt) < :holdout_basis_points,
       push.policy_arm(m.user_id, :arms_salt, CAST(:arm_names AS text[]), CAST(:arm_bounds AS integer[]))
FROM (
    -- Candidates already in the outbox (duplicates to be) do not pull the moment forward.
    SELECT c.user_id, coalesce(min(c.natural_at) FILTER (WHERE l.idempotency_key IS NULL), min(c.natural_at))
           AS natural_at
    FROM plan_candidates c
    LEFT JOIN push.notification_ledger l ON l.idempotency_key = c.idempotency_key
    GROUP BY c.user_id
) AS m
JOIN push.users u ON u.user_id = m.user_id
CROSS JOIN LATERAL (
    -- OFFSET 0 keeps this a subquery evaluated once per user (LIMIT ALL is no limit: it is there
    -- for the SQL linter's parser); flattened, the time-zone arithmetic would run once for each
    -- of the two uses above.
    SELECT push.quiet_hours_end(m.natural_at, u.timezone, CAST(:quiet_start AS time), CAST(:quiet_end AS time))
           AS quiet_end
    LIMIT ALL OFFSET 0
) AS q
-- Users this run already decided (an earlier attempt) are left out, per user, not per candidate.
WHERE NOT EXISTS (SELECT 1 FROM push.notification_decisions d WHERE d.run_key = :run_key AND d.user_id = m.user_id)
