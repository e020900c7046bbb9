-- Evaluation report: the latest :limit planning runs up to :until (NULL = all), oldest first, with
-- delivered messages, clicks, conversions and the control-group lift of each run (migration 0005).
SELECT run_key, logical_time, delivered, clicks, conversions, ctr, cvr,
       treatment_users, treatment_conversions, control_users, control_conversions,
       absolute_lift, absolute_lift_ci_low, absolute_lift_ci_high,
       relative_lift, relative_lift_ci_low, relative_lift_ci_high
FROM (
    SELECT *
    FROM analytics.notification_run_report
    WHERE logical_time <= coalesce(CAST(:until AS timestamptz), 'infinity')
    ORDER BY logical_time DESC, run_key DESC
    LIMIT :limit
) AS latest
ORDER BY logical_time, run_key;
