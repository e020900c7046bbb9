-- Adaptive frequency: a user's ignored streak is the number of delivered messages since the
-- last one they opened or clicked (only messages whose attribution window has closed by
-- :as_of). At :fatigue_after or more the user is fatigued and gets the lower fatigue caps;
-- any engagement resets the streak and restores the configured caps.
WITH closed AS (
    SELECT user_id, sent_at, (opened_at IS NOT NULL OR clicked_at IS NOT NULL) AS engaged
    FROM push.message_outcomes
    WHERE sent_at < CAST(:as_of AS timestamptz) - CAST(:attribution AS interval)
),
per_user AS (
    SELECT user_id, max(sent_at) FILTER (WHERE engaged) AS last_engaged_at FROM closed GROUP BY user_id
),
streaks AS (
    SELECT c.user_id, p.last_engaged_at,
           count(*) FILTER (WHERE p.last_engaged_at IS NULL OR c.sent_at > p.last_engaged_at)::integer AS streak
    FROM closed c JOIN per_user p ON p.user_id = c.user_id
    GROUP BY c.user_id, p.last_engaged_at
)
INSERT INTO push.notify_user_state (user_id, ignored_streak, fatigued, last_engaged_at, updated_at)
SELECT user_id, streak, streak >= :fatigue_after, last_engaged_at, :as_of
FROM streaks
ORDER BY user_id
ON CONFLICT (user_id) DO UPDATE
SET ignored_streak = excluded.ignored_streak, fatigued = excluded.fatigued,
    last_engaged_at = excluded.last_engaged_at, updated_at = excluded.updated_at;
