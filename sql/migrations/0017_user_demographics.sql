-- Demographics for the cold start of new users: age band, gender and region, and whether the
-- user consented to profiling. Personal data: they live in push.users only (the PII side, which
-- analysts cannot read), erasure removes them with the user's row, and a user without
-- consent_profiling gets lists that use none of them.
ALTER TABLE push.users
    ADD COLUMN age_band text,
    ADD COLUMN gender text,
    ADD COLUMN region text,
    ADD COLUMN consent_profiling boolean NOT NULL DEFAULT false;
