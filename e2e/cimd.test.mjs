// Client ID metadata documents over HTTP against a running example server
// (any adapter) with CIMD on and auto-approve for `demo`: the client is an
// https URL served by the local HTTPS test server
// (adapter-axum/examples/cimd_test_server.rs), and authenticates at the
// token endpoint with private_key_jwt.
//
// Run by scripts/test.d/65-lambda-cimd.sh (the Lambda function under
// `cargo lambda watch`) and scripts/test.d/55-worker-cimd.sh (the Worker in
// workerd). Environment:
//
//   E2E_AUTO_URL           the server under test (auto-approve, MCP_CIMD=1)
//   CIMD_SERVER_LOG        its log: every refusal's reason is checked there
//                          (the page shows the description, the operator's
//                          log the reason slug)
//   CIMD_SERVER_INFO       the test server's info file (port, stats URL, keys)
//   CIMD_HOST              the name the server under test reaches the test
//                          server by (client.test through the Lambda's test
//                          resolver, localhost from workerd)
//   CIMD_TIMEOUT_MS        the server's fetch_timeout (MCP_CIMD_FETCH_TIMEOUT_MS)
//   CIMD_DENIED_HOST       a host on the server's deny list (optional)
//   CIMD_FORBIDDEN_HOSTS   names the server resolves to special-use
//                          addresses, comma-separated (optional: only an
//                          adapter that resolves names itself can refuse
//                          them; a Worker cannot, see docs/cimd.md)
//   CIMD_STRICT_URL, CIMD_STRICT_LOG   optional: a second server with CIMD on
//                          and the production fetcher (no test knobs), which
//                          must refuse `localhost` before connecting
//
// Without CIMD_SERVER_INFO every test here is skipped (so the plain
// `node --test e2e/` of 30-e2e-axum.sh, whose servers have CIMD off, skips
// this file; the axum adapter's CIMD tests run in-process, in
// adapter-axum/tests/cimd.rs).

import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { before, describe, test } from 'node:test';

import { autoServerUrl, b64url, discover, fetchT, getWithBearer, pkce, postForm, randomState } from './helpers.mjs';

const CALLBACK = 'http://127.0.0.1:7777/callback';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through scripts/test.d/55-worker-cimd.sh or 65-lambda-cimd.sh`);
  return value;
}

const list = (v) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);

const enabled = Boolean(process.env.CIMD_SERVER_INFO);
const skipAll = !enabled && 'CIMD_SERVER_INFO is not set (run through 55-worker-cimd.sh or 65-lambda-cimd.sh)';
let base, serverLog, info, host, timeoutMs, deniedHost, forbiddenHosts, strictUrl, ecKey, rsaKey;
if (enabled) {
  base = autoServerUrl();
  serverLog = required('CIMD_SERVER_LOG');
  info = JSON.parse(readFileSync(required('CIMD_SERVER_INFO'), 'utf8'));
  host = required('CIMD_HOST');
  timeoutMs = Number(required('CIMD_TIMEOUT_MS'));
  deniedHost = process.env.CIMD_DENIED_HOST;
  forbiddenHosts = list(process.env.CIMD_FORBIDDEN_HOSTS);
  strictUrl = process.env.CIMD_STRICT_URL?.replace(/\/+$/, '');
  ecKey = createPrivateKey({ key: info.ec_private_jwk, format: 'jwk' });
  rsaKey = createPrivateKey(info.rsa_private_pem);
}

/** A document URL on the test server, unique per call (the query is ignored by the server). */
function docUrl(path, name = host) {
  return `https://${name}:${info.port}${path}?case=${b64url(randomBytes(6))}`;
}

async function stats() {
  const res = await fetchT(info.stats_url);
  return res.json();
}

/** A private_key_jwt assertion (RFC 7523) for `clientId`, audience `aud`. */
function assertion(clientId, aud, { alg = 'ES256', kid = 'ec1', jti = b64url(randomBytes(12)), tamper = false } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg, kid, typ: 'JWT' }));
  const claims = b64url(JSON.stringify({ iss: clientId, sub: clientId, aud, iat: now, exp: now + 120, jti }));
  const input = `${header}.${claims}`;
  const signature =
    alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key: ecKey, dsaEncoding: 'ieee-p1363' })
      : sign('sha256', Buffer.from(input), rsaKey);
  if (tamper) signature[0] ^= 1;
  return `${input}.${b64url(signature)}`;
}

