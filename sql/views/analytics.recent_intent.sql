CREATE OR REPLACE VIEW analytics.recent_intent AS
SELECT r.user_id, r.window_hours, r.item_id, i.title, i.category, r.last_viewed_at, r.last_carted_at,
       r.last_carted_at IS NOT NULL AS carted, r.computed_for
FROM push.recent_intent r
LEFT JOIN push.items i USING (item_id);
