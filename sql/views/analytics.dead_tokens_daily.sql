-- Push tokens providers declared dead, per UTC day, platform and answer (no user, no token).
CREATE OR REPLACE VIEW analytics.dead_tokens_daily AS
SELECT (d.recorded_at AT TIME ZONE 'UTC')::date AS day, d.platform, d.answer, count(*) AS tokens
FROM push.dead_tokens d
GROUP BY 1, 2, 3;
