-- When a message due at "due_at" falls in the quiet window [quiet_start, quiet_end) of the
-- user's local time, the end of that window (UTC); NULL when it is not quiet. The window may
-- wrap midnight (22:00-08:00). Local wall-clock arithmetic, so it is right across DST changes.
CREATE OR REPLACE FUNCTION push.quiet_hours_end(due_at timestamptz, tz text, quiet_start time, quiet_end time)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN quiet_start = quiet_end THEN NULL
        WHEN quiet_start < quiet_end THEN
            CASE WHEN timezone(tz, due_at)::time >= quiet_start AND timezone(tz, due_at)::time < quiet_end
                 THEN timezone(tz, timezone(tz, due_at)::date + quiet_end) END
        WHEN timezone(tz, due_at)::time >= quiet_start THEN timezone(tz, (timezone(tz, due_at)::date + 1) + quiet_end)
        WHEN timezone(tz, due_at)::time < quiet_end THEN timezone(tz, timezone(tz, due_at)::date + quiet_end)
    END
$$;
