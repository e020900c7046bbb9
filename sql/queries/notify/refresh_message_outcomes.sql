-- Rebuild the outcomes of delivered messages whose send moment is in [:since, :as_of).
-- Opens and clicks are matched by notification id (the idempotency key). A purchase is
-- attributed to a message when it carries its id, or when the user bought within
-- :attribution after clicking it and clicked no other message in between (last click). The
-- send moment is the planned one (scheduled_at), so a backfill attributes as a live run would.
DELETE FROM push.message_outcomes WHERE sent_at >= :since AND sent_at < :as_of;
INSERT INTO push.message_outcomes (idempotency_key, run_key, user_id, campaign_id, source, channel, sent_at,
                                   opened_at, clicked_at, converted_at, revenue)
SELECT l.idempotency_key, l.run_key, l.user_id, l.campaign_id, l.source, l.channel, l.scheduled_at,
       least(o.opened_at, o.clicked_at), o.clicked_at, c.converted_at, coalesce(c.revenue, 0)
FROM push.notification_ledger l
CROSS JOIN LATERAL (
    SELECT min(f.ts) FILTER (WHERE f.event_type = 'notification_open') AS opened_at,
           min(f.ts) FILTER (WHERE f.event_type = 'notification_click') AS clicked_at
    FROM push.notification_feedback f
    WHERE f.notification_id = l.idempotency_key
) AS o
CROSS JOIN LATERAL (
    SELECT min(f.ts) AS converted_at, sum(f.revenue) AS revenue
    FROM push.notification_feedback f
    WHERE f.user_id = l.user_id AND f.event_type = 'purchase' AND f.ts >= l.scheduled_at
      AND (f.notification_id = l.idempotency_key
           OR (o.clicked_at IS NOT NULL AND f.ts >= o.clicked_at AND f.ts < o.clicked_at + CAST(:attribution AS interval)
               -- last click wins: no other message of the user was clicked between this click and the purchase
               AND NOT EXISTS (SELECT 1 FROM push.notification_feedback k
                               WHERE k.user_id = l.user_id AND k.event_type = 'notification_click'
                                 AND k.notification_id <> l.idempotency_key
                                 AND k.ts > o.clicked_at AND k.ts <= f.ts)))
) AS c
WHERE l.status = 'sent' AND l.scheduled_at >= :since AND l.scheduled_at < :as_of;

-- Intent to treat, per planning run: every user the run decided for who had consent and was
-- not held out is in the treatment arm (whether or not a cap then stopped the message), every
-- held-out user in the control arm; converted = bought within :attribution of the send moment.
DELETE FROM push.decision_outcomes d
USING push.notification_runs r
WHERE d.run_key = r.run_key AND r.logical_time >= :since AND r.logical_time < :as_of;
INSERT INTO push.decision_outcomes (run_key, user_id, campaign_id, arm, scheduled_at, converted, revenue)
SELECT x.run_key, x.user_id, x.campaign_id, x.arm, x.scheduled_at, p.purchases > 0, coalesce(p.revenue, 0)
FROM (
    SELECT DISTINCT ON (d.run_key, d.user_id)
           d.run_key, d.user_id, d.campaign_id,
           CASE WHEN d.decision = 'holdout' THEN 'control' ELSE 'treatment' END AS arm, d.scheduled_at
    FROM push.notification_decisions d
    JOIN push.notification_runs r ON r.run_key = d.run_key
    WHERE r.logical_time >= :since AND r.logical_time < :as_of AND d.decision <> 'suppressed_consent'
      AND NOT d.transactional  -- transactional messages ignore the control group
    ORDER BY d.run_key ASC, d.user_id ASC, (d.decision = 'holdout') DESC, d.expected_value DESC, d.candidate_key ASC
) AS x
CROSS JOIN LATERAL (
    SELECT count(*) AS purchases, sum(f.revenue) AS revenue
    FROM push.notification_feedback f
    WHERE f.user_id = x.user_id AND f.event_type = 'purchase'
      AND f.ts >= x.scheduled_at AND f.ts < x.scheduled_at + CAST(:attribution AS interval)
) AS p;
