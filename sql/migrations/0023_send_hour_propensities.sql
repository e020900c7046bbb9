-- Off-policy evaluation (docs/notification-policy.md): each recommendation and campaign decision
-- records the local hour its user's day was planned at, the best hour of that day, and the
-- chance that push.send_hour picks the planned hour (exploration, PUSH_EXPLORE_PERCENT; the
-- random_hour arm). NULL for triggers (sent at their fire time) and for older decisions.
ALTER TABLE push.notification_decisions
    ADD COLUMN planned_hour integer CHECK (planned_hour BETWEEN 0 AND 23),
    ADD COLUMN best_hour integer CHECK (best_hour BETWEEN 0 AND 23),
    ADD COLUMN hour_propensity double precision CHECK (hour_propensity > 0 AND hour_propensity <= 1);
