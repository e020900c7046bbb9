-- Recent intent at :until for each window in :windows (hours), from the per-(user, item) latest
-- view, cart and purchase times in push.recent_interactions: items viewed or carted in
-- [:until - window, :until) and not bought since the latest of those. Replaces the snapshot.
-- The same rule as jobs.profiles.intent.recent_intent (Spark, from the events themselves).
WITH windows AS (
    SELECT hours, CAST(:until AS timestamptz) - make_interval(hours => hours) AS since
    FROM unnest(CAST(:windows AS integer[])) AS hours
), in_window AS (
    SELECT ri.user_id, w.hours, ri.item_id,
           CASE WHEN ri.last_viewed_at >= w.since AND ri.last_viewed_at < :until THEN ri.last_viewed_at END
               AS last_viewed_at,
           CASE WHEN ri.last_carted_at >= w.since AND ri.last_carted_at < :until THEN ri.last_carted_at END
               AS last_carted_at,
           ri.last_purchased_at
    FROM push.recent_interactions ri
    JOIN windows w ON greatest(ri.last_viewed_at, ri.last_carted_at) >= w.since
)
INSERT INTO push.recent_intent (user_id, window_hours, item_id, last_viewed_at, last_carted_at, computed_for)
SELECT user_id, hours, item_id, last_viewed_at, last_carted_at, :until
FROM in_window
WHERE greatest(last_viewed_at, last_carted_at) IS NOT NULL
  AND (last_purchased_at IS NULL OR last_purchased_at < greatest(last_viewed_at, last_carted_at))
