-- Decide every candidate of the users in batch_sched (their send moments and facts, see
-- notification_moments.sql), into the temp table plan_eval. The rules apply in this order, the first that binds wins:
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
INSERT INTO plan_eval (user_id, candidate_key, source, kind, campaign_id, item_id, category, transactional, channel,
                       locale, idempotency_key, scheduled_at, deferred, expires_at, expected_value, reason,
                       discount_text, old_price, decision)
WITH RECURSIVE
sched AS (SELECT * FROM batch_sched),
existing AS MATERIALIZED (
    -- Messages that count toward caps, near each user's send moment (an index range per user).
    SELECT s.user_id, l.scheduled_at AS t, l.channel, l.campaign_id
    FROM sched s
    CROSS JOIN LATERAL (
        SELECT l.scheduled_at, l.channel, l.campaign_id
        FROM push.notification_ledger l
        WHERE l.user_id = s.user_id
          AND l.scheduled_at > s.scheduled_at - CAST(:long_window AS interval)
          AND l.scheduled_at < s.scheduled_at + CAST(:long_window AS interval)
          AND l.status IN ('pending', 'sent')
          AND (NOT l.transactional OR :transactional_counts)
        OFFSET 0  -- keeps the per-user index range: the planner would hash the whole outbox
    ) AS l
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
    -- Channel: the first of the channel order (4 channels, as in batch_sched.reachable) that the
    -- user can be reached on and the candidate allows.
    SELECT c.*, s.locale, s.in_holdout, s.fatigued, s.scheduled_at, s.deferred,
           CASE
               WHEN s.reachable[1] AND (c.allowed_channels IS NULL OR o.ch[1] = ANY(c.allowed_channels)) THEN o.ch[1]
               WHEN s.reachable[2] AND (c.allowed_channels IS NULL OR o.ch[2] = ANY(c.allowed_channels)) THEN o.ch[2]
               WHEN s.reachable[3] AND (c.allowed_channels IS NULL OR o.ch[3] = ANY(c.allowed_channels)) THEN o.ch[3]
               WHEN s.reachable[4] AND (c.allowed_channels IS NULL OR o.ch[4] = ANY(c.allowed_channels)) THEN o.ch[4]
           END AS channel
    FROM plan_candidates c
    JOIN sched s ON s.user_id = c.user_id
    CROSS JOIN (SELECT CAST(:channel_order AS text[]) AS ch) AS o
    -- Batches are ranges of user ids: an index range instead of a scan of every candidate.
    WHERE c.user_id BETWEEN :first_user AND :last_user
      -- A campaign not started or a trigger not fired by the user's send moment waits for a
      -- later run (it is not decided in this one).
      AND (c.not_before IS NULL OR s.scheduled_at >= c.not_before)
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
SELECT p.user_id, p.candidate_key, p.source, p.kind, p.campaign_id, p.item_id, p.category, p.transactional, p.channel,
       p.locale, p.idempotency_key, p.scheduled_at, p.deferred, p.expires_at, p.expected_value, p.reason,
       p.discount_text, p.old_price,
       coalesce(p.pre_decision, g.reason, CASE WHEN p.deferred THEN 'deferred_quiet_hours' ELSE 'sent' END)
FROM pre p
LEFT JOIN greedy g ON g.user_id = p.user_id AND g.candidate_key = p.candidate_key
