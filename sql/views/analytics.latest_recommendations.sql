-- Views bind to a table, not a name: the pseudonymous analyst view of 0007 still points at the
-- renamed table and would see the default partition only. Recreated on the partitioned table.
CREATE OR REPLACE VIEW analytics.latest_recommendations AS
SELECT k.user_key, r.rank, r.item_id, i.title, i.category, i.brand, i.price, i.in_stock, r.score, r.source,
       r.reason, r.run_id, p.published_for
FROM push.published_recommendations p
JOIN push.recommendations r ON r.run_id = p.run_id
JOIN push.user_pseudonyms k ON k.user_id = r.user_id
JOIN push.items i ON i.item_id = r.item_id;
