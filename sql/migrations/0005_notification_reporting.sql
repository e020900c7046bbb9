-- Notification reporting for analysts (schema analytics): per planning run, per campaign, per
-- UTC day and decision, send hours, delivery health and dead letters, with the conversion lift
-- of the treatment arm over the control group. Counts are 0 and ratios NULL (never a division
-- error) where there is nothing to count. No view exposes an address: push.users is joined only
-- for the timezone. The current definitions of these views and functions are in sql/views and
-- sql/functions.

-- Conversion lift of treatment over control, with 95 percent confidence intervals:
--   p1 = treatment conversions / treatment users, p2 likewise for control;
--   absolute lift p1 - p2 with the Wald interval p1 - p2 -/+ 1.96 sqrt(p1(1-p1)/n1 + p2(1-p2)/n2);
--   relative lift p1/p2 - 1 with the Katz (log risk ratio) interval
--   exp(ln(p1/p2) -/+ 1.96 sqrt((1-p1)/(n1 p1) + (1-p2)/(n2 p2))) - 1.
-- NULL where undefined: a rate without users, the absolute lift without both arms, the relative
-- lift when p2 = 0, the Katz interval when p1 = 0 or p2 = 0.
CREATE FUNCTION analytics.conversion_lift(
    n_treatment bigint, x_treatment bigint, n_control bigint, x_control bigint)
RETURNS TABLE (
    treatment_conversion_rate double precision,
    control_conversion_rate   double precision,
    absolute_lift             double precision,
    absolute_lift_ci_low      double precision,
    absolute_lift_ci_high     double precision,
    relative_lift             double precision,
    relative_lift_ci_low      double precision,
    relative_lift_ci_high     double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p1, p2, p1 - p2,
           p1 - p2 - 1.96 * sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2),
           p1 - p2 + 1.96 * sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2),
           CASE WHEN p2 > 0 THEN p1 / p2 - 1 END,
           CASE WHEN p1 > 0 AND p2 > 0
                THEN exp(ln(p1 / p2) - 1.96 * sqrt((1 - p1) / (n1 * p1) + (1 - p2) / (n2 * p2))) - 1 END,
           CASE WHEN p1 > 0 AND p2 > 0
                THEN exp(ln(p1 / p2) + 1.96 * sqrt((1 - p1) / (n1 * p1) + (1 - p2) / (n2 * p2))) - 1 END
    FROM (
        SELECT c.x1 / c.n1 AS p1, c.x2 / c.n2 AS p2, c.n1, c.n2
        FROM (
            SELECT CAST(nullif(n_treatment, 0) AS double precision) AS n1,
                   CAST(x_treatment AS double precision) AS x1,
                   CAST(nullif(n_control, 0) AS double precision) AS n2,
                   CAST(x_control AS double precision) AS x2
        ) AS c
    ) AS r
$$;

