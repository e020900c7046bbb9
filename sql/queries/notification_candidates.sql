-- Candidate messages of one planning run, into the session's temp table plan_candidates.
--   :at            the run's logical time (UTC)
--   :horizon_end   end of the window [at, horizon_end) whose send moments this run plans
--   :campaign_id   NULL, or one campaign (then only that campaign's candidates)
--   :kinds         which sources to consider: any of recommendation, campaign, trigger
--   :users         NULL, or the only users to consider (the stream plans for a few users)
--   :expiry        how long a recommendation stays worth sending
--   :default_rate  click x conversion rate assumed where no estimate exists yet
-- natural_at is when a candidate wants to go out: the user's best local hour (send-time
-- optimisation) for recommendations and campaigns, the trigger's fire time for triggers.
-- expected_value = weight x price x estimated click-and-convert rate at that hour; the weights
-- (1/rank for recommendations, priority for campaigns, intent strength for triggers) are here.
INSERT INTO plan_candidates (user_id, candidate_key, source, campaign_id, item_id, transactional,
                             allowed_channels, slot, natural_at, expires_at, expected_value, facts)
WITH scope AS (
    SELECT u.user_id, u.timezone
    FROM push.users u
    WHERE CAST(:users AS text[]) IS NULL OR u.user_id = ANY(CAST(:users AS text[]))
),
latest_profiles AS (
    SELECT p.user_id, p.top_categories, p.top_brands, p.preferred_hour
    FROM push.user_profiles p
    WHERE p.as_of = (SELECT max(as_of) FROM push.user_profiles WHERE as_of <= CAST(:at AS date))
),
-- The user's best hour on each local day that overlaps the horizon: the estimate for that
-- weekday, else the profile's most active hour, else the hour of the run.
send_moments AS (
    SELECT s.user_id, m.send_at, coalesce(e.rate, :default_rate) AS rate
    FROM scope s
    LEFT JOIN latest_profiles p ON p.user_id = s.user_id
    CROSS JOIN LATERAL (
        SELECT (timezone(s.timezone, CAST(:at AS timestamptz)))::date + d AS local_day FROM generate_series(0, 2) AS d
    ) AS days
    LEFT JOIN push.send_time_estimates e
           ON e.user_id = s.user_id AND e.weekday = extract(isodow FROM days.local_day)::integer - 1
    CROSS JOIN LATERAL (
        SELECT timezone(s.timezone, days.local_day + make_interval(hours => coalesce(
            e.best_hour, p.preferred_hour, extract(hour FROM timezone(s.timezone, CAST(:at AS timestamptz)))::integer
        ))) AS send_at
    ) AS m
),
best_moment AS (
    -- The first best hour whose clock hour has not fully passed at :at and starts before the horizon ends.
    SELECT DISTINCT ON (user_id) user_id, greatest(send_at, CAST(:at AS timestamptz)) AS natural_at, rate
    FROM send_moments
    WHERE send_at > CAST(:at AS timestamptz) - interval '1 hour' AND send_at < CAST(:horizon_end AS timestamptz)
    ORDER BY user_id, send_at
),
recs AS (
    SELECT r.user_id, r.rank, r.item_id, r.reason, i.title, i.category, i.brand, i.price
    FROM push.published_recommendations pub
    JOIN push.recommendations r ON r.run_id = pub.run_id
    JOIN push.items i ON i.item_id = r.item_id
    WHERE i.in_stock
)
SELECT b.user_id, 'rec:' || r.item_id, 'recommendation', NULL, r.item_id, false,
       NULL::text[], to_char(b.natural_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), b.natural_at,
       b.natural_at + CAST(:expiry AS interval),
       round((r.price * b.rate / r.rank)::numeric, 6),
       jsonb_build_object('kind', 'recommendation', 'item_title', r.title, 'category', r.category,
                          'price', to_char(r.price, 'FM999999990.00'), 'reason', r.reason,
                          'discount_text', NULL, 'old_price', NULL)
FROM best_moment b
JOIN recs r ON r.user_id = b.user_id
WHERE r.rank <= 3 AND 'recommendation' = ANY(CAST(:kinds AS text[])) AND CAST(:campaign_id AS text) IS NULL
UNION ALL
SELECT * FROM (
    -- A campaign reaches a user whose tastes match its targets (favourite categories, favourite
    -- brands, or one of its items among the user's recommendations), showing the user's
    -- best-ranked recommended item that matches.
    SELECT DISTINCT ON (b.user_id, c.campaign_id)
           b.user_id, 'campaign:' || c.campaign_id, 'campaign', c.campaign_id, r.item_id, c.transactional,
           c.channels, c.campaign_id || ':' || to_char(b.natural_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), b.natural_at,
           least(c.valid_to, b.natural_at + CAST(:expiry AS interval)),
           round((r.price * b.rate * (1 + c.priority / 10.0) * 1.2)::numeric, 6),
           jsonb_build_object('kind', 'campaign', 'item_title', r.title, 'category', r.category,
                              'price', to_char(r.price, 'FM999999990.00'), 'reason', r.reason,
                              'discount_text', c.discount_text, 'old_price', NULL)
    FROM best_moment b
    JOIN latest_profiles p ON p.user_id = b.user_id
    JOIN push.campaigns c
      ON c.valid_from <= b.natural_at AND b.natural_at < c.valid_to
     AND (CAST(:campaign_id AS text) IS NULL OR c.campaign_id = CAST(:campaign_id AS text))
    JOIN recs r ON r.user_id = b.user_id
    WHERE 'campaign' = ANY(CAST(:kinds AS text[]))
      AND ((c.target_items IS NOT NULL AND r.item_id = ANY(c.target_items))
        OR (c.target_category IS NOT NULL AND r.category = c.target_category
            AND c.target_category = ANY(p.top_categories[1:2]))
        OR (c.target_brand IS NOT NULL AND r.brand = c.target_brand AND c.target_brand = ANY(p.top_brands)))
    ORDER BY b.user_id, c.campaign_id, r.rank
) AS campaign_candidates
UNION ALL
SELECT t.user_id, 'trigger:' || t.trigger_key, 'trigger:' || t.trigger_type, NULL, t.item_id, false, NULL::text[],
       'trigger',
       greatest(t.fire_at, CAST(:at AS timestamptz)), t.expires_at,
       round((coalesce(i.price, 10) * :default_rate * CASE t.trigger_type
           WHEN 'cart_abandonment' THEN 3.0 WHEN 'price_drop' THEN 2.0 WHEN 'back_in_stock' THEN 2.0 ELSE 1.5 END)::numeric, 6),
       jsonb_build_object('kind', t.trigger_type, 'item_title', coalesce(i.title, t.category),
                          'category', coalesce(i.category, t.category),
                          'price', to_char(coalesce(i.price, 0), 'FM999999990.00'),
                          'reason', 'because of your recent activity', 'discount_text', NULL,
                          'old_price', t.context ->> 'old_price')
FROM push.triggers t
JOIN scope s ON s.user_id = t.user_id
LEFT JOIN push.items i ON i.item_id = t.item_id
WHERE 'trigger' = ANY(CAST(:kinds AS text[])) AND CAST(:campaign_id AS text) IS NULL
  AND t.cancelled_at IS NULL
  AND t.fire_at < CAST(:horizon_end AS timestamptz) AND t.expires_at > CAST(:at AS timestamptz)
  AND (t.item_id IS NULL OR coalesce(i.in_stock, false))
