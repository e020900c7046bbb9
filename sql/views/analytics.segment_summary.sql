-- Segments as described by the daily run, with their share of the profiled users.
CREATE OR REPLACE VIEW analytics.segment_summary AS
SELECT s.as_of, s.segment, s.size,
       round(CAST(s.size AS numeric) / nullif(sum(s.size) OVER (PARTITION BY s.as_of), 0), 4) AS share,
       s.top_categories, s.avg_price_level, s.avg_frequency, s.description, s.silhouette
FROM push.segments s;
