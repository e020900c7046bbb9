-- A/B/n message tests: the daily counts of every campaign variant (analytics.campaign_variant_daily)
-- for the UTC days before the day of :until (NULL = all), in day order.
SELECT d.campaign_id, d.variant, d.day, d.delivered, d.opens, d.clicks, d.conversions, d.revenue, d.users,
       d.opted_out
FROM analytics.campaign_variant_daily AS d
WHERE CAST(:until AS timestamptz) IS NULL OR d.day < CAST(CAST(:until AS timestamptz) AT TIME ZONE 'UTC' AS date)
ORDER BY d.campaign_id, d.variant, d.day;
