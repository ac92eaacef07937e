-- oauth-core's key-value records (see docs/adapter-axum.md).
--
-- `key` uses the "C" collation so that ordering is plain byte order: the
-- prefix range scan `key >= $prefix AND key < $upper` is then exactly "keys
-- starting with $prefix", and the primary-key index serves it. A
-- locale-aware collation would make the upper bound wrong and could keep the
-- index from being used for it.
CREATE TABLE oauth_records (
    key        text COLLATE "C" PRIMARY KEY,
    value      bytea  NOT NULL,
    -- The core's u64 revision, stored bit for bit as a signed 64-bit integer.
    revision   bigint NOT NULL,
    -- Unix seconds; NULL never expires. Liveness is judged against the
    -- request's time, never the database clock.
    expires_at bigint NULL
);

-- Serves purge_expired only; requests never scan by expiry.
CREATE INDEX oauth_records_expires_at ON oauth_records (expires_at) WHERE expires_at IS NOT NULL;
