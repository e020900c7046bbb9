-- Send-time optimisation: the best local hour per user and weekday, rebuilt from the delivered
-- messages whose attribution window has closed by :as_of.
-- Click rate per (weekday, hour) slot, Beta-Binomial shrunk three times: global slot toward the
-- global rate, segment slot toward the global slot, user slot toward the segment slot, each
-- with a prior worth :segment_strength / :user_strength messages. rate = click rate x the
-- user's conversion-per-click (shrunk toward the global one). Users without messages of their
-- own get their segment's best hour; with no feedback at all the table stays empty and
-- planners fall back to each profile's most active hour.
DELETE FROM push.send_time_estimates;
INSERT INTO push.send_time_estimates (user_id, weekday, best_hour, rate, basis)
WITH profiles AS (
    SELECT p.user_id, p.segment, p.preferred_hour
    FROM push.user_profiles p
    WHERE p.as_of = (SELECT max(as_of) FROM push.user_profiles WHERE as_of <= CAST(:as_of AS date))
),
sends AS (
    SELECT m.user_id, coalesce(pr.segment, -1) AS segment,
           extract(ISODOW FROM timezone(u.timezone, m.sent_at))::integer - 1 AS weekday,
           extract(HOUR FROM timezone(u.timezone, m.sent_at))::integer AS hour,
           (m.clicked_at IS NOT NULL)::integer AS clicked, (m.converted_at IS NOT NULL)::integer AS converted
    FROM push.message_outcomes m
    JOIN push.users u ON u.user_id = m.user_id
    LEFT JOIN profiles pr ON pr.user_id = m.user_id
    WHERE m.sent_at < CAST(:as_of AS timestamptz) - CAST(:attribution AS interval)
),
overall AS (
    SELECT count(*) AS n, coalesce(sum(clicked)::double precision / nullif(count(*), 0), :default_rate) AS click_rate,
           (sum(converted) + 1.0) / (sum(clicked) + 10.0) AS conversion_rate
    FROM sends
),
slots AS (
    SELECT w AS weekday, h AS hour FROM generate_series(0, 6) AS w CROSS JOIN generate_series(0, 23) AS h
),
global_slot AS (
    SELECT sl.weekday, sl.hour,
           (coalesce(sum(s.clicked), 0) + :segment_strength * o.click_rate) / (count(s.user_id) + :segment_strength) AS rate
    FROM slots sl CROSS JOIN overall o
    LEFT JOIN sends s ON s.weekday = sl.weekday AND s.hour = sl.hour
    GROUP BY sl.weekday, sl.hour, o.click_rate
),
segments AS (SELECT DISTINCT coalesce(segment, -1) AS segment FROM profiles),
segment_slot AS (
    SELECT sg.segment, g.weekday, g.hour, count(s.user_id) AS n,
           (coalesce(sum(s.clicked), 0) + :segment_strength * g.rate) / (count(s.user_id) + :segment_strength) AS rate
    FROM segments sg CROSS JOIN global_slot g
    LEFT JOIN sends s ON s.segment = sg.segment AND s.weekday = g.weekday AND s.hour = g.hour
    GROUP BY sg.segment, g.weekday, g.hour, g.rate
),
user_conversion AS (
    SELECT s.user_id, (sum(s.converted) + :user_strength * o.conversion_rate) / (sum(s.clicked) + :user_strength) AS rate
    FROM sends s CROSS JOIN overall o
    GROUP BY s.user_id, o.conversion_rate
),
user_slot AS (
    SELECT pr.user_id, ss.weekday, ss.hour, pr.preferred_hour,
           (coalesce(sum(s.clicked), 0) + :user_strength * ss.rate) / (count(s.user_id) + :user_strength) AS rate
    FROM profiles pr
    JOIN user_conversion uc ON uc.user_id = pr.user_id
    JOIN segment_slot ss ON ss.segment = coalesce(pr.segment, -1)
    LEFT JOIN sends s ON s.user_id = pr.user_id AND s.weekday = ss.weekday AND s.hour = ss.hour
    GROUP BY pr.user_id, ss.weekday, ss.hour, pr.preferred_hour, ss.rate
),
segment_has_data AS (SELECT segment, sum(n) > 0 AS has_data FROM segment_slot GROUP BY segment)
SELECT * FROM (
    SELECT DISTINCT ON (us.user_id, us.weekday) us.user_id, us.weekday, us.hour, us.rate * uc.rate, 'user'
    FROM user_slot us JOIN user_conversion uc ON uc.user_id = us.user_id
    ORDER BY us.user_id ASC, us.weekday ASC, us.rate DESC, abs(us.hour - coalesce(us.preferred_hour, 12)), us.hour ASC
) AS from_user
UNION ALL
SELECT * FROM (
    SELECT DISTINCT ON (pr.user_id, ss.weekday) pr.user_id, ss.weekday, ss.hour, ss.rate * o.conversion_rate,
           CASE WHEN sd.has_data THEN 'segment' ELSE 'global' END
    FROM profiles pr
    CROSS JOIN overall o
    JOIN segment_slot ss ON ss.segment = coalesce(pr.segment, -1)
    JOIN segment_has_data sd ON sd.segment = ss.segment
    WHERE o.n > 0 AND NOT EXISTS (SELECT 1 FROM user_conversion uc WHERE uc.user_id = pr.user_id)
    ORDER BY pr.user_id ASC, ss.weekday ASC, ss.rate DESC, abs(ss.hour - coalesce(pr.preferred_hour, 12)), ss.hour ASC
) AS from_segment;
