INSERT INTO push.recent_interactions (user_id, item_id, last_viewed_at, last_carted_at, last_purchased_at)
SELECT user_id, item_id, last_viewed_at, last_carted_at, last_purchased_at FROM interaction_stage
ON CONFLICT (user_id, item_id) DO UPDATE
SET last_viewed_at = greatest(push.recent_interactions.last_viewed_at, excluded.last_viewed_at),
    last_carted_at = greatest(push.recent_interactions.last_carted_at, excluded.last_carted_at),
    last_purchased_at = greatest(push.recent_interactions.last_purchased_at, excluded.last_purchased_at)
