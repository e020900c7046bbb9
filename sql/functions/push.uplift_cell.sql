-- The uplift cell of a user at a moment (docs/notification-policy.md, "Uplift targeting"):
-- 'recent_buyer' when the user bought on their own (no click on one of their messages within
-- the attribution window before the purchase) in the 28 days before, else 'no_recent_purchase'.
-- Only behaviour before the moment counts, so the cell of a past user-day is what the policy
-- saw then; a purchase a message caused never moves its buyer out of the cell that message served.
CREATE OR REPLACE FUNCTION push.uplift_cell(user_id text, as_of timestamptz, attribution interval) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN EXISTS (
        SELECT 1 FROM push.notification_feedback f
        WHERE f.user_id = uplift_cell.user_id AND f.event_type = 'purchase' AND f.notification_id IS NULL
          AND f.ts >= as_of - interval '28 days' AND f.ts < as_of
          AND NOT EXISTS (SELECT 1 FROM push.notification_feedback k
                          WHERE k.user_id = f.user_id AND k.event_type = 'notification_click'
                            AND k.ts <= f.ts AND k.ts > f.ts - attribution))
        THEN 'recent_buyer' ELSE 'no_recent_purchase' END
$$;
