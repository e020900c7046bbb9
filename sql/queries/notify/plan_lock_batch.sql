SELECT count(*) FROM (
    SELECT 1 FROM push.notify_user_state s
    JOIN plan_users p ON p.user_id = s.user_id
    WHERE p.n >= :low AND p.n < :high
    ORDER BY s.user_id
    FOR UPDATE OF s
) AS locked
