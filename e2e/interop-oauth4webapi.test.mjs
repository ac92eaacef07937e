// Real-client interop: oauth4webapi (strict RFC checks) against any of the
// project's example servers, given its base URL in INTEROP_BASE_URL.
//
//   INTEROP_BASE_URL=http://127.0.0.1:PORT node --test e2e/interop-oauth4webapi.test.mjs
//
// The server must run with the development auto-approve switch for user
// `demo`, serve the MCP resource at {base}/mcp (scopes todo:read, todo:write)
// and the echo route {base}/mcp/echo. scripts/test.d/35-interop-axum.sh sets
// INTEROP_BASE_URL; without it every test here is skipped (so the plain
// `node --test e2e/` of 30-e2e-axum.sh skips this file).
//
// oauth4webapi does the protocol work and its own validation: RFC 9728 and
// RFC 8414 discovery with the issuer and resource comparisons, RFC 7591
// registration, the authorization response with RFC 9207 `iss` validation
// (required, as the server advertises it), the token responses, RFC 6750
// challenges on the resource, and RFC 7009 revocation. The only stand-in is
// the user agent: the authorization URL is fetched without following the
// redirect (the server approves for `demo` at once). Each client
// authentication method runs the whole flow: none (public),
// client_secret_basic and client_secret_post.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import * as oauth from 'oauth4webapi';

const TEST_TIMEOUT_MS = 60_000;
const HTTP_TIMEOUT_MS = 10_000;
const SCOPE = 'todo:read todo:write';
// Never contacted: the authorization redirect is read, not followed.
const REDIRECT_URI = 'http://127.0.0.1:9/callback';

const rawBase = process.env.INTEROP_BASE_URL;
const SKIP = rawBase
  ? false
  : 'INTEROP_BASE_URL is not set: run through scripts/test.d/35-interop-axum.sh, or set it to a server ' +
    'started with --auto-approve demo';

/** Options every oauth4webapi request gets: http is allowed (loopback test servers), and a timeout. */
function reqOpts(extra = {}) {
  return { [oauth.allowInsecureRequests]: true, signal: () => AbortSignal.timeout(HTTP_TIMEOUT_MS), ...extra };
}

function baseUrl() {
  const url = new URL(rawBase);
  return url.href.replace(/\/+$/, '');
}

/** RFC 9728 then RFC 8414 discovery, each checked by oauth4webapi. */
async function discover(base) {
  const resourceId = new URL(`${base}/mcp`);
  const prm = await oauth.processResourceDiscoveryResponse(
    resourceId,
    await oauth.resourceDiscoveryRequest(resourceId, reqOpts()),
  );
  assert.ok(Array.isArray(prm.authorization_servers) && prm.authorization_servers.length > 0, 'PRM names an AS');
  const issuer = new URL(prm.authorization_servers[0]);
  // processDiscoveryResponse checks that the document's `issuer` is exactly
  // the issuer identifier it was fetched for (RFC 8414 §3.3).
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, reqOpts({ algorithm: 'oauth2' })),
  );
  return { prm, as, resource: prm.resource };
}

/** The user agent: GET the authorization URL, don't follow, return the redirect URL. */
async function userAgent(authorizationUrl) {
  const res = await fetch(authorizationUrl, { redirect: 'manual', signal: AbortSignal.timeout(HTTP_TIMEOUT_MS) });
  const body = await res.text();
  assert.ok(
    [302, 303].includes(res.status),
    `the auto-approving authorization endpoint must redirect, got ${res.status}: ${body.slice(0, 300)}`,
  );
  const location = new URL(res.headers.get('location'));
  assert.equal(location.origin + location.pathname, REDIRECT_URI, `redirected to the registered URI: ${location}`);
  return location;
}

