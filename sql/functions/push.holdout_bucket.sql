-- Stable control-group bucket in [0, 10000): a keyed hash of the user id.
CREATE OR REPLACE FUNCTION push.holdout_bucket(user_id text, salt text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT mod(('x' || substr(md5(salt || ':' || user_id), 1, 8))::bit(32)::bigint, 10000)::integer
$$;
