-- Thompson sampling of campaign variants (docs/notification-policy.md, "A/B/n message tests"):
-- with PUSH_VARIANT_ALLOCATION=thompson, each day's share of a campaign's users per variant is
-- the posterior chance that the variant converts best (floored), from the delivered messages
-- whose outcome is complete; the planner assigns users by these shares instead of the weights.
CREATE TABLE push.variant_allocations (
    as_of       date NOT NULL,
    campaign_id text NOT NULL,
    variant     text NOT NULL,
    messages    bigint NOT NULL,
    successes   bigint NOT NULL,
    chance_best double precision NOT NULL CHECK (chance_best >= 0 AND chance_best <= 1),
    share       double precision NOT NULL CHECK (share > 0 AND share <= 1),
    PRIMARY KEY (as_of, campaign_id, variant)
);
COMMENT ON TABLE push.variant_allocations IS
    'per day, campaign and variant: delivered messages and their successes (conversions or clicks, '
    'PUSH_VARIANT_OBJECTIVE) with complete outcomes, the posterior chance the variant is best, and its share of the day''s users';