/** GET /authorize for `clientId`: the raw response, redirects not followed. */
async function authorize(asBase, clientId, challenge, state) {
  const url = new URL(`${asBase}/authorize`);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: CALLBACK,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
  }).toString();
  // The slow document must be able to time out inside the server first.
  const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(timeoutMs + 30_000) });
  return { status: res.status, location: res.headers.get('location'), text: await res.text() };
}

/** An authorization code for `clientId` (auto-approve). */
async function code(clientId) {
  const { verifier, challenge } = pkce();
  const state = randomState();
  const res = await authorize(base, clientId, challenge, state);
  assert.equal(res.status, 302, `authorize ${clientId}: ${res.status} ${res.text.slice(0, 500)}`);
  const location = new URL(res.location);
  assert.equal(`${location.origin}${location.pathname}`, CALLBACK);
  assert.equal(location.searchParams.get('state'), state);
  return { code: location.searchParams.get('code'), verifier };
}

/** Poll `log` for a line with `reason=REASON` about `clientId`. */
async function assertLogged(log, clientId, reason) {
  const deadline = Date.now() + 5000;
  const needle = `reason=${reason}`;
  for (;;) {
    const lines = readFileSync(log, 'utf8').split('\n');
    if (lines.some((l) => l.includes(needle) && l.includes(clientId))) return;
    if (Date.now() > deadline) {
      const near = lines.filter((l) => l.includes(clientId)).join('\n') || '(no line names it)';
      assert.fail(`no "${needle}" logged for ${clientId} in ${log}; lines naming it:\n${near}`);
    }
    await sleep(100);
  }
}

/** The authorization request is refused on the page, for `reason`. */
async function assertRefused(clientId, reason, description, { asBase = base, log = serverLog } = {}) {
  const res = await authorize(asBase, clientId, pkce().challenge, randomState());
  assert.equal(res.status, 400, `${clientId}: expected the error page, got ${res.status} ${res.location ?? ''}`);
  assert.equal(res.location, null, 'never redirected to the client');
  if (description) assert.match(res.text, description, `${clientId}: the page says why`);
  await assertLogged(log, clientId, reason);
}