-- One row per planning run (a run in push.notification_runs, or one that recorded decisions
-- but crashed before its run row: then logical_time is its decision time, horizon NULL).
--   candidates = queued + the suppression columns + other_decisions (codes this view does not
--   know); queued = sent + deferred_quiet_hours (the decisions that filled the outbox);
--   delivered .. pending: the outbox rows the run queued, by status now;
--   opens .. revenue: push.message_outcomes of its delivered messages (attribution window of
--   the feedback step); ctr = clicks / delivered, cvr = conversions / delivered;
--   treatment/control: push.decision_outcomes (intent to treat; one row per run and user).
CREATE VIEW analytics.notification_run_report AS
WITH run_keys AS (
    SELECT run_key FROM push.notification_runs
    UNION
    SELECT run_key FROM push.notification_decisions
), decided AS (
    SELECT run_key,
           min(decided_at) AS first_decided_at,
           count(DISTINCT user_id) AS users,
           count(*) AS candidates,
           count(*) FILTER (WHERE decision IN ('sent', 'deferred_quiet_hours')) AS queued,
           count(*) FILTER (WHERE decision = 'deferred_quiet_hours') AS deferred,
           count(*) FILTER (WHERE decision = 'suppressed_consent') AS suppressed_consent,
           count(*) FILTER (WHERE decision = 'holdout') AS holdout,
           count(*) FILTER (WHERE decision = 'duplicate') AS duplicate,
           count(*) FILTER (WHERE decision IN ('expired', 'expired_quiet_hours')) AS expired,
           count(*) FILTER (WHERE decision = 'capped_min_gap') AS capped_min_gap,
           count(*) FILTER (WHERE decision = 'capped_daily') AS capped_daily,
           count(*) FILTER (WHERE decision = 'capped_weekly') AS capped_weekly,
           count(*) FILTER (WHERE decision = 'capped_channel') AS capped_channel,
           count(*) FILTER (WHERE decision = 'capped_campaign') AS capped_campaign,
           count(*) FILTER (WHERE decision NOT IN (
               'sent', 'deferred_quiet_hours', 'suppressed_consent', 'holdout', 'duplicate', 'expired',
               'expired_quiet_hours', 'capped_min_gap', 'capped_daily', 'capped_weekly', 'capped_channel',
               'capped_campaign')) AS other_decisions
    FROM push.notification_decisions
    GROUP BY run_key
), outbox AS (
    SELECT run_key,
           count(*) FILTER (WHERE status = 'sent') AS delivered,
           count(*) FILTER (WHERE status = 'dead') AS dead,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE status = 'expired') AS expired_in_outbox,
           count(*) FILTER (WHERE status = 'pending') AS pending
    FROM push.notification_ledger
    GROUP BY run_key
), engaged AS (
    SELECT run_key, count(opened_at) AS opens, count(clicked_at) AS clicks, count(converted_at) AS conversions,
           sum(revenue) AS revenue
    FROM push.message_outcomes
    GROUP BY run_key
), arms AS (
    SELECT run_key,
           count(*) FILTER (WHERE arm = 'treatment') AS treatment_users,
           count(*) FILTER (WHERE arm = 'treatment' AND converted) AS treatment_conversions,
           count(*) FILTER (WHERE arm = 'control') AS control_users,
           count(*) FILTER (WHERE arm = 'control' AND converted) AS control_conversions
    FROM push.decision_outcomes
    GROUP BY run_key
), measures AS (
    SELECT k.run_key,
           coalesce(r.logical_time, d.first_decided_at) AS logical_time,
           r.horizon_hours,
           r.campaign_id,
           CAST(coalesce(r.users, d.users, 0) AS bigint) AS users,
           coalesce(d.candidates, 0) AS candidates,
           coalesce(d.queued, 0) AS queued,
           coalesce(d.deferred, 0) AS deferred,
           coalesce(d.suppressed_consent, 0) AS suppressed_consent,
           coalesce(d.holdout, 0) AS holdout,
           coalesce(d.duplicate, 0) AS duplicate,
           coalesce(d.expired, 0) AS expired,
           coalesce(d.capped_min_gap, 0) AS capped_min_gap,
           coalesce(d.capped_daily, 0) AS capped_daily,
           coalesce(d.capped_weekly, 0) AS capped_weekly,
           coalesce(d.capped_channel, 0) AS capped_channel,
           coalesce(d.capped_campaign, 0) AS capped_campaign,
           coalesce(d.other_decisions, 0) AS other_decisions,
           coalesce(o.delivered, 0) AS delivered,
           coalesce(o.dead, 0) AS dead,
           coalesce(o.cancelled, 0) AS cancelled,
           coalesce(o.expired_in_outbox, 0) AS expired_in_outbox,
           coalesce(o.pending, 0) AS pending,
           coalesce(e.opens, 0) AS opens,
           coalesce(e.clicks, 0) AS clicks,
           coalesce(e.conversions, 0) AS conversions,
           coalesce(e.revenue, 0) AS revenue,
           coalesce(a.treatment_users, 0) AS treatment_users,
           coalesce(a.treatment_conversions, 0) AS treatment_conversions,
           coalesce(a.control_users, 0) AS control_users,
           coalesce(a.control_conversions, 0) AS control_conversions
    FROM run_keys k
    LEFT JOIN push.notification_runs r ON r.run_key = k.run_key
    LEFT JOIN decided d ON d.run_key = k.run_key
    LEFT JOIN outbox o ON o.run_key = k.run_key
    LEFT JOIN engaged e ON e.run_key = k.run_key
    LEFT JOIN arms a ON a.run_key = k.run_key
)
SELECT m.run_key, m.logical_time, m.horizon_hours, m.campaign_id, m.users, m.candidates, m.queued, m.deferred,
       m.suppressed_consent, m.holdout, m.duplicate, m.expired, m.capped_min_gap, m.capped_daily,
       m.capped_weekly, m.capped_channel, m.capped_campaign, m.other_decisions,
       m.delivered, m.dead, m.cancelled, m.expired_in_outbox, m.pending,
       m.opens, m.clicks, m.conversions, m.revenue,
       CAST(m.clicks AS double precision) / nullif(m.delivered, 0) AS ctr,
       CAST(m.conversions AS double precision) / nullif(m.delivered, 0) AS cvr,
       m.treatment_users, m.treatment_conversions, l.treatment_conversion_rate,
       m.control_users, m.control_conversions, l.control_conversion_rate,
       l.absolute_lift, l.absolute_lift_ci_low, l.absolute_lift_ci_high,
       l.relative_lift, l.relative_lift_ci_low, l.relative_lift_ci_high
