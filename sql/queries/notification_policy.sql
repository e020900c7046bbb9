-- Decide every candidate of the users in batch_users (whose state rows the caller has locked),
-- into the temp table plan_eval. The rules apply in this order, the first that binds wins:
--   1 consent      no consented channel with an address among the candidate's channels -> suppressed_consent
--   2 control group  hash bucket below the holdout share (not for transactional)       -> holdout
--   3 idempotency  the message's key is already in the outbox                          -> duplicate
--   4 quiet hours  a send moment inside the user's quiet window moves to its end (deferred_quiet_hours);
--                  past the message's expiry                                          -> expired / expired_quiet_hours
--   5 frequency    min gap, rolling 24 h, rolling 7 d (fatigued users: lower caps), per channel per 24 h,
--                  per campaign -> capped_min_gap / capped_daily / capped_weekly / capped_channel / capped_campaign;
--                  candidates compete in order of expected value (transactional first, never capped)
--   otherwise sent (queued for its send moment).
-- Each user has one send moment per run (the earliest due candidate, moved out of quiet hours);
-- rolling caps are checked on every window that contains it, including windows that end after
-- it, so a backfill planned out of order cannot overshoot either.
INSERT INTO plan_eval (user_id, candidate_key, source, campaign_id, item_id, transactional, channel, locale,
                       idempotency_key, scheduled_at, deferred, expires_at, expected_value, facts, decision)
