// The MCP TypeScript SDK client, with its own OAuth machinery, against an
// example server with auto-approve for `demo`: the axum one
// (E2E_AXUM_AUTO_URL) or any adapter's (E2E_AUTO_URL).
//
// The SDK does everything a real MCP client does: it meets the 401, reads
// the protected-resource metadata (RFC 9728) and the authorization-server
// metadata (RFC 8414), registers dynamically (RFC 7591), builds the PKCE
// authorization URL, exchanges the code, and refreshes. The only stand-in is
// the user agent: redirectToAuthorization() fetches the authorization URL
// without following the redirect and reads code, state and iss from its
// Location (the server approves for the dev user at once).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, auth, refreshAuthorization } from '@modelcontextprotocol/sdk/client/auth.js';
import { InvalidGrantError } from '@modelcontextprotocol/sdk/server/auth/errors.js';

import { autoServerUrl, b64url, boundedFetch, discover, fetchT, getWithBearer, postForm } from './helpers.mjs';

const TEST_TIMEOUT_MS = 60_000;
const REQUEST_OPTS = { timeout: 10_000 };
const TODO_TOOLS = ['add_todo', 'list_todos', 'complete_todo', 'delete_todo', 'whoami'];

/** An OAuthClientProvider that keeps everything in memory. */
class TestProvider {
  constructor(redirectUrl) {
    this._redirectUrl = redirectUrl;
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this.states = [];
    this.redirects = [];
    this.authorizationUrls = [];
  }

  get redirectUrl() {
    return this._redirectUrl;
  }

