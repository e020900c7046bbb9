INSERT INTO push.triggers (trigger_key, user_id, trigger_type, item_id, category, detected_at, fire_at, expires_at,
                           origin, context)
SELECT push.idempotency_key(ri.user_id, c.change, c.item_id || '@' || to_char(c.detected_at AT TIME ZONE 'UTC',
                            'YYYY-MM-DD"T"HH24:MI:SS')),
       ri.user_id, c.change, c.item_id, i.category, c.detected_at, c.detected_at,
       c.detected_at + CAST(:expiry AS interval), 'batch',
       jsonb_build_object('old_price', to_char(c.old_price, 'FM999999990.00'))
FROM push.item_changes c
JOIN push.recent_interactions ri ON ri.item_id = c.item_id
JOIN push.items i ON i.item_id = c.item_id
WHERE c.detected_at > :since AND c.detected_at <= :until
  AND greatest(ri.last_viewed_at, ri.last_carted_at) >= c.detected_at - CAST(:interest AS interval)
  AND greatest(ri.last_viewed_at, ri.last_carted_at) < c.detected_at
  AND (ri.last_purchased_at IS NULL OR ri.last_purchased_at < greatest(ri.last_viewed_at, ri.last_carted_at))
ON CONFLICT (trigger_key) DO NOTHING
