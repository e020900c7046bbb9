-- Queued messages (sent + deferred_quiet_hours) per UTC day of the decision and local hour of
-- the planned send moment in the user's timezone (NULL when the user or the moment is unknown).
CREATE OR REPLACE VIEW analytics.send_hour_distribution AS
SELECT CAST(timezone('UTC', d.decided_at) AS date) AS day,
       CAST(extract(HOUR FROM timezone(u.timezone, d.scheduled_at)) AS integer) AS local_hour,
       count(*) AS queued
FROM push.notification_decisions d
LEFT JOIN push.users u ON u.user_id = d.user_id
WHERE d.decision IN ('sent', 'deferred_quiet_hours')
GROUP BY 1, 2;
