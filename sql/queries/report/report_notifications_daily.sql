-- Evaluation report: notification decisions per UTC day and reason, up to the day of :until
-- (NULL = all).
SELECT day, decision, decisions
FROM analytics.notification_daily
WHERE day <= CAST(timezone('UTC', coalesce(CAST(:until AS timestamptz), 'infinity')) AS date)
ORDER BY day, decision;
