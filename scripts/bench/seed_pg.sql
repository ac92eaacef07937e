-- Seed :n generated grants into oauth_records for the scale benchmark
-- (scripts/bench.sh): per grant, the three rows a real grant with one access
-- token has, in the core's key shapes:
--   grant/{32 hex}   token/{32 hex}/{64 hex}   user/{b64url(user)}/{32 hex}
-- spread over 100,000 users. The values are placeholders of the real
-- records' sizes (taken from the rows the real flow wrote): the test measures
-- the bearer check's point reads of a real token among many rows, and
-- nothing reads a seeded row, so they need to exist, not to decode.
--
--   psql -v n=1000000 -f scripts/bench/seed_pg.sql
\set ON_ERROR_STOP 1
CREATE TEMP TABLE seed_sizes AS SELECT
  coalesce((SELECT max(octet_length(value)) FROM oauth_records WHERE key LIKE 'grant/%'), 800) AS g,
  coalesce((SELECT max(octet_length(value)) FROM oauth_records WHERE key LIKE 'token/%'), 500) AS t,
  coalesce((SELECT max(octet_length(value)) FROM oauth_records WHERE key LIKE 'user/%'), 60) AS u;
SELECT g AS grant_bytes, t AS token_bytes, u AS index_bytes FROM seed_sizes;

INSERT INTO oauth_records (key, value, revision, expires_at)
SELECT r.key, r.value, 1, r.expires_at
FROM generate_series(1, :n) AS i
CROSS JOIN seed_sizes z
CROSS JOIN LATERAL (SELECT md5('bench-grant-' || i) AS gid,
                           extract(epoch FROM now())::bigint + 30 * 86400 AS exp) s
CROSS JOIN LATERAL (VALUES
  ('grant/' || s.gid, decode(repeat('00', z.g), 'hex'), s.exp),
  ('token/' || s.gid || '/' || md5('bench-token-a-' || i) || md5('bench-token-b-' || i),
   decode(repeat('00', z.t), 'hex'), s.exp),
  ('user/' || translate(rtrim(encode(convert_to('bench-user-' || (i % 100000), 'UTF8'), 'base64'), '='), '+/', '-_')
     || '/' || s.gid, decode(repeat('00', z.u), 'hex'), s.exp)
) AS r(key, value, expires_at);

VACUUM ANALYZE oauth_records;
SELECT count(*) AS rows, pg_size_pretty(pg_total_relation_size('oauth_records')) AS size FROM oauth_records;
