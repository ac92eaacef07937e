// adapter-worker's WorkerFetcher inside workerd, through the example's
// development-only route POST /__dev/fetch (src/dev.rs), against the local
// HTTPS test server (adapter-axum/examples/cimd_test_server.rs). These are
// the fetcher's own guarantees, below the core's URL checks, which
// e2e/cimd.test.mjs exercises through the whole flow.
//
// Run by scripts/test.d/55-worker-cimd.sh. Environment:
//
//   WORKER_DEV_URL        a Worker built with dev-routes, MCP_DEV_TEST_ROUTES=1,
//                         whose workerd trusts the test CA
//   WORKER_UNTRUSTED_URL  the same Worker in a workerd that does not
//   CIMD_SERVER_INFO      the test server's info file

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through scripts/test.d/55-worker-cimd.sh`);
  return value.replace(/\/+$/, '');
}

const devUrl = required('WORKER_DEV_URL');
const untrustedUrl = required('WORKER_UNTRUSTED_URL');
const info = JSON.parse(readFileSync(required('CIMD_SERVER_INFO'), 'utf8'));
const docs = `https://localhost:${info.port}`;

/** The fetcher's answer for `url`, as the dev route reports it. */
async function workerFetch(url, { maxBytes = 5120, timeoutMs = 5000, base = devUrl } = {}) {
  const q = new URLSearchParams({ url, max_bytes: String(maxBytes), timeout_ms: String(timeoutMs) });
  const res = await fetch(`${base}/__dev/fetch?${q}`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  assert.equal(res.status, 200, `the dev route answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

async function stats() {
  const res = await fetch(info.stats_url, { signal: AbortSignal.timeout(10_000) });
  return res.json();
}

describe('WorkerFetcher in workerd', () => {
  test('a document is fetched over TLS', async () => {
    const r = await workerFetch(`${docs}/es.json`);
    assert.equal(r.response?.status, 200, JSON.stringify(r));
    assert.equal(r.response.content_type, 'application/json');
    assert.ok(r.response.body_bytes > 100);
  });

  test('non-https, userinfo and IP-literal URLs are refused before any connection', async () => {
    const before = (await stats()).connections;
    for (const url of [
      `http://localhost:${info.port}/es.json`,
      `https://user@localhost:${info.port}/es.json`,
      `https://127.0.0.1:${info.port}/es.json`,
      `https://[::1]:${info.port}/es.json`,
      `https://[::ffff:127.0.0.1]:${info.port}/es.json`,
      `https://2130706433:${info.port}/es.json`,
      'file:///etc/passwd',
    ]) {
      const r = await workerFetch(url);
      assert.equal(r.error, 'ForbiddenUrl', `${url}: ${JSON.stringify(r)}`);
    }
    assert.equal((await stats()).connections, before, 'nothing was connected to');
  });

  test('a redirect is answered as it is, never followed', async () => {
    const before = (await stats()).hits['/redirect-target.json'] ?? 0;
    const r = await workerFetch(`${docs}/redirect-self.json`);
    assert.equal(r.response?.status, 302, JSON.stringify(r));
    assert.equal(r.response.body_bytes, 0);
    assert.equal((await stats()).hits['/redirect-target.json'] ?? 0, before, 'the target was never asked for');
    const internal = await workerFetch(`${docs}/redirect.json`);
    assert.equal(internal.response?.status, 302, JSON.stringify(internal));
  });

  test('the body cap: declared and streamed', async () => {
    assert.equal((await workerFetch(`${docs}/big.json`)).error, 'TooLarge', 'Content-Length above the cap');
    assert.equal((await workerFetch(`${docs}/chunked.json`)).error, 'TooLarge', '8 KiB streamed, cap 5 KiB');
    // Under a larger cap the same bodies arrive whole: the cap, not a broken
    // stream, refused them.
    const chunked = await workerFetch(`${docs}/chunked.json`, { maxBytes: 16384 });
    assert.equal(chunked.response?.body_bytes, 8192, JSON.stringify(chunked));
    const big = await workerFetch(`${docs}/big.json`, { maxBytes: 16384 });
    assert.equal(big.response?.status, 200, JSON.stringify(big));
  });

  test('a slow answer times out at the budget', async () => {
    const r = await workerFetch(`${docs}/slow.json`, { timeoutMs: 1000 });
    assert.equal(r.error, 'Timeout', JSON.stringify(r));
    assert.ok(r.elapsed_ms >= 900 && r.elapsed_ms < 3000, `timed out after ${r.elapsed_ms} ms`);
  });

  test('other statuses are answered as they are', async () => {
    const r = await workerFetch(`${docs}/missing.json`);
    assert.equal(r.response?.status, 404, JSON.stringify(r));
  });

  test('connection failures are Connect', async () => {
    // Port 1 on loopback: nothing listens.
    assert.equal((await workerFetch('https://localhost:1/app.json')).error, 'Connect');
  });

  test('a certificate the runtime does not trust is refused (Connect)', async () => {
    const before = (await stats()).hits['/es.json'] ?? 0;
    const r = await workerFetch(`${docs}/es.json`, { base: untrustedUrl });
    assert.equal(r.error, 'Connect', JSON.stringify(r));
    assert.equal((await stats()).hits['/es.json'] ?? 0, before, 'no request was sent');
  });
});
