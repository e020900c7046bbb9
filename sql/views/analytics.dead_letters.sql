-- Dead letters, for operators: what failed, how often, and why (the relay redacts addresses
-- from last_error); last_attempt_at from the attempts log.
CREATE OR REPLACE VIEW analytics.dead_letters AS
SELECT l.idempotency_key, l.run_key, l.channel, l.source, l.campaign_id, l.attempts, l.last_error,
       l.scheduled_at, a.last_attempt_at
FROM push.notification_ledger l
CROSS JOIN LATERAL (
    SELECT max(t.attempted_at) AS last_attempt_at
    FROM push.delivery_attempts t
    WHERE t.idempotency_key = l.idempotency_key
) AS a
WHERE l.status = 'dead';
