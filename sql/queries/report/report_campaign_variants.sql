-- A/B/n message tests: every campaign variant with what it changes (push.campaign_variants).
SELECT v.campaign_id, v.variant, v.weight, v.template, v.channel, v.control
FROM push.campaign_variants AS v
ORDER BY v.campaign_id, v.variant;
