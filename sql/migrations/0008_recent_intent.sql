-- Recent intent: per user and window (last hour, last 24 h), the items the user viewed (or
-- clicked) or carted in the window and has not bought since. One snapshot, replaced by each
-- hourly refresh (sql/queries/refresh_recent_intent.sql) from push.recent_interactions.
CREATE TABLE push.recent_intent (
    user_id        text NOT NULL,
    window_hours   integer NOT NULL CHECK (window_hours > 0),
    item_id        text NOT NULL,
    last_viewed_at timestamptz,
    last_carted_at timestamptz,
    computed_for   timestamptz NOT NULL,
    PRIMARY KEY (user_id, window_hours, item_id),
    CHECK (last_viewed_at IS NOT NULL OR last_carted_at IS NOT NULL)
);

CREATE VIEW analytics.recent_intent AS
SELECT r.user_id, r.window_hours, r.item_id, i.title, i.category, r.last_viewed_at, r.last_carted_at,
       r.last_carted_at IS NOT NULL AS carted, r.computed_for
FROM push.recent_intent r
LEFT JOIN push.items i USING (item_id);
