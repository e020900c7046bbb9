-- Uplift targeting (docs/notification-policy.md, "Uplift targeting"): per day and cell of users,
-- the measured effect of messaging on conversion (treatment minus control group, user-days of
-- the last PUSH_UPLIFT_WINDOW_DAYS) and the share of the cell's user-days that may be messaged.
CREATE TABLE push.uplift_estimates (
    as_of                 date NOT NULL,
    cell                  text NOT NULL,
    treatment_units       bigint NOT NULL,
    treatment_conversions bigint NOT NULL,
    control_units         bigint NOT NULL,
    control_conversions   bigint NOT NULL,
    effect                double precision,
    effect_se             double precision,
    send_probability      double precision NOT NULL CHECK (send_probability > 0 AND send_probability <= 1),
    PRIMARY KEY (as_of, cell)
);
COMMENT ON TABLE push.uplift_estimates IS
    'per day and cell: conversion of messaged (treatment) and held-out (control) user-days, their difference '
    '(effect, with its standard error) and the share of the cell''s user-days the policy may message';

-- Each decision records the chance that its user's day passed the uplift gate (NULL: not gated).
ALTER TABLE push.notification_decisions
    ADD COLUMN uplift_probability double precision CHECK (uplift_probability > 0 AND uplift_probability <= 1);
