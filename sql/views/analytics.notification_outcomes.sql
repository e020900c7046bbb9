CREATE OR REPLACE VIEW analytics.notification_outcomes AS
SELECT date_trunc('day', decided_at)::date AS day, run_key, channel, decision, count(*) AS decisions
FROM push.notification_decisions
GROUP BY 1, 2, 3, 4;
