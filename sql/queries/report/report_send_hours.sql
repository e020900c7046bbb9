-- Evaluation report: queued messages by local hour of the planned send moment, summed over the
-- days up to the day of :until (NULL = all); local_hour is NULL when the moment is unknown.
SELECT local_hour, CAST(sum(queued) AS bigint) AS queued
FROM analytics.send_hour_distribution
WHERE day <= CAST(timezone('UTC', coalesce(CAST(:until AS timestamptz), 'infinity')) AS date)
GROUP BY local_hour
ORDER BY local_hour NULLS LAST;
