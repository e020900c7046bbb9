-- Evaluation report: per policy arm (push.policy_arm, PUSH_POLICY_ARMS), planning runs up to
-- :until (NULL = all) pooled: delivered messages with their opens, clicks and conversions, and
-- the arm's conversion lift over the control group (every arm's held-out users) with its
-- 95 percent intervals (analytics.conversion_lift). Arms count (run, user) pairs, as in the run
-- report. Decisions made before arms were recorded carry no arm and are left out.
WITH user_arms AS (
    SELECT DISTINCT d.run_key, d.user_id, d.policy_arm
    FROM push.notification_decisions AS d
    WHERE d.policy_arm IS NOT NULL AND d.decided_at <= coalesce(CAST(:until AS timestamptz), 'infinity')
),
arm_outcomes AS (
    SELECT a.policy_arm, o.arm, count(*) AS user_runs, count(*) FILTER (WHERE o.converted) AS converted
    FROM push.decision_outcomes AS o
    INNER JOIN user_arms AS a ON o.run_key = a.run_key AND o.user_id = a.user_id
    GROUP BY a.policy_arm, o.arm
),
control AS (
    SELECT coalesce(sum(user_runs), 0) AS user_runs, coalesce(sum(converted), 0) AS converted
    FROM arm_outcomes WHERE arm = 'control'
),
arm_messages AS (
    SELECT a.policy_arm, count(*) AS delivered, count(m.opened_at) AS opens, count(m.clicked_at) AS clicks,
           count(m.converted_at) AS conversions
    FROM push.message_outcomes AS m
    INNER JOIN user_arms AS a ON m.run_key = a.run_key AND m.user_id = a.user_id
    GROUP BY a.policy_arm
)
SELECT t.policy_arm,
       coalesce(ms.delivered, 0) AS delivered, coalesce(ms.opens, 0) AS opens,
       coalesce(ms.clicks, 0) AS clicks, coalesce(ms.conversions, 0) AS conversions,
       t.user_runs AS treatment_users, t.converted AS treatment_conversions,
       CAST(c.user_runs AS bigint) AS control_users, CAST(c.converted AS bigint) AS control_conversions,
       l.*  -- noqa: AM04
FROM arm_outcomes AS t
CROSS JOIN control AS c
LEFT JOIN arm_messages AS ms ON t.policy_arm = ms.policy_arm
CROSS JOIN LATERAL analytics.conversion_lift(
    t.user_runs, t.converted, CAST(c.user_runs AS bigint), CAST(c.converted AS bigint)) AS l
WHERE t.arm = 'treatment'
ORDER BY t.policy_arm;