FROM measures m
CROSS JOIN LATERAL analytics.conversion_lift(
    m.treatment_users, m.treatment_conversions, m.control_users, m.control_conversions) AS l;

-- The same measures per campaign over all its runs: decisions, outbox rows, message outcomes
-- and arms carrying that campaign_id (an arm row carries the campaign of the user's best
-- candidate in the run). Treatment and control "users" are (run, user) pairs, as in the run
-- report, so a user in several runs counts once per run. users = distinct users decided for.
CREATE VIEW analytics.campaign_report AS
WITH decided AS (
    SELECT campaign_id,
           count(DISTINCT run_key) AS runs,
           min(decided_at) AS first_decided_at,
           max(decided_at) AS last_decided_at,
           count(DISTINCT user_id) AS users,
           count(*) AS candidates,
           count(*) FILTER (WHERE decision IN ('sent', 'deferred_quiet_hours')) AS queued,
           count(*) FILTER (WHERE decision = 'deferred_quiet_hours') AS deferred,
           count(*) FILTER (WHERE decision = 'suppressed_consent') AS suppressed_consent,
           count(*) FILTER (WHERE decision = 'holdout') AS holdout,
           count(*) FILTER (WHERE decision = 'duplicate') AS duplicate,
           count(*) FILTER (WHERE decision IN ('expired', 'expired_quiet_hours')) AS expired,
           count(*) FILTER (WHERE decision = 'capped_min_gap') AS capped_min_gap,
           count(*) FILTER (WHERE decision = 'capped_daily') AS capped_daily,
           count(*) FILTER (WHERE decision = 'capped_weekly') AS capped_weekly,
           count(*) FILTER (WHERE decision = 'capped_channel') AS capped_channel,
           count(*) FILTER (WHERE decision = 'capped_campaign') AS capped_campaign,
           count(*) FILTER (WHERE decision NOT IN (
               'sent', 'deferred_quiet_hours', 'suppressed_consent', 'holdout', 'duplicate', 'expired',
               'expired_quiet_hours', 'capped_min_gap', 'capped_daily', 'capped_weekly', 'capped_channel',
               'capped_campaign')) AS other_decisions
    FROM push.notification_decisions
    WHERE campaign_id IS NOT NULL
    GROUP BY campaign_id
), outbox AS (
    SELECT campaign_id,
           count(*) FILTER (WHERE status = 'sent') AS delivered,
           count(*) FILTER (WHERE status = 'dead') AS dead,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE status = 'expired') AS expired_in_outbox,
           count(*) FILTER (WHERE status = 'pending') AS pending
    FROM push.notification_ledger
    WHERE campaign_id IS NOT NULL
    GROUP BY campaign_id
), engaged AS (
    SELECT campaign_id, count(opened_at) AS opens, count(clicked_at) AS clicks,
           count(converted_at) AS conversions, sum(revenue) AS revenue
    FROM push.message_outcomes
    WHERE campaign_id IS NOT NULL
    GROUP BY campaign_id
), arms AS (
    SELECT campaign_id,
           count(*) FILTER (WHERE arm = 'treatment') AS treatment_users,
           count(*) FILTER (WHERE arm = 'treatment' AND converted) AS treatment_conversions,
           count(*) FILTER (WHERE arm = 'control') AS control_users,
           count(*) FILTER (WHERE arm = 'control' AND converted) AS control_conversions
    FROM push.decision_outcomes
    WHERE campaign_id IS NOT NULL
    GROUP BY campaign_id
), measures AS (
    SELECT d.campaign_id, c.name AS campaign_name, d.runs, d.first_decided_at, d.last_decided_at,
           d.users, d.candidates, d.queued, d.deferred,
           d.suppressed_consent, d.holdout, d.duplicate, d.expired, d.capped_min_gap, d.capped_daily,
           d.capped_weekly, d.capped_channel, d.capped_campaign, d.other_decisions,
           coalesce(o.delivered, 0) AS delivered,
           coalesce(o.dead, 0) AS dead,
           coalesce(o.cancelled, 0) AS cancelled,
           coalesce(o.expired_in_outbox, 0) AS expired_in_outbox,
           coalesce(o.pending, 0) AS pending,
           coalesce(e.opens, 0) AS opens,
           coalesce(e.clicks, 0) AS clicks,
           coalesce(e.conversions, 0) AS conversions,
           coalesce(e.revenue, 0) AS revenue,
           coalesce(a.treatment_users, 0) AS treatment_users,
           coalesce(a.treatment_conversions, 0) AS treatment_conversions,
           coalesce(a.control_users, 0) AS control_users,
           coalesce(a.control_conversions, 0) AS control_conversions
    FROM decided d
    LEFT JOIN push.campaigns c ON c.campaign_id = d.campaign_id
    LEFT JOIN outbox o ON o.campaign_id = d.campaign_id
    LEFT JOIN engaged e ON e.campaign_id = d.campaign_id
    LEFT JOIN arms a ON a.campaign_id = d.campaign_id
)
SELECT m.campaign_id, m.campaign_name, m.runs, m.first_decided_at, m.last_decided_at, m.users, m.candidates,
       m.queued, m.deferred,
       m.suppressed_consent, m.holdout, m.duplicate, m.expired, m.capped_min_gap, m.capped_daily,
       m.capped_weekly, m.capped_channel, m.capped_campaign, m.other_decisions,
       m.delivered, m.dead, m.cancelled, m.expired_in_outbox, m.pending,
       m.opens, m.clicks, m.conversions, m.revenue,
       CAST(m.clicks AS double precision) / nullif(m.delivered, 0) AS ctr,
       CAST(m.conversions AS double precision) / nullif(m.delivered, 0) AS cvr,
       m.treatment_users, m.treatment_conversions, l.treatment_conversion_rate,
       m.control_users, m.control_conversions, l.control_conversion_rate,
       l.absolute_lift, l.absolute_lift_ci_low, l.absolute_lift_ci_high,
       l.relative_lift, l.relative_lift_ci_low, l.relative_lift_ci_high
