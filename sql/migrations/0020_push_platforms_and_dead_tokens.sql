-- Push providers (docs/notification-policy.md, "Delivery"): which provider a user's push token belongs to, and the
-- tokens a provider declared dead. Snapshots without push_platform load as NULL, which the
-- relay treats as the signed gateway (the behaviour before providers existed).
ALTER TABLE push.users
    ADD COLUMN push_platform text CHECK (push_platform IN ('fcm', 'apns', 'webpush', 'gateway'));

-- One row per retired token: its keyed hash (never the token), who held it, the provider's
-- answer and the message that found out. The relay writes it and blanks push.users.push_token;
-- the reference loader keeps the token off when a later snapshot still carries it. Erasure
-- removes the rows with the user's.
CREATE TABLE push.dead_tokens (
    platform        text NOT NULL,
    token_key       text NOT NULL,
    user_id         text NOT NULL,
    answer          text NOT NULL,
    idempotency_key text,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform, token_key)
);
