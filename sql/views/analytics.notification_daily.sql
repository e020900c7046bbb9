-- Notifications by reason per UTC day of the decision (whatever the session's TimeZone).
CREATE OR REPLACE VIEW analytics.notification_daily AS
SELECT CAST(timezone('UTC', decided_at) AS date) AS day, decision, count(*) AS decisions
FROM push.notification_decisions
GROUP BY 1, 2;
