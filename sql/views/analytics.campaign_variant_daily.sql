-- A/B/n message tests, per campaign, variant and UTC day of sending: delivered messages
-- (push.message_outcomes) with their opens, clicks, conversions and revenue, the users they
-- reached, and how many of the messages went to a user who no longer consents to the channel
-- it used (opted_out: the guardrail, per message like the other rates). jobs.notify.experiments reads the days cumulatively for its
-- sequential test; an analyst may sum them over any period.
CREATE OR REPLACE VIEW analytics.campaign_variant_daily AS
WITH delivered AS (
    SELECT DISTINCT ON (m.idempotency_key) m.idempotency_key, m.user_id, m.channel, m.sent_at, m.opened_at,
           m.clicked_at, m.converted_at, m.revenue, d.campaign_id, d.variant
    FROM push.message_outcomes AS m
    INNER JOIN push.notification_decisions AS d
        ON m.idempotency_key = d.idempotency_key AND d.decision IN ('sent', 'deferred_quiet_hours')
    WHERE d.variant IS NOT NULL
    ORDER BY m.idempotency_key, d.decided_at
)
SELECT x.campaign_id, x.variant, (x.sent_at AT TIME ZONE 'UTC')::date AS day,
       count(*) AS delivered, count(x.opened_at) AS opens, count(x.clicked_at) AS clicks,
       count(x.converted_at) AS conversions, coalesce(sum(x.revenue), 0)::double precision AS revenue,
       count(DISTINCT x.user_id) AS users,
       count(*) FILTER (WHERE NOT CASE x.channel
           WHEN 'push' THEN u.consent_push WHEN 'email' THEN u.consent_email
           WHEN 'sms' THEN u.consent_sms WHEN 'webhook' THEN u.consent_webhook END) AS opted_out
FROM delivered AS x
LEFT JOIN push.users AS u ON x.user_id = u.user_id
GROUP BY x.campaign_id, x.variant, (x.sent_at AT TIME ZONE 'UTC')::date;