FROM measures m
CROSS JOIN LATERAL analytics.conversion_lift(
    m.treatment_users, m.treatment_conversions, m.control_users, m.control_conversions) AS l;

-- Notifications by reason per UTC day of the decision (whatever the session's TimeZone).
CREATE VIEW analytics.notification_daily AS
SELECT CAST(timezone('UTC', decided_at) AS date) AS day, decision, count(*) AS decisions
FROM push.notification_decisions
GROUP BY 1, 2;

-- Queued messages (sent + deferred_quiet_hours) per UTC day of the decision and local hour of
-- the planned send moment in the user's timezone (NULL when the user or the moment is unknown).
CREATE VIEW analytics.send_hour_distribution AS
SELECT CAST(timezone('UTC', d.decided_at) AS date) AS day,
       CAST(extract(hour FROM timezone(u.timezone, d.scheduled_at)) AS integer) AS local_hour,
       count(*) AS queued
FROM push.notification_decisions d
LEFT JOIN push.users u ON u.user_id = d.user_id
WHERE d.decision IN ('sent', 'deferred_quiet_hours')
GROUP BY 1, 2;

-- Per channel: outbox rows by status, attempts from the attempts log (retried_attempts =
-- attempts that ended in a retry, retried_messages = messages with at least one), and the
-- median and 95th percentile (continuous, interpolated) of the attempts a delivered message
-- took (its ledger attempts since it was last queued or re-driven).
CREATE VIEW analytics.delivery_health AS
WITH outbox AS (
    SELECT channel,
           count(*) AS messages,
           count(*) FILTER (WHERE status = 'sent') AS delivered,
           count(*) FILTER (WHERE status = 'dead') AS dead_letters,
           count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
           count(*) FILTER (WHERE status = 'expired') AS expired,
           count(*) FILTER (WHERE status = 'pending') AS pending,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY attempts) FILTER (WHERE status = 'sent')
               AS median_attempts_to_deliver,
           percentile_cont(0.95) WITHIN GROUP (ORDER BY attempts) FILTER (WHERE status = 'sent')
               AS p95_attempts_to_deliver
    FROM push.notification_ledger
    GROUP BY channel
), tries AS (
    SELECT channel,
           count(*) AS attempts,
           count(*) FILTER (WHERE outcome = 'retry') AS retried_attempts,
           count(DISTINCT idempotency_key) FILTER (WHERE outcome = 'retry') AS retried_messages
    FROM push.delivery_attempts
    GROUP BY channel
)
SELECT coalesce(o.channel, t.channel) AS channel,
       coalesce(o.messages, 0) AS messages,
       coalesce(o.delivered, 0) AS delivered,
       coalesce(t.attempts, 0) AS attempts,
       coalesce(t.retried_attempts, 0) AS retried_attempts,
       coalesce(t.retried_messages, 0) AS retried_messages,
       coalesce(o.dead_letters, 0) AS dead_letters,
       coalesce(o.cancelled, 0) AS cancelled,
       coalesce(o.expired, 0) AS expired,
       coalesce(o.pending, 0) AS pending,
       o.median_attempts_to_deliver,
       o.p95_attempts_to_deliver
FROM outbox o
FULL JOIN tries t ON t.channel = o.channel;

-- Dead letters, for operators: what failed, how often, and why (the relay redacts addresses
-- from last_error); last_attempt_at from the attempts log.
CREATE VIEW analytics.dead_letters AS
SELECT l.idempotency_key, l.run_key, l.channel, l.source, l.campaign_id, l.attempts, l.last_error,
       l.scheduled_at, a.last_attempt_at
FROM push.notification_ledger l
CROSS JOIN LATERAL (
    SELECT max(t.attempted_at) AS last_attempt_at
    FROM push.delivery_attempts t
    WHERE t.idempotency_key = l.idempotency_key
) AS a
WHERE l.status = 'dead';
