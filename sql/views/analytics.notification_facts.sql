-- One row per notification decision, with the outbox status and the message's outcome.
CREATE OR REPLACE VIEW analytics.notification_facts AS
SELECT k.user_key, d.run_key, d.source, d.campaign_id, d.item_id, d.channel, d.transactional,
       d.expected_value, d.decision, d.decided_at, d.scheduled_at,
       l.status AS outbox_status, l.sent_at, o.opened_at, o.clicked_at, o.converted_at, o.revenue
FROM push.notification_decisions d
JOIN push.user_pseudonyms k ON k.user_id = d.user_id
LEFT JOIN push.notification_ledger l
       ON l.idempotency_key = d.idempotency_key AND d.decision IN ('sent', 'deferred_quiet_hours')
LEFT JOIN push.message_outcomes o ON o.idempotency_key = l.idempotency_key;
