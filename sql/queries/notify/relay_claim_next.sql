SELECT l.idempotency_key, l.user_id, l.channel, l.source, l.item_id, l.payload, l.attempts, l.expires_at,
       u.push_platform AS platform,
       (l.expires_at IS NOT NULL AND l.expires_at <= greatest(l.scheduled_at, :as_of)) AS expired,
       coalesce(CASE l.channel WHEN 'email' THEN u.consent_email WHEN 'sms' THEN u.consent_sms
                               WHEN 'push' THEN u.consent_push WHEN 'webhook' THEN u.consent_webhook END,
                false) AS consented,
       CASE l.channel WHEN 'email' THEN u.email WHEN 'sms' THEN u.phone
                      WHEN 'push' THEN u.push_token WHEN 'webhook' THEN u.webhook_url END AS address
FROM push.notification_ledger l
LEFT JOIN push.users u ON u.user_id = l.user_id
WHERE l.status = 'pending'
  AND l.idempotency_key <> ALL(CAST(:skip AS text[]))
  AND ((l.expires_at IS NOT NULL AND l.expires_at <= greatest(l.scheduled_at, :as_of) AND l.scheduled_at <= :until)
       OR (l.channel = ANY(CAST(:channels AS text[]))
           AND l.scheduled_at <= :until
           AND (l.next_attempt_at IS NULL OR l.next_attempt_at <= :now)))
ORDER BY l.scheduled_at, l.idempotency_key
LIMIT 1
FOR UPDATE OF l SKIP LOCKED
