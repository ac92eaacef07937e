// Persistence across a workerd restart, in two halves run by
// scripts/test.d/50-worker.sh around the restart (same KV persist directory,
// same port, so the issuer and the resource URL stay the same):
//
//   node restart.mjs before BASE_URL STATE_FILE   # register, authorize, token, add a todo
//   node restart.mjs after  BASE_URL STATE_FILE   # the same token, client, todo and refresh token still work
//
// The Worker must run with MCP_AUTO_APPROVE=demo.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

import {
  discover,
  fetchT,
  getWithBearer,
  pkce,
  postForm,
  randomState,
  registerClient,
} from '../../../e2e/helpers.mjs';

const REDIRECT_URI = 'http://127.0.0.1:9/callback'; // never contacted: the redirect is not followed

const [phase, base, stateFile] = process.argv.slice(2);
if (!['before', 'after'].includes(phase) || !base || !stateFile) {
  console.error('usage: node restart.mjs before|after BASE_URL STATE_FILE');
  process.exit(2);
}

/** One JSON-RPC call to the MCP endpoint. */
async function mcp(token, method, params, id = 1) {
  const res = await fetchT(`${base}/mcp`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-06-18',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `${method}: ${res.status} ${text}`);
  const body = JSON.parse(text);
  assert.equal(body.error, undefined, `${method}: ${text}`);
  return body.result;
}

async function tool(token, name, args = {}) {
  const result = await mcp(token, 'tools/call', { name, arguments: args });
  assert.notEqual(result.isError, true, `${name}: ${JSON.stringify(result)}`);
  return result.structuredContent;
}

if (phase === 'before') {
  const meta = await discover(base);
  const client = await registerClient(meta.as, { redirectUri: REDIRECT_URI, clientName: 'restart check' });
  const { verifier, challenge } = pkce();
  const state = randomState();
  const url = new URL(meta.as.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: REDIRECT_URI,
    scope: 'todo:read todo:write',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    resource: meta.prm.resource,
  }).toString();
  const res = await fetchT(url, { redirect: 'manual' });
  await res.text();
  assert.equal(res.status, 302, 'the auto-approving /authorize redirects');
  const location = new URL(res.headers.get('location'));
  assert.equal(location.searchParams.get('state'), state);
  const code = location.searchParams.get('code');
  assert.match(code ?? '', /^mcp_ac_/);
  const token = await postForm(meta.as.token_endpoint, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT_URI,
    client_id: client.client_id,
    code_verifier: verifier,
  });
  assert.equal(token.status, 200, token.text);
  const text = `survives restarts ${randomBytes(6).toString('hex')}`;
  const { todo } = await tool(token.json.access_token, 'add_todo', { text });
  writeFileSync(
    stateFile,
    JSON.stringify({
      client_id: client.client_id,
      access_token: token.json.access_token,
      refresh_token: token.json.refresh_token,
      todo,
    }),
  );
  console.log(`before restart: client ${client.client_id}, token issued, todo ${todo.id} added`);
} else {
  const saved = JSON.parse(readFileSync(stateFile, 'utf8'));
  const meta = await discover(base);
  // The access token issued before the restart.
  const echo = await getWithBearer(`${base}/mcp/echo`, saved.access_token);
  assert.equal(echo.status, 200, `the access token survives the restart: ${echo.text}`);
  assert.equal(echo.json.user_id, 'demo');
  assert.equal(echo.json.client_id, saved.client_id);
  // The application's data, through MCP with the same token.
  const { todos } = await tool(saved.access_token, 'list_todos');
  assert.ok(
    todos.some((t) => t.id === saved.todo.id && t.text === saved.todo.text),
    `the todo survives the restart: ${JSON.stringify(todos)}`,
  );
  // The refresh token (and so the grant and the client registration).
  const refreshed = await postForm(meta.as.token_endpoint, {
    grant_type: 'refresh_token',
    refresh_token: saved.refresh_token,
    client_id: saved.client_id,
  });
  assert.equal(refreshed.status, 200, `the refresh token survives the restart: ${refreshed.text}`);
  const again = await getWithBearer(`${base}/mcp/echo`, refreshed.json.access_token);
  assert.equal(again.status, 200, again.text);
  console.log('after restart: access token, todo, client and refresh token all still valid');
}
