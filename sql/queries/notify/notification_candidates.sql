-- Candidate messages of one planning run, into the session's temp table plan_candidates.
--   :at            the run's logical time (UTC)
--   :horizon_end   end of the window [at, horizon_end) whose send moments this run plans
--   :campaign_id   NULL, or one campaign (then only that campaign's candidates)
--   :kinds         which sources to consider: any of recommendation, campaign, trigger
--   :users         NULL, or the only users to consider (the stream plans for a few users)
--   :shard_low, :shard_high   NULL, or the bounds [low, high) of the planner's user id range
--   :expiry        how long a recommendation stays worth sending
--   :default_rate  click x conversion rate assumed where no estimate exists yet
--   :arms_salt, :arm_names, :arm_bounds   the policy arms (push.policy_arm): a random_hour user
--                  is planned at a hashed hour of each local day, a popularity user is shown the
--                  week's most bought items instead of their recommendations
--   :explore_salt, :explore_basis_points   exploration (push.send_hour): that share of (user,
--                  local day) pairs is planned at a hashed hour; every recommendation and campaign
--                  candidate carries its planned hour, the best hour and the planned hour's propensity
-- A campaign with variants (push.campaign_variants) gives each user's candidate the user's
-- variant of the run's UTC day (push.campaign_variant_on: by the day's Thompson-sampling shares
-- when there are any, else by the weights): its template, and its channel instead of the campaign's.
-- natural_at is when a candidate wants to go out: the user's best local hour (send-time
-- optimisation) for recommendations and campaigns, the trigger's fire time for triggers.
-- expected_value = weight x price x estimated click-and-convert rate at that hour; the weights
-- (1/rank for recommendations, priority for campaigns, intent strength for triggers) are here.
-- Only what the policy needs is computed for every candidate; the message's facts are built
-- for the accepted ones when they are recorded.
INSERT INTO plan_candidates (user_id, candidate_key, source, kind, campaign_id, item_id, category, transactional,
                             allowed_channels, idempotency_key, natural_at, not_before, expires_at,
                             expected_value, reason, discount_text, old_price, variant, template, planned_hour,
                             best_hour, hour_propensity)
