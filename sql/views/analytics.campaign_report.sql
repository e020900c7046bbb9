-- The same measures per campaign over all its runs: decisions, outbox rows, message outcomes
-- and arms carrying that campaign_id (an arm row carries the campaign of the user's best
-- candidate in the run). Treatment and control "users" are (run, user) pairs, as in the run
-- report, so a user in several runs counts once per run. users = distinct users decided for.
CREATE OR REPLACE VIEW analytics.campaign_report AS
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
           count(*) FILTER (WHERE decision = 'skipped_uplift') AS skipped_uplift,
           count(*) FILTER (WHERE decision NOT IN (
               'sent', 'deferred_quiet_hours', 'suppressed_consent', 'holdout', 'duplicate', 'expired',
               'expired_quiet_hours', 'capped_min_gap', 'capped_daily', 'capped_weekly', 'capped_channel',
               'capped_campaign', 'skipped_uplift')) AS other_decisions
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
           d.capped_weekly, d.capped_channel, d.capped_campaign, d.other_decisions, d.skipped_uplift,
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
       l.relative_lift, l.relative_lift_ci_low, l.relative_lift_ci_high,
       -- Appended (a view keeps its earlier columns in place): user-days the uplift gate skipped.
       m.skipped_uplift
FROM measures m
CROSS JOIN LATERAL analytics.conversion_lift(
    m.treatment_users, m.treatment_conversions, m.control_users, m.control_conversions) AS l;
