-- The members of an audience at time ``at`` (user ids; the PII side: analysts see counts).
CREATE OR REPLACE FUNCTION push.campaign_audience(audience jsonb, at timestamptz)
RETURNS TABLE (user_id text) LANGUAGE sql STABLE AS $$
    WITH wanted AS (
        SELECT ARRAY(SELECT jsonb_array_elements_text(audience -> 'segments'))::integer[] AS segments,
               ARRAY(SELECT jsonb_array_elements_text(audience -> 'regions')) AS regions,
               ARRAY(SELECT jsonb_array_elements_text(audience -> 'age_bands')) AS age_bands,
               ARRAY(SELECT jsonb_array_elements_text(audience -> 'genders')) AS genders,
               ARRAY(SELECT jsonb_array_elements_text(audience -> 'intent_categories')) AS intent_categories,
               coalesce((audience ->> 'intent_hours')::integer, 24) AS intent_hours
    ),
    latest_profiles AS (
        SELECT p.user_id, p.segment
        FROM push.user_profiles p
        WHERE p.as_of = (SELECT max(as_of) FROM push.user_profiles WHERE as_of <= CAST(at AS date))
    )
    SELECT u.user_id
    FROM push.users u
    CROSS JOIN wanted w
    LEFT JOIN latest_profiles p ON p.user_id = u.user_id
    WHERE (audience -> 'segments' IS NULL OR p.segment = ANY (w.segments))
      AND (audience -> 'regions' IS NULL OR (u.consent_profiling AND u.region = ANY (w.regions)))
      AND (audience -> 'age_bands' IS NULL OR (u.consent_profiling AND u.age_band = ANY (w.age_bands)))
      AND (audience -> 'genders' IS NULL OR (u.consent_profiling AND u.gender = ANY (w.genders)))
      AND (audience -> 'intent_categories' IS NULL OR EXISTS (
              SELECT 1 FROM push.recent_intent ri JOIN push.items i ON i.item_id = ri.item_id
              WHERE ri.user_id = u.user_id AND ri.window_hours = w.intent_hours
                AND i.category = ANY (w.intent_categories)))
$$;
