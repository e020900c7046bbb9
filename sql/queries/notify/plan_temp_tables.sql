DROP TABLE IF EXISTS plan_candidates, plan_users;
CREATE TEMP TABLE plan_candidates (
    user_id text NOT NULL, candidate_key text NOT NULL, source text NOT NULL, kind text NOT NULL, campaign_id text,
    item_id text, category text, transactional boolean NOT NULL, allowed_channels text[], idempotency_key text NOT NULL,
    natural_at timestamptz NOT NULL, not_before timestamptz, expires_at timestamptz NOT NULL,
    expected_value double precision NOT NULL,
    reason text, discount_text text, old_price text, variant text, template text,
    planned_hour integer, best_hour integer, hour_propensity double precision
);
CREATE TEMP TABLE plan_users (
    user_id text PRIMARY KEY, n bigint NOT NULL, scheduled_at timestamptz NOT NULL, deferred boolean NOT NULL,
    in_holdout boolean NOT NULL, policy_arm text NOT NULL, uplift_probability double precision,
    uplift_skip boolean NOT NULL
);
