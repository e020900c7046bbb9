-- The policy facts of each user of the batch, read under the batch's lock (so an opt-out
-- committed before it is seen), into batch_sched: consent per channel with an address (in the
-- channel order of jobs/notify/policy.py), fatigue, and the run's send moment and holdout.
INSERT INTO batch_sched (user_id, locale, fatigued, in_holdout, reachable, scheduled_at, deferred)
SELECT p.user_id, u.locale, coalesce(st.fatigued, false), p.in_holdout,
       ARRAY[u.consent_push AND u.push_token IS NOT NULL,
             u.consent_email AND u.email IS NOT NULL,
             u.consent_sms AND u.phone IS NOT NULL,
             u.consent_webhook AND u.webhook_url IS NOT NULL],
       p.scheduled_at, p.deferred
FROM batch_users b
JOIN plan_users p ON p.user_id = b.user_id
JOIN push.users u ON u.user_id = b.user_id
LEFT JOIN push.notify_user_state st ON st.user_id = b.user_id