WITH scope AS (
    -- Each user's clock at the run's logical time: computed once per user, used three times.
    SELECT u.user_id, u.timezone, l.local_at, l.local_at::date AS local_day,
           extract(ISODOW FROM l.local_at)::integer - 1 AS weekday, extract(HOUR FROM l.local_at)::integer AS hour,
           push.policy_arm(u.user_id, :arms_salt, CAST(:arm_names AS text[]), CAST(:arm_bounds AS integer[])) AS arm
    FROM push.users u
    CROSS JOIN LATERAL (SELECT timezone(u.timezone, CAST(:at AS timestamptz)) AS local_at) AS l
    WHERE (CAST(:users AS text[]) IS NULL OR u.user_id = ANY(CAST(:users AS text[])))
      AND (CAST(:shard_low AS text) IS NULL OR u.user_id >= CAST(:shard_low AS text))
      AND (CAST(:shard_high AS text) IS NULL OR u.user_id < CAST(:shard_high AS text))
),
latest_profiles AS (
    SELECT p.user_id, p.top_categories, p.top_brands, p.preferred_hour
    FROM push.user_profiles p
    WHERE p.as_of = (SELECT max(as_of) FROM push.user_profiles WHERE as_of <= CAST(:at AS date))
),
-- The user's first best hour (the estimate for that local weekday, else the profile's most
-- active hour, else the hour of the run) on the run's local day or the two after it, from the
-- start of the run's clock hour (so a half-hour timezone's moment belongs to exactly one hourly
-- run) to the end of the horizon. The three days are spelled out (plain joins, one row per
-- user) rather than generated and sorted per user. Materialised: each moment is referenced
-- several times below, and inlined, its time-zone arithmetic would run once per reference.
day_hours AS (
    -- Each of the three local days' best hour (the estimate for that weekday, else the profile's
    -- most active hour, else the hour of the run) and rate.
    SELECT s.user_id, s.arm, s.timezone, s.local_day, p.top_categories, p.top_brands,
           coalesce(e0.best_hour, p.preferred_hour, s.hour) AS best0,
           coalesce(e1.best_hour, p.preferred_hour, s.hour) AS best1,
           coalesce(e2.best_hour, p.preferred_hour, s.hour) AS best2,
           coalesce(e0.rate, :default_rate) AS rate0, coalesce(e1.rate, :default_rate) AS rate1,
           coalesce(e2.rate, :default_rate) AS rate2
    FROM scope s
    LEFT JOIN latest_profiles p ON p.user_id = s.user_id
    LEFT JOIN push.send_time_estimates e0 ON e0.user_id = s.user_id AND e0.weekday = s.weekday
    LEFT JOIN push.send_time_estimates e1 ON e1.user_id = s.user_id AND e1.weekday = (s.weekday + 1) % 7
    LEFT JOIN push.send_time_estimates e2 ON e2.user_id = s.user_id AND e2.weekday = (s.weekday + 2) % 7
    WHERE 'recommendation' = ANY(CAST(:kinds AS text[])) OR 'campaign' = ANY(CAST(:kinds AS text[]))
),
day_moments AS MATERIALIZED (
    -- The hour each day is planned at (push.send_hour: the best hour, or a hashed one for the
    -- random_hour arm and for explored days) as a moment in UTC.
    SELECT d.user_id, d.arm, d.top_categories, d.top_brands, d.best0, d.best1, d.best2, d.rate0, d.rate1, d.rate2,
           h.hour0, h.hour1, h.hour2,
           timezone(d.timezone, d.local_day + make_interval(hours => h.hour0)) AS at0,
           timezone(d.timezone, d.local_day + 1 + make_interval(hours => h.hour1)) AS at1,
           timezone(d.timezone, d.local_day + 2 + make_interval(hours => h.hour2)) AS at2
    FROM day_hours d
    CROSS JOIN LATERAL (
        SELECT push.send_hour(d.user_id, d.local_day, d.arm, d.best0, :arms_salt, CAST(:explore_salt AS text),
                              CAST(:explore_basis_points AS integer)) AS hour0,
               push.send_hour(d.user_id, d.local_day + 1, d.arm, d.best1, :arms_salt, CAST(:explore_salt AS text),
                              CAST(:explore_basis_points AS integer)) AS hour1,
               push.send_hour(d.user_id, d.local_day + 2, d.arm, d.best2, :arms_salt, CAST(:explore_salt AS text),
                              CAST(:explore_basis_points AS integer)) AS hour2
    ) AS h
),
day_ok AS (
    SELECT d.*,
           d.at0 >= date_trunc('hour', CAST(:at AS timestamptz)) AND d.at0 < CAST(:horizon_end AS timestamptz) AS ok0,
           d.at1 >= date_trunc('hour', CAST(:at AS timestamptz)) AND d.at1 < CAST(:horizon_end AS timestamptz) AS ok1,
           d.at2 >= date_trunc('hour', CAST(:at AS timestamptz)) AND d.at2 < CAST(:horizon_end AS timestamptz) AS ok2
    FROM day_moments d
),
best_moment AS MATERIALIZED (
    -- The earliest qualifying moment (least() skips the days that do not qualify) and its rate.
    SELECT m.user_id, m.arm, m.top_categories, m.top_brands,
           greatest(m.send_at, CAST(:at AS timestamptz)) AS natural_at,
           to_char(greatest(m.send_at, CAST(:at AS timestamptz)) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS slot_day,
           CASE WHEN m.ok0 AND m.at0 = m.send_at THEN m.rate0
                WHEN m.ok1 AND m.at1 = m.send_at THEN m.rate1
                ELSE m.rate2 END AS rate,
           -- The chosen day's planned and best hours and the planned hour's propensity (logged
           -- with each decision for off-policy evaluation).
           h.planned_hour, h.best_hour,
           push.send_hour_propensity(h.planned_hour, m.arm, h.best_hour, CAST(:explore_basis_points AS integer))
               AS hour_propensity
    FROM (
        SELECT d.*, least(CASE WHEN d.ok0 THEN d.at0 END, CASE WHEN d.ok1 THEN d.at1 END,
                          CASE WHEN d.ok2 THEN d.at2 END) AS send_at
        FROM day_ok d
        OFFSET 0  -- send_at once per user, not once per use
    ) AS m
    CROSS JOIN LATERAL (
        SELECT CASE WHEN m.ok0 AND m.at0 = m.send_at THEN m.hour0
                    WHEN m.ok1 AND m.at1 = m.send_at THEN m.hour1 ELSE m.hour2 END AS planned_hour,
               CASE WHEN m.ok0 AND m.at0 = m.send_at THEN m.best0
                    WHEN m.ok1 AND m.at1 = m.send_at THEN m.best1 ELSE m.best2 END AS best_hour
    ) AS h
    WHERE m.send_at IS NOT NULL
),
popular AS (
    -- The popularity arm's content: the in-stock items bought most in the week before the run.
    SELECT f.item_id, count(*) AS purchases
    FROM push.notification_feedback f
    JOIN push.items i ON i.item_id = f.item_id
    WHERE f.event_type = 'purchase' AND i.in_stock
      AND f.ts >= CAST(:at AS timestamptz) - interval '7 days' AND f.ts < CAST(:at AS timestamptz)
      AND EXISTS (SELECT 1 FROM best_moment b WHERE b.arm = 'popularity')
    GROUP BY f.item_id
    ORDER BY purchases DESC, f.item_id ASC
    LIMIT 20
),
recs AS MATERIALIZED (
    -- The user's live recommendations (in stock) with the user's moment, rate and tastes; for
    -- the popularity arm, the popular items the user has not bought, ranked by purchases.
    SELECT r.user_id, r.rank, r.item_id, r.reason, i.category, i.brand, i.price, b.natural_at, b.rate,
           b.top_categories, b.top_brands, b.slot_day, b.planned_hour, b.best_hour, b.hour_propensity
    FROM push.published_recommendations pub
    JOIN push.recommendations r ON r.run_id = pub.run_id
    JOIN best_moment b ON b.user_id = r.user_id AND b.arm <> 'popularity'
    JOIN push.items i ON i.item_id = r.item_id
    WHERE i.in_stock
    UNION ALL
    SELECT b.user_id, (row_number() OVER (PARTITION BY b.user_id ORDER BY p.purchases DESC, p.item_id ASC))::integer,
           p.item_id, 'popular right now', i.category, i.brand, i.price, b.natural_at, b.rate,
           b.top_categories, b.top_brands, b.slot_day, b.planned_hour, b.best_hour, b.hour_propensity
    FROM best_moment b
    CROSS JOIN popular p
    JOIN push.items i ON i.item_id = p.item_id
    WHERE b.arm = 'popularity'
      AND NOT EXISTS (SELECT 1 FROM push.notification_feedback f
                      WHERE f.user_id = b.user_id AND f.item_id = p.item_id AND f.event_type = 'purchase'
                        AND f.ts < CAST(:at AS timestamptz))
),
active_campaigns AS (
    SELECT c.*
    FROM push.campaigns c
    WHERE 'campaign' = ANY(CAST(:kinds AS text[]))
      AND c.valid_to > CAST(:at AS timestamptz) AND c.valid_from < CAST(:horizon_end AS timestamptz)
      AND (CAST(:campaign_id AS text) IS NULL OR c.campaign_id = CAST(:campaign_id AS text))
),
-- The members of each active campaign that names an audience (push.campaign_audience).
audience_members AS MATERIALIZED (
    SELECT c.campaign_id, m.user_id
    FROM active_campaigns c
    CROSS JOIN LATERAL push.campaign_audience(c.audience, CAST(:at AS timestamptz)) AS m
    WHERE c.audience IS NOT NULL
),
-- A campaign without an audience reaches a user whose tastes match one of its targets: a
-- favourite category, a favourite brand, or one of its items among the user's recommendations.
-- A campaign with an audience reaches its members, showing a recommendation that matches one of
-- its targets (any recommendation when it names none). Either way it shows the best ranked
-- such item, and only when it runs at the user's moment.
best_match AS (
    SELECT DISTINCT ON (r.user_id, c.campaign_id) r.*, c.campaign_id, c.transactional, c.channels, c.valid_from,
           c.valid_to, c.priority, c.discount_text
    FROM recs r
    JOIN active_campaigns c ON c.valid_from <= r.natural_at AND r.natural_at < c.valid_to
    LEFT JOIN audience_members a ON a.campaign_id = c.campaign_id AND a.user_id = r.user_id
    WHERE CASE WHEN c.audience IS NULL THEN
                   (r.category = c.target_category AND c.target_category = ANY(r.top_categories[1:2]))
                   OR (r.brand = c.target_brand AND c.target_brand = ANY(r.top_brands))
                   OR r.item_id = ANY(c.target_items)
               ELSE a.user_id IS NOT NULL
                   AND (num_nonnulls(c.target_category, c.target_brand, c.target_items) = 0
                        OR r.category = c.target_category OR r.brand = c.target_brand
                        OR r.item_id = ANY(c.target_items))
          END
    ORDER BY r.user_id, c.campaign_id, r.rank
)
SELECT r.user_id, 'rec:' || r.item_id, 'recommendation', 'recommendation', NULL, r.item_id, r.category, false,
       NULL::text[],
       push.idempotency_key(r.user_id, 'rec:' || r.item_id, r.slot_day),
       r.natural_at, NULL::timestamptz, r.natural_at + CAST(:expiry AS interval),
       (r.price * r.rate / r.rank)::double precision,
       r.reason, NULL, NULL, NULL, NULL, r.planned_hour, r.best_hour, r.hour_propensity
FROM recs r
WHERE r.rank <= 3 AND 'recommendation' = ANY(CAST(:kinds AS text[])) AND CAST(:campaign_id AS text) IS NULL
UNION ALL
SELECT m.user_id, 'campaign:' || m.campaign_id, 'campaign', 'campaign', m.campaign_id, m.item_id, m.category,
       m.transactional, CASE WHEN v.channel IS NOT NULL THEN ARRAY[v.channel] ELSE m.channels END,
       push.idempotency_key(m.user_id, 'campaign:' || m.campaign_id, m.campaign_id || ':' || m.slot_day),
       m.natural_at, m.valid_from, least(m.valid_to, m.natural_at + CAST(:expiry AS interval)),
       (m.price * m.rate * (1 + m.priority / 10.0) * 1.2)::double precision,
       m.reason, m.discount_text, NULL, v.variant, v.template, m.planned_hour, m.best_hour, m.hour_propensity
FROM best_match m
LEFT JOIN push.campaign_variants v
    ON v.campaign_id = m.campaign_id
   AND v.variant = push.campaign_variant_on(m.campaign_id, m.user_id,
                                            CAST(CAST(:at AS timestamptz) AT TIME ZONE 'UTC' AS date))
UNION ALL
SELECT t.user_id, 'trigger:' || t.trigger_key, 'trigger:' || t.trigger_type, t.trigger_type, NULL, t.item_id,
       coalesce(i.category, t.category), false, NULL::text[],
       push.idempotency_key(t.user_id, 'trigger:' || t.trigger_key, 'trigger'),
       greatest(t.fire_at, CAST(:at AS timestamptz)), t.fire_at, t.expires_at,
       (coalesce(i.price, 10) * :default_rate * CASE t.trigger_type
           WHEN 'cart_abandonment' THEN 3.0 WHEN 'price_drop' THEN 2.0 WHEN 'back_in_stock' THEN 2.0 ELSE 1.5
       END)::double precision,
       'because of your recent activity', NULL, t.context ->> 'old_price', NULL, NULL, NULL, NULL, NULL
FROM push.triggers t
JOIN scope s ON s.user_id = t.user_id
LEFT JOIN push.items i ON i.item_id = t.item_id
WHERE 'trigger' = ANY(CAST(:kinds AS text[])) AND CAST(:campaign_id AS text) IS NULL
  AND t.cancelled_at IS NULL
  AND t.fire_at < CAST(:horizon_end AS timestamptz) AND t.expires_at > CAST(:at AS timestamptz)
  AND (t.item_id IS NULL OR coalesce(i.in_stock, false))
