-- Conversion of user-days per uplift cell, in the treatment and in the control group, for the
-- estimate of the day that starts at :as_of (jobs/notify/uplift.py).
--   :since, :as_of   planning runs whose logical time is in [since, as_of)
--   :attribution     the attribution window: a day counts once every send moment of it is at
--                    least that long before :as_of (its outcome is complete)
-- A unit is one user's UTC day of planning runs (decision_outcomes, intent to treat): converted
-- when any of the day's outcomes converted; its cell is the user's at the start of the day
-- (push.uplift_cell). Control: held-out user-days. Treatment: days planned by the full policy
-- or the no_uplift arm that the uplift gate let through. The gate's draw is a keyed hash,
-- independent of the outcome, so a cell's messaged days stand for all of its days.
WITH days AS (
    SELECT o.user_id, date_trunc('day', r.logical_time, 'UTC') AS day,
           bool_or(o.arm = 'control') AS control, bool_or(o.converted) AS converted,
           max(o.scheduled_at) AS last_moment
    FROM push.decision_outcomes o
    JOIN push.notification_runs r ON r.run_key = o.run_key
    WHERE r.logical_time >= :since AND r.logical_time < :as_of
    GROUP BY o.user_id, date_trunc('day', r.logical_time, 'UTC')
),
planned AS (
    -- Per user-day: the policy arm, and whether the gate skipped the day.
    SELECT d.user_id, date_trunc('day', r.logical_time, 'UTC') AS day,
           bool_and(d.policy_arm IN ('full', 'no_uplift')) AS full_policy,
           bool_or(d.decision = 'skipped_uplift') AS skipped
    FROM push.notification_decisions d
    JOIN push.notification_runs r ON r.run_key = d.run_key
    WHERE r.logical_time >= :since AND r.logical_time < :as_of AND NOT d.transactional
    GROUP BY d.user_id, date_trunc('day', r.logical_time, 'UTC')
),
units AS (
    SELECT x.user_id, push.uplift_cell(x.user_id, x.day, CAST(:attribution AS interval)) AS cell, x.control,
           x.converted
    FROM days x
    JOIN planned p ON p.user_id = x.user_id AND p.day = x.day
    WHERE x.last_moment <= :as_of - CAST(:attribution AS interval)
      AND (x.control OR (coalesce(p.full_policy, true) AND NOT p.skipped))
),
per_user AS (
    -- A user's days are not independent of each other: the standard error is clustered by user
    -- (jobs/notify/uplift.py), from these sums per cell and group.
    SELECT cell, control, user_id, count(*) AS n, count(*) FILTER (WHERE converted) AS x
    FROM units
    GROUP BY cell, control, user_id
)
SELECT cell,
       sum(n) FILTER (WHERE NOT control) AS treatment_units,
       sum(x) FILTER (WHERE NOT control) AS treatment_conversions,
       sum(n) FILTER (WHERE control) AS control_units,
       sum(x) FILTER (WHERE control) AS control_conversions,
       count(*) FILTER (WHERE NOT control) AS treatment_users,
       sum(x * x) FILTER (WHERE NOT control) AS treatment_xx,
       sum(x * n) FILTER (WHERE NOT control) AS treatment_xn,
       sum(n * n) FILTER (WHERE NOT control) AS treatment_nn,
       count(*) FILTER (WHERE control) AS control_users,
       sum(x * x) FILTER (WHERE control) AS control_xx,
       sum(x * n) FILTER (WHERE control) AS control_xn,
       sum(n * n) FILTER (WHERE control) AS control_nn
FROM per_user
GROUP BY cell
ORDER BY cell
