-- Notification candidates at :as_of, from the live recommendations and the active campaigns.
-- Recommendation candidates: each user's top 3 recommended items.
-- Campaign candidates: an active campaign whose target category is the user's favourite, with
-- the user's best-ranked recommended item in that category (DISTINCT ON keeps the first by rank).
WITH latest_profiles AS (
    SELECT p.*
    FROM push.user_profiles p
    WHERE p.as_of = (SELECT max(as_of) FROM push.user_profiles WHERE as_of <= CAST(:as_of AS date))
),
recs AS (
    SELECT r.user_id, r.rank, r.item_id, r.reason, i.title, i.category, i.price
    FROM push.published_recommendations pub
    JOIN push.recommendations r ON r.run_id = pub.run_id
    JOIN push.items i ON i.item_id = r.item_id
)
SELECT user_id, 'recommendation' AS source, item_id, title, category, price, reason,
       round(price * 0.02 / rank, 6) AS expected_value, false AS transactional,
       NULL::text AS campaign_id, NULL::text AS discount_text
FROM recs
WHERE rank <= 3
UNION ALL
SELECT * FROM (
    SELECT DISTINCT ON (p.user_id, c.campaign_id)
           p.user_id, 'campaign:' || c.campaign_id, r.item_id, r.title, r.category, r.price, r.reason,
           round(r.price * 0.03 * (1 + c.priority / 10.0), 6), c.transactional, c.campaign_id, c.discount_text
    FROM latest_profiles p
    JOIN push.campaigns c ON c.target_category = p.top_categories[1]
    JOIN recs r ON r.user_id = p.user_id AND r.category = c.target_category
    WHERE c.valid_from <= :as_of AND :as_of < c.valid_to
    ORDER BY p.user_id, c.campaign_id, r.rank
) AS campaign_candidates
ORDER BY 1, 2, 3
