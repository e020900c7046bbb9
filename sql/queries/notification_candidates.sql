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
-- Only what the policy needs is computed for every candidate; the message's facts are built
-- for the accepted ones when they are recorded.
INSERT INTO plan_candidates (user_id, candidate_key, source, kind, campaign_id, item_id, category, transactional,
                             allowed_channels, idempotency_key, natural_at, not_before, expires_at,
                             expected_value, reason, discount_text, old_price)
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
-- The user's first best hour (the estimate for that local weekday, else the profile's most
-- active hour, else the hour of the run) from the start of the run's clock hour (so a
-- half-hour timezone's moment belongs to exactly one hourly run) to the end of the horizon.
best_moment AS MATERIALIZED (
    SELECT s.user_id, greatest(m.send_at, CAST(:at AS timestamptz)) AS natural_at, m.rate
    FROM scope s
    LEFT JOIN latest_profiles p ON p.user_id = s.user_id
    CROSS JOIN LATERAL (
        SELECT t.send_at, coalesce(e.rate, :default_rate) AS rate
        FROM generate_series(0, 2) AS d
        CROSS JOIN LATERAL (
            SELECT (timezone(s.timezone, CAST(:at AS timestamptz)))::date + d AS local_day
        ) AS ld
        LEFT JOIN push.send_time_estimates e
               ON e.user_id = s.user_id AND e.weekday = extract(isodow FROM ld.local_day)::integer - 1
        CROSS JOIN LATERAL (
            SELECT timezone(s.timezone, ld.local_day + make_interval(hours => coalesce(
                e.best_hour, p.preferred_hour,
                extract(hour FROM timezone(s.timezone, CAST(:at AS timestamptz)))::integer))) AS send_at
        ) AS t
        WHERE t.send_at >= date_trunc('hour', CAST(:at AS timestamptz))
          AND t.send_at < CAST(:horizon_end AS timestamptz)
        ORDER BY t.send_at
        LIMIT 1
    ) AS m
    WHERE 'recommendation' = ANY(CAST(:kinds AS text[])) OR 'campaign' = ANY(CAST(:kinds AS text[]))
),
recs AS MATERIALIZED (
    SELECT r.user_id, r.rank, r.item_id, r.reason, i.category, i.brand, i.price
    FROM push.published_recommendations pub
    JOIN push.recommendations r ON r.run_id = pub.run_id
    JOIN best_moment b ON b.user_id = r.user_id
    JOIN push.items i ON i.item_id = r.item_id
    WHERE i.in_stock
),
active_campaigns AS (
    SELECT c.*
    FROM push.campaigns c
    WHERE 'campaign' = ANY(CAST(:kinds AS text[]))
      AND c.valid_to > CAST(:at AS timestamptz) AND c.valid_from < CAST(:horizon_end AS timestamptz)
      AND (CAST(:campaign_id AS text) IS NULL OR c.campaign_id = CAST(:campaign_id AS text))
),
-- A campaign reaches a user whose tastes match one of its targets: a favourite category, a
-- favourite brand, or one of its items among the user's recommendations.
campaign_matches AS (
    SELECT p.user_id, c.campaign_id, r.rank, r.item_id
    FROM latest_profiles p
    JOIN active_campaigns c ON c.target_category = ANY(p.top_categories[1:2])
    JOIN recs r ON r.user_id = p.user_id AND r.category = c.target_category
    UNION ALL
    SELECT p.user_id, c.campaign_id, r.rank, r.item_id
    FROM latest_profiles p
    JOIN active_campaigns c ON c.target_brand = ANY(p.top_brands)
    JOIN recs r ON r.user_id = p.user_id AND r.brand = c.target_brand
    UNION ALL
    SELECT r.user_id, c.campaign_id, r.rank, r.item_id
    FROM recs r
    JOIN active_campaigns c ON r.item_id = ANY(c.target_items)
),
best_match AS (
    SELECT DISTINCT ON (user_id, campaign_id) user_id, campaign_id, item_id
    FROM campaign_matches
    ORDER BY user_id, campaign_id, rank
)
SELECT b.user_id, 'rec:' || r.item_id, 'recommendation', 'recommendation', NULL, r.item_id, r.category, false,
       NULL::text[],
       push.idempotency_key(b.user_id, 'rec:' || r.item_id, to_char(b.natural_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
       b.natural_at, NULL::timestamptz, b.natural_at + CAST(:expiry AS interval),
       (r.price * b.rate / r.rank)::double precision,
       r.reason, NULL, NULL
FROM best_moment b
JOIN recs r ON r.user_id = b.user_id
WHERE r.rank <= 3 AND 'recommendation' = ANY(CAST(:kinds AS text[])) AND CAST(:campaign_id AS text) IS NULL
UNION ALL
SELECT b.user_id, 'campaign:' || c.campaign_id, 'campaign', 'campaign', c.campaign_id, r.item_id, r.category,
       c.transactional, c.channels,
       push.idempotency_key(b.user_id, 'campaign:' || c.campaign_id,
                            c.campaign_id || ':' || to_char(b.natural_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
       b.natural_at, c.valid_from, least(c.valid_to, b.natural_at + CAST(:expiry AS interval)),
       (r.price * b.rate * (1 + c.priority / 10.0) * 1.2)::double precision,
       r.reason, c.discount_text, NULL
FROM best_match m
JOIN best_moment b ON b.user_id = m.user_id
JOIN active_campaigns c ON c.campaign_id = m.campaign_id
JOIN recs r ON r.user_id = m.user_id AND r.item_id = m.item_id
WHERE c.valid_from <= b.natural_at AND b.natural_at < c.valid_to
UNION ALL
SELECT t.user_id, 'trigger:' || t.trigger_key, 'trigger:' || t.trigger_type, t.trigger_type, NULL, t.item_id,
       coalesce(i.category, t.category), false, NULL::text[],
       push.idempotency_key(t.user_id, 'trigger:' || t.trigger_key, 'trigger'),
       greatest(t.fire_at, CAST(:at AS timestamptz)), t.fire_at, t.expires_at,
       (coalesce(i.price, 10) * :default_rate * CASE t.trigger_type
           WHEN 'cart_abandonment' THEN 3.0 WHEN 'price_drop' THEN 2.0 WHEN 'back_in_stock' THEN 2.0 ELSE 1.5
       END)::double precision,
       'because of your recent activity', NULL, t.context ->> 'old_price'
FROM push.triggers t
JOIN scope s ON s.user_id = t.user_id
LEFT JOIN push.items i ON i.item_id = t.item_id
WHERE 'trigger' = ANY(CAST(:kinds AS text[])) AND CAST(:campaign_id AS text) IS NULL
  AND t.cancelled_at IS NULL
  AND t.fire_at < CAST(:horizon_end AS timestamptz) AND t.expires_at > CAST(:at AS timestamptz)
  AND (t.item_id IS NULL OR coalesce(i.in_stock, false))