/** GET /mcp/echo through oauth4webapi; the parsed body, or the thrown challenge error. */
async function echo(base, accessToken) {
  const res = await oauth.protectedResourceRequest(
    accessToken,
    'GET',
    new URL(`${base}/mcp/echo`),
    undefined,
    undefined,
    reqOpts(),
  );
  const text = await res.text();
  assert.equal(res.status, 200, `echo: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Asserts that the resource refuses `accessToken` with an RFC 6750 invalid_token challenge. */
async function assertRefused(base, accessToken, why) {
  await assert.rejects(
    oauth.protectedResourceRequest(accessToken, 'GET', new URL(`${base}/mcp/echo`), undefined, undefined, reqOpts()),
    (err) => {
      assert.ok(err instanceof oauth.WWWAuthenticateChallengeError, `${why}: expected a challenge, got ${err}`);
      assert.equal(err.status, 401, why);
      const bearer = err.cause.find((c) => c.scheme === 'bearer');
      assert.ok(bearer, `${why}: a Bearer challenge (${JSON.stringify(err.cause)})`);
      assert.equal(bearer.parameters.error, 'invalid_token', why);
      return true;
    },
    why,
  );
}

/** Asserts a token-endpoint refusal with `code` (invalid_grant, invalid_client, ...). */
async function assertTokenError(promise, code, why) {
  await assert.rejects(
    promise,
    (err) => {
      if (err instanceof oauth.ResponseBodyError) {
        assert.equal(err.error, code, `${why}: ${err.error} ${err.error_description ?? ''}`);
        return true;
      }
      if (err instanceof oauth.WWWAuthenticateChallengeError) {
        // 401 invalid_client carries a challenge (RFC 6749 §5.2).
        assert.equal(code, 'invalid_client', `${why}: unexpected challenge ${JSON.stringify(err.cause)}`);
        assert.equal(err.status, 401, why);
        return true;
      }
      assert.fail(`${why}: unexpected error ${err?.name}: ${err?.message}`);
      return false;
    },
    why,
  );
}

const METHODS = [
  { method: 'none', auth: () => oauth.None() },
  { method: 'client_secret_basic', auth: (secret) => oauth.ClientSecretBasic(secret) },
  { method: 'client_secret_post', auth: (secret) => oauth.ClientSecretPost(secret) },
];

describe('oauth4webapi against INTEROP_BASE_URL', { skip: SKIP }, () => {
  test('discovery: RFC 9728 + RFC 8414 metadata pass oauth4webapi checks', { timeout: TEST_TIMEOUT_MS }, async () => {
    const base = baseUrl();
    const { as, prm } = await discover(base);
    assert.equal(new URL(prm.resource).href, new URL(`${base}/mcp`).href);
    assert.equal(as.authorization_response_iss_parameter_supported, true, 'RFC 9207 iss is advertised');
    assert.ok(as.code_challenge_methods_supported?.includes('S256'), 'S256 is advertised');
    for (const m of METHODS) {
      assert.ok(as.token_endpoint_auth_methods_supported?.includes(m.method), `${m.method} is advertised`);
    }
    for (const ep of ['authorization_endpoint', 'token_endpoint', 'registration_endpoint', 'revocation_endpoint']) {
      assert.ok(as[ep], `${ep} is advertised`);
    }
  });

  test('an authorization error response carries state and iss (RFC 9207 §2)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const base = baseUrl();
    const { as, resource } = await discover(base);
    const registered = await oauth.processDynamicClientRegistrationResponse(
      await oauth.dynamicClientRegistrationRequest(
        as,
        { redirect_uris: [REDIRECT_URI], token_endpoint_auth_method: 'none', response_types: ['code'] },
        reqOpts(),
      ),
    );
    const client = { client_id: registered.client_id, token_endpoint_auth_method: 'none' };
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint);
    for (const [k, v] of Object.entries({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: REDIRECT_URI,
      scope: 'no-such:scope',
      state,
      code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()),
      code_challenge_method: 'S256',
      resource,
    })) {
      url.searchParams.set(k, v);
    }
    const callback = await userAgent(url);
    // With iss or state missing or wrong, oauth4webapi would throw an
    // OperationProcessingError before looking at `error`.
    assert.throws(
      () => oauth.validateAuthResponse(as, client, callback, state),
      (err) => {
        assert.ok(err instanceof oauth.AuthorizationResponseError, `${err?.name}: ${err?.message}`);
        assert.equal(err.error, 'invalid_scope');
        return true;
      },
    );
  });

  for (const { method, auth } of METHODS) {
    test(`full flow with token_endpoint_auth_method=${method}`, { timeout: TEST_TIMEOUT_MS }, async () => {
      const base = baseUrl();
      const { as, resource } = await discover(base);

      // --- RFC 7591 dynamic registration
      const registered = await oauth.processDynamicClientRegistrationResponse(
        await oauth.dynamicClientRegistrationRequest(
          as,
          {
            client_name: `oauth4webapi interop (${method})`,
            redirect_uris: [REDIRECT_URI],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: method,
          },
          reqOpts(),
        ),
      );
      assert.ok(registered.client_id, 'a client_id was issued');
      if (method === 'none') {
        assert.equal(registered.client_secret, undefined, 'a public client gets no secret');
      } else {
        assert.ok(registered.client_secret, 'a confidential client gets a secret');
      }
      assert.equal(registered.token_endpoint_auth_method, method);
      const client = { client_id: registered.client_id, token_endpoint_auth_method: method };
      const clientAuth = auth(registered.client_secret);

      // --- authorization request: PKCE S256 + state + resource (RFC 8707)
      const verifier = oauth.generateRandomCodeVerifier();
      const challenge = await oauth.calculatePKCECodeChallenge(verifier);
      const state = oauth.generateRandomState();
      const authorizationUrl = new URL(as.authorization_endpoint);
      for (const [k, v] of Object.entries({
        response_type: 'code',
        client_id: client.client_id,
        redirect_uri: REDIRECT_URI,
        scope: SCOPE,
        state,
        code_challenge: challenge,
        code_challenge_method: 'S256',
        resource,
      })) {
        authorizationUrl.searchParams.set(k, v);
      }
      const callback = await userAgent(authorizationUrl);

      // --- authorization response: state and RFC 9207 iss checked by oauth4webapi
      const params = oauth.validateAuthResponse(as, client, callback, state);
      assert.throws(
        () => {
          const forged = new URL(callback);
          forged.searchParams.set('iss', 'https://attacker.example');
          oauth.validateAuthResponse(as, client, forged, state);
        },
        oauth.OperationProcessingError,
        'a foreign iss is refused (the check is live)',
      );

      // --- code exchange
      const tokens = await oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(
          as,
          client,
          clientAuth,
          params,
          REDIRECT_URI,
          verifier,
          reqOpts({ additionalParameters: { resource } }),
        ),
      );
      assert.equal(tokens.token_type, 'bearer', 'oauth4webapi lower-cases token_type');
      assert.ok(tokens.access_token, 'an access token');
      assert.ok(tokens.refresh_token, 'a refresh token');
      assert.equal(typeof tokens.expires_in, 'number');
      assert.deepEqual(tokens.scope.split(' ').sort(), ['todo:read', 'todo:write']);

      // The code is single use: a second redemption is invalid_grant.
      await assertTokenError(
        oauth
          .authorizationCodeGrantRequest(as, client, clientAuth, params, REDIRECT_URI, verifier, reqOpts({ additionalParameters: { resource } }))
          .then((res) => oauth.processAuthorizationCodeResponse(as, client, res)),
        'invalid_grant',
        'code replay',
      );

      // That replay revoked the grant (docs/design.md, "Replays revoke"); a
      // fresh authorization continues the flow.
      const verifier2 = oauth.generateRandomCodeVerifier();
      const state2 = oauth.generateRandomState();
      authorizationUrl.searchParams.set('state', state2);
      authorizationUrl.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier2));
      const params2 = oauth.validateAuthResponse(as, client, await userAgent(authorizationUrl), state2);
      const fresh = await oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(
          as,
          client,
          clientAuth,
          params2,
          REDIRECT_URI,
          verifier2,
          reqOpts({ additionalParameters: { resource } }),
        ),
      );
      await assertRefused(base, tokens.access_token, 'the replayed code revoked its grant');

      // --- the resource accepts the token
      const who = await echo(base, fresh.access_token);
      assert.equal(who.user_id, 'demo');
      assert.equal(who.client_id, client.client_id);
      assert.equal(new URL(who.audience).href, new URL(resource).href);

      if (method !== 'none') {
        await assertTokenError(
          oauth
            .refreshTokenGrantRequest(as, client, auth('not-the-secret'), fresh.refresh_token, reqOpts())
            .then((res) => oauth.processRefreshTokenResponse(as, client, res)),
          'invalid_client',
          'a wrong client secret',
        );
      }

      // --- refresh
      const refreshed = await oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(
          as,
          client,
          clientAuth,
          fresh.refresh_token,
          reqOpts({ additionalParameters: { resource } }),
        ),
      );
      assert.notEqual(refreshed.access_token, fresh.access_token, 'a new access token');
      assert.ok(refreshed.refresh_token, 'a rotated refresh token');
      assert.notEqual(refreshed.refresh_token, fresh.refresh_token, 'the refresh token rotates');
      assert.equal((await echo(base, refreshed.access_token)).user_id, 'demo');

      // --- RFC 7009: revoking the access token alone
      await oauth.processRevocationResponse(
        await oauth.revocationRequest(
          as,
          client,
          clientAuth,
          refreshed.access_token,
          reqOpts({ additionalParameters: { token_type_hint: 'access_token' } }),
        ),
      );
      await assertRefused(base, refreshed.access_token, 'a revoked access token');

      // The grant outlives its access token: the refresh token still works.
      const again = await oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(
          as,
          client,
          clientAuth,
          refreshed.refresh_token,
          reqOpts({ additionalParameters: { resource } }),
        ),
      );
      assert.equal((await echo(base, again.access_token)).client_id, client.client_id);

      // --- RFC 7009: revoking the refresh token revokes the grant
      await oauth.processRevocationResponse(
        await oauth.revocationRequest(
          as,
          client,
          clientAuth,
          again.refresh_token,
          reqOpts({ additionalParameters: { token_type_hint: 'refresh_token' } }),
        ),
      );
      await assertRefused(base, again.access_token, 'an access token of a revoked grant');
      await assertTokenError(
        oauth
          .refreshTokenGrantRequest(as, client, clientAuth, again.refresh_token, reqOpts({ additionalParameters: { resource } }))
          .then((res) => oauth.processRefreshTokenResponse(as, client, res)),
        'invalid_grant',
        'a revoked refresh token',
      );

      // Revoking an unknown or already revoked token is still 200 (RFC 7009 §2.2).
      await oauth.processRevocationResponse(
        await oauth.revocationRequest(as, client, clientAuth, again.refresh_token, reqOpts()),
      );
    });
  }
});
