-- Evaluation report: all planning runs up to :until (NULL = all) pooled: delivered messages,
-- clicks and conversions, and the lift of treatment over control with its 95 percent intervals
-- (analytics.conversion_lift, migration 0005). Arms count (run, user) pairs, as in the run report.
SELECT t.runs, t.delivered, t.clicks, t.conversions,
       t.treatment_users, t.treatment_conversions, t.control_users, t.control_conversions, l.*  -- noqa: AM04
FROM (
    SELECT count(*) AS runs,
           CAST(coalesce(sum(delivered), 0) AS bigint) AS delivered,
           CAST(coalesce(sum(clicks), 0) AS bigint) AS clicks,
           CAST(coalesce(sum(conversions), 0) AS bigint) AS conversions,
           CAST(coalesce(sum(treatment_users), 0) AS bigint) AS treatment_users,
           CAST(coalesce(sum(treatment_conversions), 0) AS bigint) AS treatment_conversions,
           CAST(coalesce(sum(control_users), 0) AS bigint) AS control_users,
           CAST(coalesce(sum(control_conversions), 0) AS bigint) AS control_conversions
    FROM analytics.notification_run_report
    WHERE logical_time <= coalesce(CAST(:until AS timestamptz), 'infinity')
) AS t
CROSS JOIN LATERAL analytics.conversion_lift(
    t.treatment_users, t.treatment_conversions, t.control_users, t.control_conversions) AS l;
