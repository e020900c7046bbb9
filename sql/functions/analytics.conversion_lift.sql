-- Conversion lift of treatment over control, with 95 percent confidence intervals:
--   p1 = treatment conversions / treatment users, p2 likewise for control;
--   absolute lift p1 - p2 with the Wald interval p1 - p2 -/+ 1.96 sqrt(p1(1-p1)/n1 + p2(1-p2)/n2);
--   relative lift p1/p2 - 1 with the Katz (log risk ratio) interval
--   exp(ln(p1/p2) -/+ 1.96 sqrt((1-p1)/(n1 p1) + (1-p2)/(n2 p2))) - 1.
-- NULL where undefined: a rate without users, the absolute lift without both arms, the relative
-- lift when p2 = 0, the Katz interval when p1 = 0 or p2 = 0.
CREATE OR REPLACE FUNCTION analytics.conversion_lift(
    n_treatment bigint, x_treatment bigint, n_control bigint, x_control bigint)
RETURNS TABLE (
    treatment_conversion_rate double precision,
    control_conversion_rate   double precision,
    absolute_lift             double precision,
    absolute_lift_ci_low      double precision,
    absolute_lift_ci_high     double precision,
    relative_lift             double precision,
    relative_lift_ci_low      double precision,
    relative_lift_ci_high     double precision)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p1, p2, p1 - p2,
           p1 - p2 - 1.96 * sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2),
           p1 - p2 + 1.96 * sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2),
           CASE WHEN p2 > 0 THEN p1 / p2 - 1 END,
           CASE WHEN p1 > 0 AND p2 > 0
                THEN exp(ln(p1 / p2) - 1.96 * sqrt((1 - p1) / (n1 * p1) + (1 - p2) / (n2 * p2))) - 1 END,
           CASE WHEN p1 > 0 AND p2 > 0
                THEN exp(ln(p1 / p2) + 1.96 * sqrt((1 - p1) / (n1 * p1) + (1 - p2) / (n2 * p2))) - 1 END
    FROM (
        SELECT c.x1 / c.n1 AS p1, c.x2 / c.n2 AS p2, c.n1, c.n2
        FROM (
            SELECT CAST(nullif(n_treatment, 0) AS double precision) AS n1,
                   CAST(x_treatment AS double precision) AS x1,
                   CAST(nullif(n_control, 0) AS double precision) AS n2,
                   CAST(x_control AS double precision) AS x2
        ) AS c
    ) AS r
$$;
