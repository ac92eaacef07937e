-- oauth-core's key-value records (see docs/adapter-axum.md). Same shape as the
-- PostgreSQL table. SQLite's default BINARY collation already compares keys
-- byte by byte, which the prefix range scan relies on. WITHOUT ROWID clusters
-- rows by key, so a prefix listing reads one contiguous B-tree range; STRICT
-- refuses values of the wrong type instead of silently converting them.
CREATE TABLE oauth_records (
    key        TEXT    NOT NULL PRIMARY KEY,
    value      BLOB    NOT NULL,
    revision   INTEGER NOT NULL,
    expires_at INTEGER NULL
) STRICT, WITHOUT ROWID;

-- Serves purge_expired only; requests never scan by expiry.
CREATE INDEX oauth_records_expires_at ON oauth_records (expires_at) WHERE expires_at IS NOT NULL;
