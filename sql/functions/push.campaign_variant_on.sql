-- The variant of a campaign a user is assigned on a day: by the day's Thompson-sampling shares
-- (push.variant_allocations) when the campaign has them, drawn with a keyed hash of the user and
-- the day salted with the campaign (so users follow the shares as they shift), else by the fixed
-- weights (push.campaign_variant). NULL when the campaign has no variants.
CREATE OR REPLACE FUNCTION push.campaign_variant_on(campaign text, user_id text, day date) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        (SELECT v.variant
         FROM (
             SELECT a.variant, sum(a.share) OVER (ORDER BY a.variant) / sum(a.share) OVER () AS upto
             FROM push.variant_allocations AS a
             WHERE a.as_of = day AND a.campaign_id = campaign
         ) AS v
         WHERE push.holdout_bucket(user_id || ':' || to_char(day, 'YYYY-MM-DD'), 'variant:' || campaign)
               < v.upto * 10000
         ORDER BY v.upto
         LIMIT 1),
        push.campaign_variant(campaign, user_id))
$$;
