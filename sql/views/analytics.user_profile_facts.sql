-- Profiles by pseudonym (behaviour only: no address, no timezone).
CREATE OR REPLACE VIEW analytics.user_profile_facts AS
SELECT p.as_of, k.user_key, p.segment, p.top_categories, p.top_brands, p.price_level, p.recency_days,
       p.frequency, p.monetary, p.active_days, p.preferred_hour, p.preferred_weekday
FROM push.user_profiles p
JOIN push.user_pseudonyms k ON k.user_id = p.user_id;
