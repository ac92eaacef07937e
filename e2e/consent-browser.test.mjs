// The real sign-in and consent page of an example server (started WITHOUT
// auto-approve), driven in headless Debian Chromium by playwright-core: the
// axum one (E2E_AXUM_CONSENT_URL) or any adapter's (E2E_CONSENT_URL, with
// E2E_SCREENSHOT_PREFIX naming its screenshots).
//
// The client is registered with a loopback redirect URI served by a tiny
// node http server that records each callback's query. Screenshots of the
// sign-in and consent pages go to test-artifacts/ (gitignored).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { chromium, request as pwRequest } from 'playwright-core';

import {
  discover,
  getWithBearer,
  pkce,
  postForm,
  randomState,
  registerClient,
  serverUrl,
  startCallbackServer,
} from './helpers.mjs';

const TEST_TIMEOUT_MS = 90_000;
const ACTION_TIMEOUT_MS = 10_000;
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const CHROMIUM = process.env.E2E_CHROMIUM ?? '/usr/bin/chromium';
// Flags known to work on this machine (see the project's environment notes):
// no sandbox as root, no GPU, and no background traffic to Google's hosts.
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SCOPES = ['todo:read', 'todo:write'];
const SHOT = process.env.E2E_SCREENSHOT_PREFIX ?? 'axum';

