-- The send moment and the policy facts of each user of the batch (whose state rows the caller
-- has locked), into the temp table batch_sched: the earliest due candidate, moved to the end of
-- the quiet window when it falls inside it; consent per channel (with an address), in the
-- channel order of jobs/notify/policy.py; control-group membership; fatigue.
INSERT INTO batch_sched (user_id, locale, fatigued, in_holdout, reachable, scheduled_at, deferred)
SELECT u.user_id, u.locale, coalesce(st.fatigued, false),
       push.holdout_bucket(u.user_id, :holdout_salt) < :holdout_basis_points,
       ARRAY[u.consent_push AND u.push_token IS NOT NULL,
             u.consent_email AND u.email IS NOT NULL,
             u.consent_sms AND u.phone IS NOT NULL,
             u.consent_webhook AND u.webhook_url IS NOT NULL],
       coalesce(q.quiet_end, m.natural_at), q.quiet_end IS NOT NULL
FROM (
    SELECT c.user_id, min(c.natural_at) AS natural_at
    FROM plan_candidates c JOIN batch_users b ON b.user_id = c.user_id
    WHERE c.user_id BETWEEN :first_user AND :last_user  -- batches are ranges of user ids
    GROUP BY c.user_id
) AS m
JOIN push.users u ON u.user_id = m.user_id
LEFT JOIN push.notify_user_state st ON st.user_id = m.user_id
CROSS JOIN LATERAL (
    SELECT push.quiet_hours_end(m.natural_at, u.timezone, CAST(:quiet_start AS time), CAST(:quiet_end AS time))
           AS quiet_end
) AS q
