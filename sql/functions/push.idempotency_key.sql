-- Deterministic idempotency key per (user, candidate, slot): a retry computes the same key.
-- STABLE like convert_to, so that PostgreSQL inlines it into set-based queries.
CREATE OR REPLACE FUNCTION push.idempotency_key(user_id text, candidate_key text, slot text) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT left(encode(sha256(convert_to(user_id || '|' || candidate_key || '|' || slot, 'UTF8')), 'hex'), 32)
$$;
