-- Per channel: outbox rows by status, attempts from the attempts log (retried_attempts =
-- attempts that ended in a retry, retried_messages = messages with at least one), and the
-- median and 95th percentile (continuous, interpolated) of the attempts a delivered message
-- took (its ledger attempts since it was last queued or re-driven).
CREATE OR REPLACE VIEW analytics.delivery_health AS
WITH outbox AS (
    SELECT channel,
           count(*) AS messages,
           count(*) FILTER (WHERE status = 'sent') AS delivered,
           count(*) FILTER (WHERE status = 'dead') AS dead_letters,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE status = 'expired') AS expired,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY attempts) FILTER (WHERE status = 'sent')
               AS median_attempts_to_deliver,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY attempts) FILTER (WHERE status = 'sent')
               AS p95_attempts_to_deliver
    FROM push.notification_ledger
    GROUP BY channel
), tries AS (
    SELECT channel,
           count(*) AS attempts,
           count(*) FILTER (WHERE outcome = 'retry') AS retried_attempts,
           count(DISTINCT idempotency_key) FILTER (WHERE outcome = 'retry') AS retried_messages
    FROM push.delivery_attempts
    GROUP BY channel
)
SELECT coalesce(o.channel, t.channel) AS channel,
       coalesce(o.messages, 0) AS messages,
       coalesce(o.delivered, 0) AS delivered,
       coalesce(t.attempts, 0) AS attempts,
       coalesce(t.retried_attempts, 0) AS retried_attempts,
       coalesce(t.retried_messages, 0) AS retried_messages,
       coalesce(o.dead_letters, 0) AS dead_letters,
       coalesce(o.cancelled, 0) AS cancelled,
       coalesce(o.expired, 0) AS expired,
       coalesce(o.pending, 0) AS pending,
       o.median_attempts_to_deliver,
       o.p95_attempts_to_deliver
FROM outbox o
FULL JOIN tries t ON t.channel = o.channel;
