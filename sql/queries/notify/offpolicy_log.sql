-- Off-policy evaluation (jobs/notify/offpolicy.py): one row per delivered message whose decision
-- logged a send-hour propensity, with its outcome (push.message_outcomes).
--   :arms    NULL, or only decisions of these policy arms
--   :until   NULL, or only decisions made before this time
SELECT DISTINCT ON (d.idempotency_key)
    d.idempotency_key, d.user_id, d.policy_arm, d.planned_hour, d.best_hour, d.hour_propensity,
    m.clicked_at IS NOT NULL AS clicked, m.converted_at IS NOT NULL AS converted
FROM push.notification_decisions AS d
INNER JOIN push.message_outcomes AS m ON d.idempotency_key = m.idempotency_key
WHERE d.decision IN ('sent', 'deferred_quiet_hours')
    AND d.hour_propensity IS NOT NULL
    AND (CAST(:arms AS text []) IS NULL OR d.policy_arm = ANY(CAST(:arms AS text [])))
    AND (CAST(:until AS timestamptz) IS NULL OR d.decided_at < CAST(:until AS timestamptz))
ORDER BY d.idempotency_key, d.decided_at;
