-- Decide every candidate of one batch of users and record the decisions and the outbox rows, in
-- one statement (run right after the batch's users were locked, so its snapshot sees every
-- message and decision another planner committed for them). Returns the count per decision.
--   :low, :high               the batch: users numbered [low, high) in plan_users (user order)
--   :first_user, :last_user   the first and last user id of that range (index ranges below)
--   :run_key, :at             the run's identity and logical time (stamped on every decision)
-- The rules apply in this order, the first that binds wins:
--   1 consent      no consented channel with an address among the candidate's channels -> suppressed_consent
--   2 control group  hash bucket below the holdout share (not for transactional)       -> holdout
--   2b uplift gate   the user's day did not pass the uplift draw (not for transactional) -> skipped_uplift
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
WITH
sched AS MATERIALIZED (
    -- The batch's users with their policy facts, read here, under the batch's locks (an opt-out
    -- committed before is seen): consent per channel with an address (in the channel order of
    -- jobs/notify/policy.py), fatigue, and the run's send moment and holdout. A user a twin of
    -- this run decided while we waited for the locks is left out.
    -- The fixed_cap policy arm ignores fatigue: its users keep the plain caps.
    SELECT p.user_id, u.locale, coalesce(st.fatigued, false) AND p.policy_arm <> 'fixed_cap' AS fatigued,
           p.policy_arm, p.in_holdout, p.uplift_skip, p.uplift_probability, p.scheduled_at, p.deferred,
           ARRAY[u.consent_push AND u.push_token IS NOT NULL,
                 u.consent_email AND u.email IS NOT NULL,
                 u.consent_sms AND u.phone IS NOT NULL,
                 u.consent_webhook AND u.webhook_url IS NOT NULL] AS reachable
    -- Every table is read over the batch's user id range, so that each join is a hash or merge
    -- join of batch-sized inputs (the planner runs this statement with nested loops off).
    FROM plan_users p
    JOIN push.users u ON u.user_id = p.user_id AND u.user_id BETWEEN :first_user AND :last_user
    LEFT JOIN push.notify_user_state st
           ON st.user_id = p.user_id AND st.user_id BETWEEN :first_user AND :last_user
    WHERE p.n >= :low AND p.n < :high
      AND NOT EXISTS (SELECT 1 FROM push.notification_decisions d
                      WHERE d.run_key = :run_key AND d.user_id = p.user_id
                        AND d.user_id BETWEEN :first_user AND :last_user)
),
existing AS MATERIALIZED (
    -- Messages that count toward caps, near each user's send moment: one index range over the
    -- batch's users (user_id, scheduled_at), not one index descent per user.
    SELECT s.user_id, l.scheduled_at AS t, l.channel, l.campaign_id
    FROM push.notification_ledger l
    JOIN sched s ON s.user_id = l.user_id
    WHERE l.user_id BETWEEN :first_user AND :last_user
      AND l.scheduled_at > s.scheduled_at - CAST(:long_window AS interval)
      AND l.scheduled_at < s.scheduled_at + CAST(:long_window AS interval)
      AND l.status IN ('pending', 'sent')
      AND (NOT l.transactional OR :transactional_counts)
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
usage AS (
    -- Per user with history: the fullest 24 h and 7 d windows that contain the send moment.
    -- Users without history get zeros below.
    SELECT w.user_id,
           coalesce(max(w.in_day) FILTER (WHERE w.end_at < s.scheduled_at + interval '24 hours'), 0)::integer
               AS day_used,
           coalesce(max(w.in_week), 0)::integer AS week_used
    FROM window_totals w
    JOIN sched s ON s.user_id = w.user_id
    GROUP BY w.user_id
),
gap_blocked AS (
    SELECT DISTINCT x.user_id
    FROM existing x JOIN sched s ON s.user_id = x.user_id
    WHERE x.t > s.scheduled_at - CAST(:min_gap AS interval) AND x.t < s.scheduled_at + CAST(:min_gap AS interval)
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
    -- Channel: the first of the channel order (4 channels, as in sched.reachable) that the
    -- user can be reached on and the candidate allows.
    SELECT c.*, s.locale, s.in_holdout, s.uplift_skip, s.uplift_probability, s.fatigued, s.policy_arm,
           s.scheduled_at, s.deferred,
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
pre AS MATERIALIZED (
    -- Materialised: the rules below read pre_decision several times; the outbox look-up runs once.
    -- Only what the rules and the decision rows need; the message's facts (kind, reason, ...) are
    -- read back from plan_candidates for the accepted candidates only, in "queued".
    SELECT cand.user_id, cand.candidate_key, cand.source, cand.campaign_id, cand.item_id, cand.transactional,
           cand.channel, cand.locale, cand.idempotency_key, cand.scheduled_at, cand.deferred, cand.expires_at,
           cand.expected_value, cand.fatigued, cand.policy_arm, cand.variant, cand.planned_hour, cand.best_hour,
           cand.hour_propensity, CASE WHEN NOT cand.transactional THEN cand.uplift_probability END AS uplift_probability,
           CASE
               WHEN channel IS NULL THEN 'suppressed_consent'
               WHEN in_holdout AND NOT transactional THEN 'holdout'
               WHEN uplift_skip AND NOT transactional THEN 'skipped_uplift'
               WHEN EXISTS (SELECT 1 FROM push.notification_ledger l WHERE l.idempotency_key = cand.idempotency_key)
                   THEN 'duplicate'
               WHEN scheduled_at >= expires_at THEN CASE WHEN deferred THEN 'expired_quiet_hours' ELSE 'expired' END
           END AS pre_decision
    FROM cand
),
limits AS (
    -- What the outbox already uses and what the caps allow, per candidate. A candidate passes
    -- on its own ("alone_ok") when it is not exempt, not blocked by the gap to an existing
    -- message and its campaign's cap is not reached. The campaign check needs nothing from the
    -- candidates ranked above: a campaign is one candidate per user (candidate_key
    -- 'campaign:<id>', unique per user), the other sources carry none.
    -- Only candidates no earlier rule decided take part (the others take no room under any cap),
    -- and only the columns the rules need travel through the sorts and windows below; the
    -- message's other columns join back in "decided".
    SELECT p.user_id, p.candidate_key, p.channel, p.transactional, p.expected_value,
           coalesce(us.day_used, 0) AS day_used,
           coalesce(us.week_used, 0) AS week_used,
           g.user_id IS NOT NULL AS gap_blocked,
           CASE WHEN p.fatigued THEN least(:daily_cap, :fatigue_daily_cap) ELSE :daily_cap END AS day_cap,
           CASE WHEN p.fatigued THEN least(:weekly_cap, :fatigue_weekly_cap) ELSE :weekly_cap END AS week_cap,
           coalesce(cu.used, 0) AS channel_used,
           coalesce((CAST(:channel_caps AS integer[]))[array_position(CAST(:channel_order AS text[]), p.channel)],
                    2147483647) AS channel_cap,
           CASE WHEN p.campaign_id IS NULL THEN 0 ELSE coalesce(ca.used, 0) END AS campaign_used,
           CASE WHEN p.campaign_id IS NULL THEN 2147483647 ELSE :campaign_cap END AS campaign_cap,
           p.transactional AND :transactional_counts AS counted_exempt,
           NOT p.transactional AND g.user_id IS NULL
               AND (p.campaign_id IS NULL OR coalesce(ca.used, 0) < :campaign_cap) AS alone_ok
    FROM pre p
    LEFT JOIN usage us ON us.user_id = p.user_id
    LEFT JOIN gap_blocked g ON g.user_id = p.user_id
    LEFT JOIN channel_usage cu ON cu.user_id = p.user_id AND cu.channel = p.channel
    LEFT JOIN campaign_usage ca ON ca.user_id = p.user_id AND ca.campaign_id = p.campaign_id
    WHERE p.pre_decision IS NULL
),
-- The greedy "best expected value first" of docs/notification-policy.md, in closed form. A user's candidates go
-- in rank order (transactional first, then expected value); one goes if no rule binds given
-- what the higher-ranked ones took. What they took is: A, the counted messages ranked above,
-- and T, those on the candidate's channel. Counted exempt (transactional) messages rank first,
-- so every other candidate sees all of them (a0). After them, the per-user budget
-- E = min(day cap - day used, week cap - week used) - a0 (at most 1 - a0 with a minimum gap: a
-- second message would break it). While fewer than E went, a candidate goes exactly when it
-- passes alone and its channel still has room: the candidates above it on its channel that are
-- counted exempt or pass alone (r) are all taken until the channel is full, so the channel is
-- full exactly when channel used + r reaches its cap. So "would go" (may_go) is known per
-- candidate, A is a0 + min(number of may_go above, E), and push.cap_decision gives the reason
-- from A and channel used + r exactly as one step of the greedy would (it compares the channel
-- count with the cap only).
by_channel AS (
    -- Counts over the rows ranked above, per channel of the channel order (4, as in
    -- sched.reachable). Every candidate here has a channel (one without was suppressed for
    -- consent). One sort serves this window and the next.
    SELECT l.*,
           count(*) FILTER (WHERE l.counted_exempt) OVER above AS a0,
           (ARRAY[count(*) FILTER (WHERE (l.alone_ok OR l.counted_exempt) AND l.channel_no = 1) OVER above,
                  count(*) FILTER (WHERE (l.alone_ok OR l.counted_exempt) AND l.channel_no = 2) OVER above,
                  count(*) FILTER (WHERE (l.alone_ok OR l.counted_exempt) AND l.channel_no = 3) OVER above,
                  count(*) FILTER (WHERE (l.alone_ok OR l.counted_exempt) AND l.channel_no = 4) OVER above]
           )[l.channel_no] AS r
    FROM (SELECT l.*, array_position(CAST(:channel_order AS text[]), l.channel) AS channel_no FROM limits l) AS l
    WINDOW above AS (PARTITION BY l.user_id ORDER BY l.transactional DESC, l.expected_value DESC, l.candidate_key ASC
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
),
taken AS (
    SELECT m.*,
           count(*) FILTER (WHERE m.may_go) OVER (
               PARTITION BY m.user_id
               ORDER BY m.transactional DESC, m.expected_value DESC, m.candidate_key ASC
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS went_above
    FROM (SELECT b.*, b.alone_ok AND b.channel_used + b.r < b.channel_cap AS may_go FROM by_channel b) AS m
),
decided AS MATERIALIZED (
    SELECT p.user_id, p.candidate_key, p.source, p.campaign_id, p.item_id, p.transactional,
           p.channel, p.locale, p.idempotency_key, p.scheduled_at, p.deferred, p.expires_at, p.expected_value,
           p.policy_arm, p.variant, p.planned_hour, p.best_hour, p.hour_propensity, p.uplift_probability,
           p.pre_decision AS decision
    FROM pre p WHERE p.pre_decision IS NOT NULL
    UNION ALL
    SELECT p.user_id, p.candidate_key, p.source, p.campaign_id, p.item_id, p.transactional,
           p.channel, p.locale, p.idempotency_key, p.scheduled_at, p.deferred, p.expires_at, p.expected_value,
           p.policy_arm, p.variant, p.planned_hour, p.best_hour, p.hour_propensity, p.uplift_probability,
           coalesce(
               push.cap_decision(
                   t.transactional, t.gap_blocked, CAST(:min_gap AS interval) > interval '0',
                   (t.a0 + least(t.went_above, greatest(
                       least(t.day_cap - t.day_used, t.week_cap - t.week_used,
                             CASE WHEN CAST(:min_gap AS interval) > interval '0' THEN 1 ELSE 2147483647 END)
                       - t.a0, 0)))::integer,
                   t.day_used, t.day_cap, t.week_used, t.week_cap,
                   (t.channel_used + t.r)::integer, t.channel_cap,
                   t.campaign_used, t.campaign_cap),
               CASE WHEN p.deferred THEN 'deferred_quiet_hours' ELSE 'sent' END) AS decision
    FROM taken t
    JOIN pre p ON p.user_id = t.user_id AND p.candidate_key = t.candidate_key
),
-- Plain inserts: under the batch's locks, with users this run already decided left out and
-- duplicates decided as such, a conflict can only be a bug, and must fail loudly.
recorded AS (
    INSERT INTO push.notification_decisions (run_key, user_id, candidate_key, source, item_id, channel,
                                             expected_value, decision, idempotency_key, decided_at, campaign_id,
                                             transactional, scheduled_at, policy_arm, variant, planned_hour,
                                             best_hour, hour_propensity, uplift_probability)
    SELECT :run_key, user_id, candidate_key, source, item_id, channel, expected_value, decision, idempotency_key,
           :at, campaign_id, transactional, scheduled_at, policy_arm, variant, planned_hour, best_hour,
           hour_propensity, uplift_probability
    FROM decided
),
queued AS (
    -- The message's facts are built for accepted candidates only (their candidate rows joined back).
    INSERT INTO push.notification_ledger (idempotency_key, run_key, user_id, channel, source, item_id, scheduled_at,
                                          transactional, payload, candidate_key, campaign_id, expected_value,
                                          expires_at, deferred)
    SELECT e.idempotency_key, :run_key, e.user_id, e.channel, e.source, e.item_id, e.scheduled_at, e.transactional,
           jsonb_build_object('locale', e.locale, 'facts', jsonb_build_object(
               'kind', c.kind, 'item_title', coalesce(i.title, c.category), 'category', coalesce(i.category, c.category),
               'price', to_char(coalesce(i.price, 0), 'FM999999990.00'), 'reason', c.reason,
               'discount_text', c.discount_text, 'old_price', c.old_price, 'template', c.template)),
           e.candidate_key, e.campaign_id, e.expected_value, e.expires_at, e.deferred
    FROM decided e
    JOIN plan_candidates c ON c.user_id = e.user_id AND c.candidate_key = e.candidate_key
                          AND c.user_id BETWEEN :first_user AND :last_user
    LEFT JOIN push.items i ON i.item_id = e.item_id
    WHERE e.decision IN ('sent', 'deferred_quiet_hours')
)
SELECT decision, count(*) FROM decided GROUP BY decision
