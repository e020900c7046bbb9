INSERT INTO push.item_changes (item_id, change, detected_at, old_price, new_price)
SELECT n.item_id, 'price_drop', :at, o.price, n.price
FROM previous_items o JOIN push.items n ON n.item_id = o.item_id
WHERE n.price <= o.price * (1 - :min_drop / 100.0) AND n.in_stock
UNION ALL
SELECT n.item_id, 'back_in_stock', :at, o.price, n.price
FROM previous_items o JOIN push.items n ON n.item_id = o.item_id
WHERE NOT o.in_stock AND n.in_stock
ON CONFLICT (item_id, change, detected_at) DO NOTHING
