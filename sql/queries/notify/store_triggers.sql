INSERT INTO push.triggers (trigger_key, user_id, trigger_type, item_id, category, detected_at, fire_at, expires_at,
                           origin, cancelled_at)
SELECT trigger_key, user_id, trigger_type, item_id, category, detected_at, fire_at, expires_at, origin, cancelled_at
FROM trigger_stage
ON CONFLICT (trigger_key) DO UPDATE
SET cancelled_at = coalesce(push.triggers.cancelled_at, excluded.cancelled_at)
