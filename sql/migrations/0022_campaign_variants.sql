-- A/B/n message tests (docs/notification-policy.md, "A/B/n message tests"): a campaign may carry
-- variants; each user is assigned one by a keyed hash weighted by the variants' weights
-- (push.campaign_variant), the same one in every run while the variants stay as they are.
-- A variant may change the wording (template: a folder under jobs/notify/templates/<locale>/variants)
-- and the channel (the variant's channel instead of the campaign's channels). The reference
-- the others are tested against is the variant marked control, else the first by name.
CREATE TABLE push.campaign_variants (
    campaign_id text NOT NULL REFERENCES push.campaigns (campaign_id) ON DELETE CASCADE,
    variant     text NOT NULL CHECK (variant ~ '^[A-Za-z0-9_-]{1,40}$'),
    weight      integer NOT NULL DEFAULT 1 CHECK (weight > 0),
    template    text CHECK (template ~ '^[a-z0-9_]{1,40}$'),
    channel     text CHECK (channel IN ('push', 'email', 'sms', 'webhook')),
    control     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (campaign_id, variant)
);
CREATE UNIQUE INDEX campaign_variants_one_control ON push.campaign_variants (campaign_id) WHERE control;

-- Each decision records the variant its message carried (NULL: not a campaign with variants).
ALTER TABLE push.notification_decisions ADD COLUMN variant text;
COMMENT ON COLUMN push.notification_decisions.variant IS
    'the campaign variant of the candidate (push.campaign_variant); NULL when its campaign has no variants';
