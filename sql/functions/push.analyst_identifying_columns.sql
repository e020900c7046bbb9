CREATE OR REPLACE FUNCTION push.analyst_identifying_columns() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY['user_id', 'email', 'phone', 'push_token', 'webhook_url', 'idempotency_key', 'candidate_key',
                 'trigger_key', 'trigger_users', 'raw', 'payload', 'notification_id']
$$;
