-- Evaluation report: the segments of the latest profile build on or before :until (NULL = all).
SELECT as_of, segment, size, description, silhouette
FROM push.segments
WHERE as_of = (
    SELECT max(as_of) FROM push.segments
    WHERE as_of <= CAST(timezone('UTC', coalesce(CAST(:until AS timestamptz), 'infinity')) AS date)
)
ORDER BY segment;
