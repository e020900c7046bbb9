-- The frequency rules for one candidate, given what is already used: NULL when it may go,
-- else the reason code of the first rule that binds (the order of the README).
CREATE OR REPLACE FUNCTION push.cap_decision(
    exempt boolean, gap_blocked boolean, min_gap_positive boolean, accepted_before integer,
    day_used integer, day_cap integer, week_used integer, week_cap integer,
    channel_used integer, channel_cap integer, campaign_used integer, campaign_cap integer)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN exempt THEN NULL
        WHEN gap_blocked OR (min_gap_positive AND accepted_before > 0) THEN 'capped_min_gap'
        WHEN day_used + accepted_before >= day_cap THEN 'capped_daily'
        WHEN week_used + accepted_before >= week_cap THEN 'capped_weekly'
        WHEN channel_used >= channel_cap THEN 'capped_channel'
        WHEN campaign_used >= campaign_cap THEN 'capped_campaign'
    END
$$;
