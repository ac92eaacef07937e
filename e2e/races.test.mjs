// Concurrent use of one single-use credential over HTTP, against an example
// server with auto-approve for `demo` and the default (strict) refresh
// policy: E2E_AUTO_URL (any adapter), else E2E_AXUM_AUTO_URL.
//
// 50 simultaneous redemptions of one authorization code, and 50
// simultaneous refreshes with one refresh token, must each give exactly one
// success. The others must be refused with invalid_grant, never a server
// error: the store's compare-and-swap on the grant decides, and a loser is
// a replay (docs/design.md, "Replays revoke").

import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { autoServerUrl, discover, pkce, randomState, registerClient } from './helpers.mjs';

const CONTENDERS = 50;
const REDIRECT_URI = 'http://127.0.0.1:9/callback'; // never contacted: the redirect is not followed
const TEST_TIMEOUT_MS = 120_000;
// Generous per request: a Lambda emulator may start function instances to
// absorb the burst.
const RACE_REQUEST_TIMEOUT_MS = 60_000;

async function post(url, params) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
    signal: AbortSignal.timeout(RACE_REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/** Fire `count` copies of one token request at once; check one wins. */
async function race(tokenEndpoint, params) {
  const results = await Promise.all(Array.from({ length: CONTENDERS }, () => post(tokenEndpoint, params)));
  const summary = JSON.stringify(
    results.reduce((acc, r) => {
      const k = `${r.status} ${r.json?.error ?? ''}`.trim();
      acc[k] = (acc[k] ?? 0) + 1;
      return acc;
    }, {}),
  );
  const winners = results.filter((r) => r.status === 200);
  assert.equal(winners.length, 1, `exactly one of ${CONTENDERS} must succeed: ${summary}`);
  for (const r of results.filter((r) => r.status !== 200)) {
    assert.equal(r.status, 400, `a loser is refused, not failed: ${summary} (${r.text})`);
    assert.equal(r.json?.error, 'invalid_grant', `a loser gets invalid_grant: ${summary}`);
  }
  return winners[0].json;
}

describe('one credential used concurrently: exactly one success', () => {
  let meta;
  let client;

  before(async () => {
    meta = await discover(autoServerUrl());
    client = await registerClient(meta.as, { redirectUri: REDIRECT_URI, clientName: 'e2e races' });
  });

  /** Authorize (the server approves at once) and return code + verifier. */
  async function authorize() {
    const { verifier, challenge } = pkce();
    const state = randomState();
    const url = new URL(meta.as.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: REDIRECT_URI,
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      scope: 'todo:read todo:write',
      resource: meta.prm.resource,
    }).toString();
    const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(RACE_REQUEST_TIMEOUT_MS) });
    await res.text();
    assert.equal(res.status, 302, 'the auto-approving server redirects at once');
    const location = new URL(res.headers.get('location'));
    assert.equal(location.searchParams.get('state'), state);
    const code = location.searchParams.get('code');
    assert.match(code ?? '', /^mcp_ac_/);
    return { code, verifier };
  }

  function exchangeParams({ code, verifier }) {
    return {
      grant_type: 'authorization_code',
      code,
      code_verifier: verifier,
      redirect_uri: REDIRECT_URI,
      client_id: client.client_id,
      resource: meta.prm.resource,
    };
  }

  test(`${CONTENDERS} simultaneous redemptions of one authorization code`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const tokens = await race(meta.as.token_endpoint, exchangeParams(await authorize()));
    assert.match(tokens.access_token, /^mcp_at_/);
  });

  test(`${CONTENDERS} simultaneous refreshes with one refresh token (strict rotation)`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const first = await post(meta.as.token_endpoint, exchangeParams(await authorize()));
    assert.equal(first.status, 200, first.text);
    assert.match(first.json.refresh_token, /^mcp_rt_/);
    const rotated = await race(meta.as.token_endpoint, {
      grant_type: 'refresh_token',
      refresh_token: first.json.refresh_token,
      client_id: client.client_id,
      resource: meta.prm.resource,
    });
    assert.match(rotated.refresh_token, /^mcp_rt_/);
    assert.notEqual(rotated.refresh_token, first.json.refresh_token);
  });
});
