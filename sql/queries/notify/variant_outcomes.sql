-- Delivered messages per campaign variant whose outcome is complete (sent before
-- :complete_before), with their conversions and clicks (push.message_outcomes), for the day's
-- Thompson-sampling shares (jobs/notify/allocation.py). Every current variant of a campaign is
-- listed, a new one with no messages too.
SELECT
    cv.campaign_id,
    cv.variant,
    coalesce(o.messages, 0) AS messages,
    coalesce(o.conversions, 0) AS conversions,
    coalesce(o.clicks, 0) AS clicks
FROM push.campaign_variants AS cv
LEFT JOIN (
    SELECT
        d.campaign_id,
        d.variant,
        count(*) AS messages,
        count(*) FILTER (WHERE m.converted_at IS NOT NULL) AS conversions,
        count(*) FILTER (WHERE m.clicked_at IS NOT NULL) AS clicks
    FROM push.message_outcomes AS m
    INNER JOIN push.notification_decisions AS d
        ON m.idempotency_key = d.idempotency_key AND d.decision IN ('sent', 'deferred_quiet_hours')
    WHERE d.variant IS NOT NULL AND m.sent_at < :complete_before
    GROUP BY d.campaign_id, d.variant
) AS o ON cv.campaign_id = o.campaign_id AND cv.variant = o.variant
ORDER BY cv.campaign_id, cv.variant