  get clientMetadata() {
    return {
      client_name: 'e2e MCP SDK client',
      redirect_uris: [this._redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    const s = b64url(randomBytes(16));
    this.states.push(s);
    return s;
  }

  clientInformation() {
    return this._client;
  }

  saveClientInformation(info) {
    this._client = info;
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
  }

  saveCodeVerifier(v) {
    this._verifier = v;
  }

  codeVerifier() {
    if (!this._verifier) throw new Error('no code verifier saved');
    return this._verifier;
  }

  invalidateCredentials(scope) {
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
  }

  /** The user agent: follow nothing, read the redirect's query. */
  async redirectToAuthorization(url) {
    this.authorizationUrls.push(new URL(url));
    const res = await fetchT(url, { redirect: 'manual' });
    const body = await res.text();
    assert.ok(
      [302, 303].includes(res.status),
      `the auto-approving /authorize must redirect, got ${res.status}: ${body.slice(0, 300)}`,
    );
    const location = new URL(res.headers.get('location'));
    this.redirects.push({
      location,
      code: location.searchParams.get('code'),
      state: location.searchParams.get('state'),
      iss: location.searchParams.get('iss'),
      error: location.searchParams.get('error'),
    });
  }

  get lastRedirect() {
    return this.redirects.at(-1);
  }
}

/** A connected SDK client using `provider`'s tokens. */
async function connect(mcpUrl, provider) {
  const client = new Client({ name: 'e2e-sdk', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  await client.connect(transport, REQUEST_OPTS);
  return client;
}

/** A tool's structured result (the example's tools all return JSON). */
function structured(result, what) {
  assert.notEqual(result.isError, true, `${what} failed: ${JSON.stringify(result.content)}`);
  if (result.structuredContent) return result.structuredContent;
  const text = (result.content ?? []).find((c) => c.type === 'text')?.text;
  assert.ok(text, `${what} returned neither structured nor text content: ${JSON.stringify(result)}`);
  return JSON.parse(text);
}

async function call(client, name, args = {}) {
  return structured(await client.callTool({ name, arguments: args }, undefined, REQUEST_OPTS), name);
}

describe('MCP TypeScript SDK client against the example server (auto-approve demo)', () => {
  let base;
  let mcpUrl;
  let meta;
  const redirectUri = 'http://127.0.0.1:9/callback'; // never contacted: the redirect is not followed
  const provider = new TestProvider(redirectUri);
  const clients = [];

  before(async () => {
    base = autoServerUrl();
    mcpUrl = `${base}/mcp`;
    meta = await discover(base);
  });

  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
  });

  test('an unauthenticated MCP request gets a 401 pointing at the resource metadata', { timeout: TEST_TIMEOUT_MS }, async () => {
    const res = await fetchT(mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    await res.text();
    assert.equal(res.status, 401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer /i);
    assert.match(challenge, /resource_metadata="[^"]*\/\.well-known\/oauth-protected-resource/);
    assert.equal(meta.as.issuer, meta.issuer, 'RFC 8414 §3.3: the metadata issuer equals the discovered issuer');
    assert.equal(meta.as.authorization_response_iss_parameter_supported, true);
  });

  test('discovery, DCR, authorization (PKCE) and code exchange through the SDK', { timeout: TEST_TIMEOUT_MS }, async () => {
    const first = new Client({ name: 'e2e-sdk', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    // The 401 drives the SDK through discovery, registration and the
    // authorization URL; it then asks the user agent to go there and stops.
    await assert.rejects(first.connect(transport, REQUEST_OPTS), UnauthorizedError);
    await first.close().catch(() => {});

    const info = provider.clientInformation();
    assert.ok(info?.client_id, 'the SDK registered a client');
    assert.equal(info.client_secret, undefined, 'a public client gets no secret');

    const authzUrl = provider.authorizationUrls.at(-1);
    assert.equal(authzUrl.origin + authzUrl.pathname, meta.as.authorization_endpoint);
    assert.equal(authzUrl.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(authzUrl.searchParams.get('resource'), meta.prm.resource);

    const redirect = provider.lastRedirect;
    assert.equal(redirect.error, null, `authorization error: ${redirect.location}`);
    assert.equal(redirect.location.origin + redirect.location.pathname, redirectUri);
    assert.match(redirect.code ?? '', /^mcp_ac_/);
    assert.equal(redirect.state, provider.states.at(-1), 'state round-trips');
    assert.equal(redirect.iss, meta.issuer, 'RFC 9207 iss equals the issuer');

    await transport.finishAuth(redirect.code);
    const tokens = provider.tokens();
    assert.match(tokens.access_token, /^mcp_at_/);
    assert.match(tokens.refresh_token, /^mcp_rt_/);
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  });

  test('initialize, listTools and the todo tools as user demo', { timeout: TEST_TIMEOUT_MS }, async () => {
    const client = await connect(mcpUrl, provider);
    clients.push(client);
    assert.ok(client.getServerVersion()?.name, 'initialize returned server info');

    const { tools } = await client.listTools({}, REQUEST_OPTS);
    const names = tools.map((t) => t.name);
    for (const name of TODO_TOOLS) assert.ok(names.includes(name), `tool ${name} is listed (got ${names})`);

    const text = `e2e todo ${b64url(randomBytes(6))}`;
    const { todo } = await call(client, 'add_todo', { text });
    assert.equal(todo.text, text);
    assert.equal(todo.done, false);
    assert.equal(typeof todo.id, 'number');

    const { todos } = await call(client, 'list_todos');
    assert.deepEqual(
      todos.filter((t) => t.id === todo.id).map((t) => t.text),
      [text],
      `list_todos returns the new todo: ${JSON.stringify(todos)}`,
    );

    const completed = await call(client, 'complete_todo', { id: todo.id });
    assert.equal(completed.todo.done, true);
    const deleted = await call(client, 'delete_todo', { id: todo.id });
    assert.equal(deleted.deleted.id, todo.id);
    assert.ok(!(await call(client, 'list_todos')).todos.some((t) => t.id === todo.id), 'the todo is gone');

    const who = await call(client, 'whoami');
    assert.equal(who.user_id, 'demo');
    assert.equal(who.client_id, provider.clientInformation().client_id);
    assert.equal(who.audience, meta.prm.resource);
    assert.deepEqual([...who.scope].sort(), ['todo:read', 'todo:write']);
  });

  test('refresh rotates; the rotated token is refused and its reuse revokes the grant (strict policy)', { timeout: TEST_TIMEOUT_MS }, async () => {
    const old = provider.tokens();

    // The SDK's own auth(): with a stored refresh token it refreshes.
    assert.equal(await auth(provider, { serverUrl: mcpUrl, fetchFn: boundedFetch }), 'AUTHORIZED');
    const fresh = provider.tokens();
    assert.notEqual(fresh.access_token, old.access_token);
    assert.match(fresh.refresh_token, /^mcp_rt_/);
    assert.notEqual(fresh.refresh_token, old.refresh_token, 'strict rotation issues a new refresh token');

    // The new tokens work, through the SDK and on the echo route.
    const client = await connect(mcpUrl, provider);
    clients.push(client);
    assert.equal((await call(client, 'whoami')).user_id, 'demo');
    const echo = await getWithBearer(`${base}/mcp/echo`, fresh.access_token);
    assert.equal(echo.status, 200, echo.text);
    await client.close();

    // docs/design.md, "Replays revoke" + "Refresh rotation policies": under
    // Strict (the default) a refresh token presented after rotation is
    // refused with invalid_grant AND revokes the grant with every access
    // token it issued.
    const common = {
      metadata: meta.as,
      clientInformation: provider.clientInformation(),
      resource: new URL(meta.prm.resource),
      fetchFn: boundedFetch,
    };
    await assert.rejects(
      refreshAuthorization(meta.issuer, { ...common, refreshToken: old.refresh_token }),
      InvalidGrantError,
      'the rotated-away refresh token is refused with invalid_grant',
    );
    const after = await getWithBearer(`${base}/mcp/echo`, fresh.access_token);
    assert.equal(after.status, 401, `the replay revoked the grant, so the new access token is dead: ${after.text}`);
    assert.match(after.wwwAuthenticate ?? '', /invalid_token/);
    await assert.rejects(
      refreshAuthorization(meta.issuer, { ...common, refreshToken: fresh.refresh_token }),
      InvalidGrantError,
      'the new refresh token died with the grant',
    );
  });

  test('RFC 7009 revocation through /revoke', { timeout: TEST_TIMEOUT_MS }, async () => {
    // A new authorization with the same registration, again via the SDK's auth().
    provider.invalidateCredentials('tokens');
    assert.equal(await auth(provider, { serverUrl: mcpUrl, fetchFn: boundedFetch }), 'REDIRECT');
    const redirect = provider.lastRedirect;
    assert.equal(redirect.iss, meta.issuer);
    assert.equal(redirect.state, provider.states.at(-1));
    assert.equal(
      await auth(provider, { serverUrl: mcpUrl, authorizationCode: redirect.code, fetchFn: boundedFetch }),
      'AUTHORIZED',
    );
    const tokens = provider.tokens();
    const clientId = provider.clientInformation().client_id;
    assert.equal((await getWithBearer(`${base}/mcp/echo`, tokens.access_token)).status, 200);

    // Revoking the access token: 200, and the token is refused afterwards.
    assert.ok(meta.as.revocation_endpoint, 'the AS advertises a revocation endpoint');
    let res = await postForm(meta.as.revocation_endpoint, {
      token: tokens.access_token,
      token_type_hint: 'access_token',
      client_id: clientId,
    });
    assert.equal(res.status, 200, res.text);
    const revoked = await getWithBearer(`${base}/mcp/echo`, tokens.access_token);
    assert.equal(revoked.status, 401, revoked.text);
    assert.match(revoked.wwwAuthenticate ?? '', /invalid_token/);

    // The SDK, holding the revoked token, refreshes transparently: the grant
    // (and its refresh token) outlives an access token's revocation.
    const client = await connect(mcpUrl, provider);
    clients.push(client);
    assert.equal((await call(client, 'whoami')).user_id, 'demo');
    await client.close();
    const refreshed = provider.tokens();
    assert.notEqual(refreshed.access_token, tokens.access_token, 'the SDK refreshed after the 401');

    // Revoking the refresh token revokes the whole grant.
    res = await postForm(meta.as.revocation_endpoint, { token: refreshed.refresh_token, client_id: clientId });
    assert.equal(res.status, 200, res.text);
    assert.equal((await getWithBearer(`${base}/mcp/echo`, refreshed.access_token)).status, 401);
    await assert.rejects(
      refreshAuthorization(meta.issuer, {
        metadata: meta.as,
        clientInformation: provider.clientInformation(),
        refreshToken: refreshed.refresh_token,
        resource: new URL(meta.prm.resource),
        fetchFn: boundedFetch,
      }),
      InvalidGrantError,
    );
  });
});
