CREATE OR REPLACE VIEW analytics.current_recommendations AS
SELECT r.user_id, r.rank, r.item_id, i.title, i.category, i.price, r.score, r.source, r.reason, r.run_id
FROM push.published_recommendations p
JOIN push.recommendations r ON r.run_id = p.run_id
JOIN push.items i ON i.item_id = r.item_id;