WITH RECURSIVE
u AS (
    SELECT b.user_id, us.timezone, us.locale, coalesce(st.fatigued, false) AS fatigued,
           push.holdout_bucket(b.user_id, :holdout_salt) < :holdout_basis_points AS in_holdout,
           ARRAY[us.consent_push AND us.push_token IS NOT NULL,
                 us.consent_email AND us.email IS NOT NULL,
                 us.consent_sms AND us.phone IS NOT NULL,
                 us.consent_webhook AND us.webhook_url IS NOT NULL] AS reachable
    FROM batch_users b
    JOIN push.users us ON us.user_id = b.user_id
    LEFT JOIN push.notify_user_state st ON st.user_id = b.user_id
),
moment AS (
    SELECT c.user_id, min(c.natural_at) AS natural_at
    FROM plan_candidates c JOIN batch_users b ON b.user_id = c.user_id
    GROUP BY c.user_id
),
sched AS (
    SELECT m.user_id, coalesce(q.quiet_end, m.natural_at) AS scheduled_at, q.quiet_end IS NOT NULL AS deferred
    FROM moment m
    JOIN u ON u.user_id = m.user_id
    CROSS JOIN LATERAL (
        SELECT push.quiet_hours_end(m.natural_at, u.timezone, CAST(:quiet_start AS time), CAST(:quiet_end AS time))
               AS quiet_end
    ) AS q
),
existing AS MATERIALIZED (
    -- Messages that count toward caps, near each user's send moment.
    SELECT l.user_id, l.scheduled_at AS t, l.channel, l.campaign_id
    FROM push.notification_ledger l
    JOIN sched s ON s.user_id = l.user_id
    WHERE l.status IN ('pending', 'sent')
      AND (NOT l.transactional OR :transactional_counts)
      AND l.scheduled_at > s.scheduled_at - CAST(:long_window AS interval)
      AND l.scheduled_at < s.scheduled_at + CAST(:long_window AS interval)
),
ends AS (
    -- Ends of the rolling windows that contain the send moment: the moment itself and every
    -- existing message after it (the count in a window only grows at those points).
    SELECT user_id, scheduled_at AS end_at FROM sched
    UNION
    SELECT x.user_id, x.t FROM existing x JOIN sched s ON s.user_id = x.user_id WHERE x.t >= s.scheduled_at
),
window_counts AS (
    SELECT e.user_id, e.end_at, x.channel,
           count(*) FILTER (WHERE x.t > e.end_at - interval '24 hours') AS in_day,
           count(*) AS in_week
    FROM ends e
    JOIN sched s ON s.user_id = e.user_id
    JOIN existing x ON x.user_id = e.user_id AND x.t > e.end_at - interval '7 days' AND x.t <= e.end_at
    WHERE e.end_at < s.scheduled_at + interval '7 days'
    GROUP BY e.user_id, e.end_at, x.channel
),
window_totals AS (
    SELECT user_id, end_at, sum(in_day) AS in_day, sum(in_week) AS in_week
    FROM window_counts GROUP BY user_id, end_at
),
gap_blocked AS (
    SELECT DISTINCT x.user_id
    FROM existing x JOIN sched s ON s.user_id = x.user_id
    WHERE x.t > s.scheduled_at - CAST(:min_gap AS interval) AND x.t < s.scheduled_at + CAST(:min_gap AS interval)
),
usage AS (
    SELECT s.user_id,
           coalesce(max(w.in_day) FILTER (WHERE w.end_at < s.scheduled_at + interval '24 hours'), 0)::integer AS day_used,
           coalesce(max(w.in_week), 0)::integer AS week_used,
           bool_or(g.user_id IS NOT NULL) AS gap_blocked
    FROM sched s
    LEFT JOIN window_totals w ON w.user_id = s.user_id
    LEFT JOIN gap_blocked g ON g.user_id = s.user_id
    GROUP BY s.user_id
),
channel_usage AS (
    SELECT w.user_id, w.channel, max(w.in_day)::integer AS used
    FROM window_counts w JOIN sched s ON s.user_id = w.user_id
    WHERE w.end_at < s.scheduled_at + interval '24 hours'
    GROUP BY w.user_id, w.channel
),
campaign_usage AS (
    SELECT x.user_id, x.campaign_id, count(*)::integer AS used
    FROM existing x JOIN sched s ON s.user_id = x.user_id
    WHERE x.campaign_id IS NOT NULL
      AND x.t > s.scheduled_at - CAST(:campaign_window AS interval)
      AND x.t < s.scheduled_at + CAST(:campaign_window AS interval)
    GROUP BY x.user_id, x.campaign_id
),
cand AS (
    SELECT c.*, u.locale, u.in_holdout, u.fatigued, s.scheduled_at, s.deferred,
           (SELECT o.channel FROM unnest(CAST(:channel_order AS text[])) WITH ORDINALITY AS o(channel, n)
            WHERE u.reachable[o.n] AND (c.allowed_channels IS NULL OR o.channel = ANY(c.allowed_channels))
            ORDER BY o.n LIMIT 1) AS channel,
           push.idempotency_key(c.user_id, c.candidate_key, c.slot) AS idempotency_key
    FROM plan_candidates c
    JOIN batch_users b ON b.user_id = c.user_id
    JOIN u ON u.user_id = c.user_id
    JOIN sched s ON s.user_id = c.user_id
),
pre AS (
    SELECT cand.*,
           CASE
               WHEN channel IS NULL THEN 'suppressed_consent'
               WHEN in_holdout AND NOT transactional THEN 'holdout'
               WHEN EXISTS (SELECT 1 FROM push.notification_ledger l WHERE l.idempotency_key = cand.idempotency_key)
                   THEN 'duplicate'
               WHEN scheduled_at >= expires_at THEN CASE WHEN deferred THEN 'expired_quiet_hours' ELSE 'expired' END
           END AS pre_decision
    FROM cand
),
ranked AS MATERIALIZED (
    SELECT p.user_id, p.candidate_key, p.channel, p.campaign_id, p.transactional,
           row_number() OVER (PARTITION BY p.user_id
                              ORDER BY p.transactional DESC, p.expected_value DESC, p.candidate_key) AS rn,
           us.day_used, us.week_used, us.gap_blocked,
           CASE WHEN p.fatigued THEN least(:daily_cap, :fatigue_daily_cap) ELSE :daily_cap END AS day_cap,
           CASE WHEN p.fatigued THEN least(:weekly_cap, :fatigue_weekly_cap) ELSE :weekly_cap END AS week_cap,
           coalesce(cu.used, 0) AS channel_used,
           coalesce((CAST(:channel_caps AS integer[]))[array_position(CAST(:channel_order AS text[]), p.channel)],
                    2147483647) AS channel_cap,
           coalesce(ca.used, 0) AS campaign_used
    FROM pre p
    JOIN usage us ON us.user_id = p.user_id
    LEFT JOIN channel_usage cu ON cu.user_id = p.user_id AND cu.channel = p.channel
    LEFT JOIN campaign_usage ca ON ca.user_id = p.user_id AND ca.campaign_id = p.campaign_id
    WHERE p.pre_decision IS NULL
),
-- Greedy in expected-value order, one rank per step for every user at once: a candidate goes
-- if no rule binds given what the higher-ranked ones of this run already took.
greedy (user_id, rn, candidate_key, reason, accepted, taken_channels, taken_campaigns) AS (
    SELECT DISTINCT user_id, 0::bigint, NULL::text, NULL::text, 0, ARRAY[]::text[], ARRAY[]::text[] FROM ranked
    UNION ALL
    SELECT r.user_id, r.rn, r.candidate_key, v.reason,
           g.accepted + v.counted,
           CASE WHEN v.counted = 1 THEN g.taken_channels || r.channel ELSE g.taken_channels END,
           CASE WHEN v.counted = 1 AND r.campaign_id IS NOT NULL THEN g.taken_campaigns || r.campaign_id
                ELSE g.taken_campaigns END
    FROM greedy g
    JOIN ranked r ON r.user_id = g.user_id AND r.rn = g.rn + 1
    CROSS JOIN LATERAL (
        SELECT d.reason,
               CASE WHEN d.reason IS NULL AND (NOT r.transactional OR :transactional_counts) THEN 1 ELSE 0 END AS counted
        FROM (SELECT push.cap_decision(
                  r.transactional, r.gap_blocked, CAST(:min_gap AS interval) > interval '0', g.accepted,
                  r.day_used, r.day_cap, r.week_used, r.week_cap,
                  r.channel_used + cardinality(array_positions(g.taken_channels, r.channel)), r.channel_cap,
                  CASE WHEN r.campaign_id IS NULL THEN 0
                       ELSE r.campaign_used + cardinality(array_positions(g.taken_campaigns, r.campaign_id)) END,
                  CASE WHEN r.campaign_id IS NULL THEN 2147483647 ELSE :campaign_cap END) AS reason) AS d
    ) AS v
)
SELECT p.user_id, p.candidate_key, p.source, p.campaign_id, p.item_id, p.transactional, p.channel, p.locale,
       p.idempotency_key, p.scheduled_at, p.deferred, p.expires_at, p.expected_value, p.facts,
       coalesce(p.pre_decision, g.reason, CASE WHEN p.deferred THEN 'deferred_quiet_hours' ELSE 'sent' END)
FROM pre p
LEFT JOIN greedy g ON g.user_id = p.user_id AND g.candidate_key = p.candidate_key
