-- The send moment of every user this run still has to decide, into the temp table plan_users
-- (numbered in user order: batches are ranges of that number): the earliest due new candidate,
-- moved to the end of the quiet window when it falls inside it (the user's own clock), and
-- control-group membership and policy arm, and the uplift gate: the send probability of the
-- user's cell in the day's estimate (push.uplift_estimates; none for the no_uplift arm or with
-- the gate off), drawn against a keyed hash of the user and the day, so every run of the day draws
-- the same. Consent and fatigue are read later, per batch, under the lock.
INSERT INTO plan_users (user_id, n, scheduled_at, deferred, in_holdout, policy_arm, uplift_probability, uplift_skip)
SELECT a.user_id, row_number() OVER (ORDER BY a.user_id), a.scheduled_at, a.deferred, a.in_holdout, a.policy_arm,
       e.send_probability,
       coalesce(push.holdout_bucket(a.user_id || ':' || a.day, :uplift_salt) >= e.send_probability * 10000, false)
-- The run's planned users with their moment, control group and arm.
FROM (
SELECT m.user_id, coalesce(q.quiet_end, m.natural_at) AS scheduled_at,
       q.quiet_end IS NOT NULL AS deferred, push.holdout_bucket(m.user_id, :holdout_salt) < :holdout_basis_points
           AS in_holdout,
       push.policy_arm(m.user_id, :arms_salt, CAST(:arm_names AS text[]), CAST(:arm_bounds AS integer[]))
           AS policy_arm,
       to_char(CAST(:at AS timestamptz) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day
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
) AS a
-- The cell once per gated user (OFFSET 0 keeps the subquery from being flattened into the join).
LEFT JOIN LATERAL (
    SELECT push.uplift_cell(a.user_id, CAST(:at AS timestamptz), CAST(:attribution AS interval)) AS cell
    WHERE :uplift_on AND NOT a.in_holdout AND a.policy_arm <> 'no_uplift'
    LIMIT ALL OFFSET 0
) AS c ON true
LEFT JOIN push.uplift_estimates AS e ON e.as_of = CAST(a.day AS date) AND e.cell = c.cell
