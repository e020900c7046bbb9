-- Off-policy evaluation of whether to send (jobs/notify/offpolicy.py): one row per user-day of
-- planning runs that was not held out, with the share the uplift gate drew it against (1 where
-- it did not draw: the gate off, the no_uplift arm, a cell without an estimate), whether the day
-- passed, and whether the user converted (push.decision_outcomes: within the attribution window
-- of any of the day's send moments).
--   :arms    NULL, or only user-days of these policy arms
--   :until   NULL, or only runs before this time
SELECT
    d.user_id,
    date_trunc('day', r.logical_time, 'UTC') AS day,
    min(d.policy_arm) AS policy_arm,
    coalesce(min(d.uplift_probability), 1.0) AS send_probability,
    NOT bool_or(d.decision = 'skipped_uplift') AS passed,
    bool_or(o.converted) AS converted
FROM push.notification_decisions AS d
INNER JOIN push.notification_runs AS r ON d.run_key = r.run_key
INNER JOIN push.decision_outcomes AS o ON d.run_key = o.run_key AND d.user_id = o.user_id
WHERE
    NOT d.transactional
    AND (CAST(:arms AS text []) IS NULL OR d.policy_arm = ANY(CAST(:arms AS text [])))
    AND (CAST(:until AS timestamptz) IS NULL OR r.logical_time < CAST(:until AS timestamptz))
GROUP BY d.user_id, date_trunc('day', r.logical_time, 'UTC')
HAVING NOT bool_or(d.decision IN ('holdout', 'suppressed_consent'))
ORDER BY d.user_id, day
