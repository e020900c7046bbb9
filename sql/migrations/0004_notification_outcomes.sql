-- Outcomes of notifications, materialised by the feedback step (jobs.notify.feedback) with the
-- configured attribution window, so reports and send-time estimates read plain tables.

-- One row per delivered outbox message: did the user open, click, buy within the window?
CREATE TABLE push.message_outcomes (
    idempotency_key text PRIMARY KEY,
    run_key         text NOT NULL,
    user_id         text NOT NULL,
    campaign_id     text,
    source          text NOT NULL,
    channel         text NOT NULL,
    sent_at         timestamptz NOT NULL,
    opened_at       timestamptz,
    clicked_at      timestamptz,
    converted_at    timestamptz,
    revenue         double precision NOT NULL DEFAULT 0
);
CREATE INDEX message_outcomes_user ON push.message_outcomes (user_id, sent_at);
CREATE INDEX message_outcomes_run ON push.message_outcomes (run_key);

-- One row per (planning run, user) in the treatment arm (a message was queued) or the control
-- arm (held out): did the user buy within the window after the send moment? Lift compares them.
CREATE TABLE push.decision_outcomes (
    run_key      text NOT NULL,
    user_id      text NOT NULL,
    campaign_id  text,
    arm          text NOT NULL CHECK (arm IN ('treatment', 'control')),
    scheduled_at timestamptz NOT NULL,
    converted    boolean NOT NULL,
    revenue      double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (run_key, user_id)
);
