-- The variant of a campaign a user is assigned to (push.campaign_variants): the user's keyed
-- hash bucket in [0, 10000), salted with the campaign id (independent of the control group's
-- and the policy arms' buckets), falls into one variant's share of the cumulative weights in
-- variant name order. NULL when the campaign has no variants.
CREATE OR REPLACE FUNCTION push.campaign_variant(campaign text, user_id text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT v.variant
    FROM (
        SELECT cv.variant, sum(cv.weight) OVER (ORDER BY cv.variant) AS upto, sum(cv.weight) OVER () AS total
        FROM push.campaign_variants AS cv
        WHERE cv.campaign_id = campaign
    ) AS v
    WHERE push.holdout_bucket(user_id, 'variant:' || campaign)::bigint * v.total < v.upto * 10000
    ORDER BY v.upto
    LIMIT 1
$$;
