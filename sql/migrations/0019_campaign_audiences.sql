-- Campaign audiences: who a campaign may reach besides the taste rule (see docs/notification-policy.md); members
-- are listed by push.campaign_audience (sql/functions).
-- audience is NULL (the taste rule: a favourite category or brand, or a target item among the
-- user's recommendations) or a JSON object whose present keys must all hold, any value of a key:
--   segments           [int]   the user's segment in the latest profiles
--   regions, age_bands, genders [text]   demographics; only users who consented to profiling match
--   intent_categories  [text]  the user viewed or carted an item of these categories within
--   intent_hours       int     1 or 24 (default 24) hours, from push.recent_intent
ALTER TABLE push.campaigns ADD COLUMN audience jsonb;
