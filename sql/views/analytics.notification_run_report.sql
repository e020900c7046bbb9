-- One row per planning run (a run in push.notification_runs, or one that recorded decisions
-- but crashed before its run row: then logical_time is its decision time, horizon NULL).
--   candidates = queued + the suppression columns + skipped_uplift + other_decisions (codes this view does not
--   know); queued = sent + deferred_quiet_hours (the decisions that filled the outbox);
--   delivered .. pending: the outbox rows the run queued, by status now;
--   opens .. revenue: push.message_outcomes of its delivered messages (attribution window of
--   the feedback step); ctr = clicks / delivered, cvr = conversions / delivered;
--   treatment/control: push.decision_outcomes (intent to treat; one row per run and user).
CREATE OR REPLACE VIEW analytics.notification_run_report AS
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
           count(*) FILTER (WHERE decision = 'skipped_uplift') AS skipped_uplift,
           count(*) FILTER (WHERE decision NOT IN (
               'sent', 'deferred_quiet_hours', 'suppressed_consent', 'holdout', 'duplicate', 'expired',
               'expired_quiet_hours', 'capped_min_gap', 'capped_daily', 'capped_weekly', 'capped_channel',
               'capped_campaign', 'skipped_uplift')) AS other_decisions
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
           coalesce(d.skipped_uplift, 0) AS skipped_uplift,
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
       l.relative_lift, l.relative_lift_ci_low, l.relative_lift_ci_high,
       -- Appended (a view keeps its earlier columns in place): user-days the uplift gate skipped.
       m.skipped_uplift
FROM measures m
CROSS JOIN LATERAL analytics.conversion_lift(
    m.treatment_users, m.treatment_conversions, m.control_users, m.control_conversions) AS l;