describe('consent page in headless Chromium (example server, no auto-approve)', () => {
  let base;
  let meta;
  let browser;
  let callback;

  before(async () => {
    base = serverUrl(process.env.E2E_CONSENT_URL ? 'E2E_CONSENT_URL' : 'E2E_AXUM_CONSENT_URL');
    meta = await discover(base);
    mkdirSync(ARTIFACTS, { recursive: true });
    callback = await startCallbackServer();
    // Playwright gives every launch a fresh, empty profile directory.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
  });

  after(async () => {
    await browser?.close();
    await callback?.close();
  });

  /** A fresh browser context (no cookies) with bounded waits. */
  async function newPage() {
    const context = await browser.newContext({ viewport: { width: 800, height: 900 } });
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);
    const page = await context.newPage();
    return { context, page };
  }

  /** Register a client and build its authorization URL. */
  async function prepare(clientName) {
    const client = await registerClient(meta.as, {
      redirectUri: callback.redirectUri,
      clientName,
      scope: SCOPES.join(' '),
    });
    const { verifier, challenge } = pkce();
    const state = randomState();
    const url = new URL(meta.as.authorization_endpoint);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: client.client_id,
      redirect_uri: callback.redirectUri,
      scope: SCOPES.join(' '),
      state,
      code_challenge: challenge,
      code_challenge_method: 'S256',
      resource: meta.prm.resource,
    }).toString();
    return { client, verifier, state, url: url.href };
  }

  /** Open the authorization URL and sign in as demo/demo; ends on the consent page. */
  async function signIn(page, authorizeUrl, { screenshot, clientName } = {}) {
    const res = await page.goto(authorizeUrl);
    assert.equal(res.status(), 200);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    if (clientName) {
      assert.ok((await page.locator('main').innerText()).includes(`to let ${clientName} use your todo list`));
    }
    if (screenshot) await page.screenshot({ path: `${ARTIFACTS}${screenshot}`, fullPage: true });
    await page.getByLabel('Username').fill('demo');
    await page.getByLabel('Password').fill('demo');
    await Promise.all([
      page.waitForURL((u) => u.pathname.endsWith('/authorize/consent')),
      page.getByRole('button', { name: 'Sign in' }).click(),
    ]);
    await page.getByRole('button', { name: 'Approve' }).waitFor();
  }

  test('sign in, see the consent screen, approve: code + state + iss; the token works', { timeout: TEST_TIMEOUT_MS }, async () => {
    // A name with markup in it: the page must show it as text.
    const clientName = 'E2E <b>Consent</b> & "Client"';
    const { client, verifier, state, url } = await prepare(clientName);
    const { context, page } = await newPage();
    try {
      const before = callback.hits.length;
      await signIn(page, url, { screenshot: `${SHOT}-signin.png`, clientName });

      // The consent screen names the client (escaped), the scopes and the redirect host.
      const heading = await page.getByRole('heading', { level: 1 }).innerText();
      assert.equal(heading, `Authorize ${clientName}`);
      assert.equal(await page.locator('main b', { hasText: /^Consent$/ }).count(), 0, 'client name is not rendered as HTML');
      const text = await page.locator('main').innerText();
      assert.match(text, /Signed in as demo/);
      for (const scope of SCOPES) {
        const box = page.locator(`input[type=checkbox][name=scope][value="${scope}"]`);
        assert.equal(await box.isChecked(), true, `${scope} is listed and ticked`);
        assert.ok(text.includes(scope), `${scope} is shown`);
      }
      const host = new URL(callback.redirectUri).host; // 127.0.0.1:PORT
      assert.equal(await page.locator('.host').innerText(), host);
      assert.ok(text.includes(client.client_id), 'the client id is shown');
      await page.screenshot({ path: `${ARTIFACTS}${SHOT}-consent.png`, fullPage: true });

      await Promise.all([
        page.waitForURL((u) => u.href.startsWith(callback.redirectUri)),
        page.getByRole('button', { name: 'Approve' }).click(),
      ]);
      const query = await callback.next(before);
      assert.equal(query.error, undefined, JSON.stringify(query));
      assert.match(query.code ?? '', /^mcp_ac_/);
      assert.equal(query.state, state);
      assert.equal(query.iss, meta.issuer);

      // Exchange the code (public client, PKCE) and call the echo route.
      const token = await postForm(meta.as.token_endpoint, {
        grant_type: 'authorization_code',
        code: query.code,
        redirect_uri: callback.redirectUri,
        client_id: client.client_id,
        code_verifier: verifier,
        resource: meta.prm.resource,
      });
      assert.equal(token.status, 200, token.text);
      assert.equal(token.json.token_type.toLowerCase(), 'bearer');
      assert.match(token.json.access_token, /^mcp_at_/);
      assert.deepEqual(token.json.scope.split(' ').sort(), SCOPES);

      const echo = await getWithBearer(`${base}/mcp/echo`, token.json.access_token);
      assert.equal(echo.status, 200, echo.text);
      assert.equal(echo.json.user_id, 'demo');
      assert.equal(echo.json.client_id, client.client_id);
      assert.equal(echo.json.audience, meta.prm.resource);
      assert.deepEqual([...echo.json.scope].sort(), SCOPES);
      assert.equal(echo.json.props?.username, 'demo');
    } finally {
      await context.close();
    }
  });

  test('deny: the callback gets error=access_denied with state and iss', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { url, state } = await prepare('E2E deny client');
    const { context, page } = await newPage();
    try {
      const before = callback.hits.length;
      await signIn(page, url);
      await Promise.all([
        page.waitForURL((u) => u.href.startsWith(callback.redirectUri)),
        page.getByRole('button', { name: 'Deny' }).click(),
      ]);
      const query = await callback.next(before);
      assert.equal(query.error, 'access_denied');
      assert.equal(query.code, undefined, 'no code on denial');
      assert.equal(query.state, state);
      assert.equal(query.iss, meta.issuer);
    } finally {
      await context.close();
    }
  });

  test('unticking a scope narrows the grant', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { client, verifier, state, url } = await prepare('E2E narrow client');
    const { context, page } = await newPage();
    try {
      const before = callback.hits.length;
      await signIn(page, url);
      await page.locator('input[type=checkbox][name=scope][value="todo:write"]').uncheck();
      await Promise.all([
        page.waitForURL((u) => u.href.startsWith(callback.redirectUri)),
        page.getByRole('button', { name: 'Approve' }).click(),
      ]);
      const query = await callback.next(before);
      assert.equal(query.state, state);
      const token = await postForm(meta.as.token_endpoint, {
        grant_type: 'authorization_code',
        code: query.code,
        redirect_uri: callback.redirectUri,
        client_id: client.client_id,
        code_verifier: verifier,
      });
      assert.equal(token.status, 200, token.text);
      assert.equal(token.json.scope, 'todo:read');
      const ok = await getWithBearer(`${base}/mcp/echo?require=todo:read`, token.json.access_token);
      assert.equal(ok.status, 200, ok.text);
      const denied = await getWithBearer(`${base}/mcp/echo?require=todo:write`, token.json.access_token);
      assert.equal(denied.status, 403, denied.text);
      assert.match(denied.wwwAuthenticate ?? '', /insufficient_scope/);
    } finally {
      await context.close();
    }
  });

  test('Cancel on the sign-in page: error=access_denied with state and iss', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { url, state } = await prepare('E2E cancel client');
    const { context, page } = await newPage();
    try {
      const before = callback.hits.length;
      await page.goto(url);
      await Promise.all([
        page.waitForURL((u) => u.href.startsWith(callback.redirectUri)),
        page.getByRole('button', { name: 'Cancel' }).click(),
      ]);
      const query = await callback.next(before);
      assert.equal(query.error, 'access_denied');
      assert.equal(query.state, state);
      assert.equal(query.iss, meta.issuer);
    } finally {
      await context.close();
    }
  });

  test('a tampered or missing CSRF token on the consent POST is refused, and no code is issued', { timeout: TEST_TIMEOUT_MS }, async () => {
    const { url, state } = await prepare('E2E csrf client');
    const { context, page } = await newPage();
    try {
      const before = callback.hits.length;
      await signIn(page, url);
      const consentUrl = page.url();
      const form = page.locator('form');
      const requestId = await form.locator('input[name=request]').inputValue();
      const csrf = await form.locator('input[name=csrf]').inputValue();
      const decisionUrl = new URL(await form.getAttribute('action'), page.url()).href;

      // 1. Tampered in the page itself: flip the hidden CSRF field, click Approve.
      await form.locator('input[name=csrf]').evaluate((el) => {
        el.value = el.value.replace(/^./, (c) => (c === '0' ? '1' : '0'));
      });
      const [tampered] = await Promise.all([
        page.waitForResponse((r) => r.url() === decisionUrl && r.request().method() === 'POST'),
        page.getByRole('button', { name: 'Approve' }).click(),
      ]);
      assert.equal(tampered.status(), 403);
      await page.getByRole('heading', { name: 'This form cannot be accepted' }).waitFor();

      // 2. Missing: the same browser (its cookies) posts without the field.
      const missing = await context.request.post(decisionUrl, {
        form: { request: requestId, decision: 'approve', scope: 'todo:read' },
        maxRedirects: 0,
        timeout: ACTION_TIMEOUT_MS,
      });
      assert.equal(missing.status(), 403, await missing.text());

      // 3. The right token from a different browser (no session cookie).
      const stranger = await pwRequest.newContext({ timeout: ACTION_TIMEOUT_MS });
      try {
        const foreign = await stranger.post(decisionUrl, {
          form: { request: requestId, csrf, decision: 'approve', scope: 'todo:read' },
          maxRedirects: 0,
        });
        assert.equal(foreign.status(), 403, await foreign.text());
      } finally {
        await stranger.dispose();
      }

      assert.equal(callback.hits.length, before, 'no callback: no code was issued');

      // The pending request was not consumed by the refusals: the genuine
      // form still works, which shows it was the CSRF check that refused.
      await page.goto(consentUrl);
      await Promise.all([
        page.waitForURL((u) => u.href.startsWith(callback.redirectUri)),
        page.getByRole('button', { name: 'Approve' }).click(),
      ]);
      const query = await callback.next(before);
      assert.match(query.code ?? '', /^mcp_ac_/);
      assert.equal(query.state, state);
    } finally {
      await context.close();
    }
  });

  // Regression: signing in rotates the browser id (against session
  // fixation); the other pages the browser has open must follow it, or
  // their forms are refused as forged (403).
  test('two authorization pages in one browser: both can be signed in and approved', { timeout: TEST_TIMEOUT_MS }, async () => {
    const first = await prepare('E2E tab A');
    const second = await prepare('E2E tab B');
    const { context, page } = await newPage();
    try {
      const tabB = await context.newPage();
      const before = callback.hits.length;
      await page.goto(first.url);
      await tabB.goto(second.url);
      await page.getByLabel('Username').fill('demo');
      await page.getByLabel('Password').fill('demo');
      await Promise.all([
        page.waitForURL((u) => u.pathname.endsWith('/authorize/consent')),
        page.getByRole('button', { name: 'Sign in' }).click(),
      ]);
      // Tab B still shows the sign-in form it was served before.
      await tabB.getByLabel('Username').fill('demo');
      await tabB.getByLabel('Password').fill('demo');
      const [res] = await Promise.all([
        tabB.waitForResponse((r) => r.request().method() === 'POST'),
        tabB.getByRole('button', { name: 'Sign in' }).click(),
      ]);
      assert.equal(res.status(), 303, `tab B's sign-in was answered ${res.status()}`);
      await tabB.getByRole('button', { name: 'Approve' }).waitFor();

      for (const [tab, flow] of [
        [page, first],
        [tabB, second],
      ]) {
        const seen = callback.hits.length;
        await Promise.all([
          tab.waitForURL((u) => u.href.startsWith(callback.redirectUri)),
          tab.getByRole('button', { name: 'Approve' }).click(),
        ]);
        const query = await callback.next(seen);
        assert.match(query.code ?? '', /^mcp_ac_/);
        assert.equal(query.state, flow.state);
      }
      assert.equal(callback.hits.length, before + 2);
    } finally {
      await context.close();
    }
  });
});