describe('client ID metadata documents over HTTP', { skip: skipAll }, () => {
  let meta;
  before(async () => {
    if (enabled) meta = (await discover(base)).as;
  });

  test('metadata advertises CIMD and private_key_jwt', () => {
    assert.equal(meta.client_id_metadata_document_supported, true);
    assert.ok(meta.token_endpoint_auth_methods_supported.includes('private_key_jwt'));
    assert.ok(meta.token_endpoint_auth_signing_alg_values_supported.includes('ES256'));
  });

  test('full flow: document with inline ES256 key, private_key_jwt at the token endpoint', async () => {
    const clientId = docUrl('/es.json');
    const first = await code(clientId);
    const jwt = assertion(clientId, meta.token_endpoint);
    const tok = await postForm(meta.token_endpoint, {
      grant_type: 'authorization_code',
      code: first.code,
      redirect_uri: CALLBACK,
      code_verifier: first.verifier,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: jwt,
    });
    assert.equal(tok.status, 200, tok.text);
    assert.ok(tok.json.access_token && tok.json.refresh_token, tok.text);
    const echo = await getWithBearer(`${base}/mcp/echo`, tok.json.access_token);
    assert.equal(echo.status, 200);
    assert.equal(echo.json.client_id, clientId, 'the token belongs to the document client');

    // The same assertion again: a replay.
    const second = await code(clientId);
    const replay = await postForm(meta.token_endpoint, {
      grant_type: 'authorization_code',
      code: second.code,
      redirect_uri: CALLBACK,
      code_verifier: second.verifier,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: jwt,
    });
    assert.equal(replay.status, 401, replay.text);
    assert.equal(replay.json.error, 'invalid_client');
    await assertLogged(serverLog, clientId, 'client_assertion_replayed');

    // A forged signature.
    const third = await code(clientId);
    const forged = await postForm(meta.token_endpoint, {
      grant_type: 'authorization_code',
      code: third.code,
      redirect_uri: CALLBACK,
      code_verifier: third.verifier,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: assertion(clientId, meta.token_endpoint, { tamper: true }),
    });
    assert.equal(forged.status, 401, forged.text);
    await assertLogged(serverLog, clientId, 'client_assertion_signature_invalid');
  });

  test('full flow: RS256 key from jwks_uri, refresh with a new assertion', async () => {
    const clientId = docUrl('/rs.json');
    const { code: c, verifier } = await code(clientId);
    const tok = await postForm(meta.token_endpoint, {
      grant_type: 'authorization_code',
      code: c,
      redirect_uri: CALLBACK,
      code_verifier: verifier,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: assertion(clientId, meta.token_endpoint, { alg: 'RS256', kid: 'rs1' }),
    });
    assert.equal(tok.status, 200, tok.text);
    const refreshed = await postForm(meta.token_endpoint, {
      grant_type: 'refresh_token',
      refresh_token: tok.json.refresh_token,
      client_assertion_type: ASSERTION_TYPE,
      client_assertion: assertion(clientId, meta.token_endpoint, { alg: 'RS256', kid: 'rs1' }),
    });
    assert.equal(refreshed.status, 200, refreshed.text);
  });

  test('a redirect is refused and not followed', async () => {
    await assertRefused(docUrl('/redirect.json'), 'cimd_fetch_redirect_refused', /redirect/);
    const before = (await stats()).hits['/redirect-target.json'] ?? 0;
    await assertRefused(docUrl('/redirect-self.json'), 'cimd_fetch_redirect_refused', /redirect/);
    assert.equal((await stats()).hits['/redirect-target.json'] ?? 0, before, 'the redirect target was never asked for');
  });

  test('oversized documents are refused, with or without Content-Length', async () => {
    await assertRefused(docUrl('/big.json'), 'cimd_fetch_too_large', /too large/);
    await assertRefused(docUrl('/chunked.json'), 'cimd_fetch_too_large', /too large/);
  });

  test('a slow document times out within the fetch budget', async () => {
    const started = Date.now();
    await assertRefused(docUrl('/slow.json'), 'cimd_fetch_timeout', /did not answer in time/);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= timeoutMs - 100, `refused after ${elapsed} ms, before the ${timeoutMs} ms budget`);
    assert.ok(elapsed < timeoutMs + 2500, `refused after ${elapsed} ms: the budget is ${timeoutMs} ms`);
    assert.ok(elapsed < info.slow_secs * 1000, 'before the document would have arrived');
  });

  test('non-https and IP-literal client IDs are refused before any connection', async () => {
    const before = (await stats()).connections;
    await assertRefused(`http://${host}:${info.port}/es.json?case=${b64url(randomBytes(6))}`, 'cimd_url_not_https');
    await assertRefused(docUrl('/es.json', '127.0.0.1'), 'cimd_url_ip_literal');
    await assertRefused(docUrl('/es.json', '[::ffff:7f00:1]'), 'cimd_url_ip_literal');
    assert.equal((await stats()).connections, before, 'nothing was connected to');
  });

  test('the host deny list', { skip: enabled && !deniedHost && 'CIMD_DENIED_HOST not set' }, async () => {
    await assertRefused(docUrl('/es.json', deniedHost), 'cimd_host_not_allowed');
  });

  test(
    'names resolving to special-use addresses are refused before connecting',
    { skip: enabled && forbiddenHosts.length === 0 && 'this adapter cannot see addresses (CIMD_FORBIDDEN_HOSTS not set)' },
    async () => {
      const before = (await stats()).connections;
      for (const name of forbiddenHosts) {
        await assertRefused(docUrl('/es.json', name), 'cimd_fetch_forbidden_address', /address this server does not fetch from/);
      }
      assert.equal((await stats()).connections, before, 'nothing was connected to');

      if (forbiddenHosts.includes('metadata.test')) {
        // A document whose jwks_uri names a forbidden host: client
        // authentication fails when the key set is needed.
        const clientId = docUrl('/rs-evil-jwks.json');
        const { code: c, verifier } = await code(clientId);
        const tok = await postForm(meta.token_endpoint, {
          grant_type: 'authorization_code',
          code: c,
          redirect_uri: CALLBACK,
          code_verifier: verifier,
          client_assertion_type: ASSERTION_TYPE,
          client_assertion: assertion(clientId, meta.token_endpoint, { alg: 'RS256', kid: 'rs1' }),
        });
        assert.equal(tok.status, 401, tok.text);
        assert.equal(tok.json.error, 'invalid_client');
        await assertLogged(serverLog, clientId, 'jwks_fetch_forbidden_address');
      }
    },
  );

  test(
    'production fetcher: localhost is refused through the system resolver',
    { skip: enabled && !strictUrl && 'CIMD_STRICT_URL not set' },
    async () => {
      const before = (await stats()).connections;
      await assertRefused(docUrl('/es.json', 'localhost'), 'cimd_fetch_forbidden_address', /address/, {
        asBase: strictUrl,
        log: required('CIMD_STRICT_LOG'),
      });
      assert.equal((await stats()).connections, before, 'nothing was connected to');
    },
  );
});
