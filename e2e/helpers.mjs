// Shared helpers for the end-to-end tests. Everything talks to loopback
// servers only, and every network wait is bounded.
//
// The servers are started by scripts/test.d/30-e2e-axum.sh (axum) and
// scripts/test.d/60-lambda.sh (Lambda), which pass their base URLs in the
// environment:
//   E2E_AXUM_AUTO_URL     the axum example started with --auto-approve demo
//   E2E_AXUM_CONSENT_URL  the axum example with the real sign-in + consent page
//   E2E_AUTO_URL          any adapter's example with auto-approve for `demo`
//                         (takes precedence over E2E_AXUM_AUTO_URL)
//   E2E_CONSENT_URL       any adapter's example with the real pages
//                         (takes precedence over E2E_AXUM_CONSENT_URL)

import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

/** Per-request bound: no single HTTP call in these tests may hang. */
export const HTTP_TIMEOUT_MS = 10_000;

/** The base URL (no trailing slash) from `name`, or a clear failure. */
export function serverUrl(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run these tests through scripts/test.d/30-e2e-axum.sh or ` +
        'scripts/test.d/60-lambda.sh, which build and start the example servers',
    );
  }
  const url = new URL(value);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
    throw new Error(`${name}=${value} is not a loopback address`);
  }
  return value.replace(/\/+$/, '');
}

/**
 * The auto-approving example server under test: E2E_AUTO_URL (whichever
 * adapter serves it), else the axum one, E2E_AXUM_AUTO_URL.
 */
export function autoServerUrl() {
  return serverUrl(process.env.E2E_AUTO_URL ? 'E2E_AUTO_URL' : 'E2E_AXUM_AUTO_URL');
}

/** fetch with a timeout. */
export function fetchT(url, init = {}) {
  return fetch(url, { signal: AbortSignal.timeout(HTTP_TIMEOUT_MS), ...init });
}

/** A fetch for the MCP SDK: bounded like fetchT. */
export const boundedFetch = (url, init = {}) => fetchT(url, init);

export function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

/** A PKCE pair (RFC 7636, S256). */
export function pkce() {
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

export function randomState() {
  return b64url(randomBytes(16));
}

/** GET a JSON document and assert 200. */
export async function getJson(url, init = {}) {
  const res = await fetchT(url, init);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** The server's metadata: RFC 9728 for /mcp and RFC 8414 for its issuer. */
export async function discover(base) {
  const prm = await getJson(`${base}/.well-known/oauth-protected-resource/mcp`);
  const issuer = prm.authorization_servers[0];
  const as = await getJson(new URL('/.well-known/oauth-authorization-server', issuer).href);
  return { prm, as, issuer };
}

/** POST a form; returns { status, json, headers }. */
export async function postForm(url, params, headers = {}) {
  const res = await fetchT(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(params).toString(),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** Dynamic client registration (RFC 7591) of a public client. */
export async function registerClient(as, { redirectUri, clientName, scope }) {
  const res = await fetchT(as.registration_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      client_name: clientName,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      ...(scope ? { scope } : {}),
    }),
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`register: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** GET `url` with a bearer token; returns { status, json, wwwAuthenticate }. */
export async function getWithBearer(url, token) {
  const res = await fetchT(url, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, wwwAuthenticate: res.headers.get('www-authenticate') };
}

/**
 * A tiny loopback HTTP server standing in for the client's redirect URI.
 * It records every callback's query and answers with a small page.
 */
export async function startCallbackServer() {
  const hits = [];
  const waiters = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname === '/callback') {
      const query = Object.fromEntries(url.searchParams);
      hits.push(query);
      for (const w of waiters.splice(0)) w(query);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>callback</title><p id="done">callback received</p>');
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    redirectUri: `http://127.0.0.1:${port}/callback`,
    hits,
    /** The next callback (or the latest one already received since `from`). */
    next(from = 0, timeoutMs = HTTP_TIMEOUT_MS) {
      if (hits.length > from) return Promise.resolve(hits[from]);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no callback within timeout')), timeoutMs);
        waiters.push((q) => {
          clearTimeout(timer);
          resolve(q);
        });
      });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
