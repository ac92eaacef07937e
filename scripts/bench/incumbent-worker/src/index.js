// The incumbent (@cloudflare/workers-oauth-provider 1.2.3) in a small Worker,
// configured like our example Worker so the two can be loaded side by side
// (scripts/bench.sh):
//
//   GET  /.well-known/oauth-authorization-server   metadata
//   POST /register                                 dynamic client registration
//   GET  /authorize                                auto-approves as "demo" (no page),
//                                                  through parseAuthRequest() and
//                                                  completeAuthorization()
//   POST /token                                    code, refresh, revocation
//   GET  /mcp/echo                                 bearer check, then the caller's
//                                                  context as JSON (like ours)
//
// Tokens are issued through the library's real flow; nothing is pre-seeded.
//
// KV operation counting (for docs/benchmarks.md): a request carrying the
// header `x-bench-count-kv: 1` runs with OAUTH_KV wrapped in a counter and
// gets `x-bench-kv-ops` back: the number of get/put/delete/list calls, and
// "rounds", the number of times a KV call started while none was in flight
// (sequential round trips; calls issued together with Promise.all count
// once). Requests without the header (the load) take the unwrapped binding.
import { OAuthProvider } from "@cloudflare/workers-oauth-provider";

const SCOPES = ["todo:read", "todo:write"];

const apiHandler = {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname !== "/mcp/echo") return new Response("not found", { status: 404 });
    const a = ctx.auth;
    return new Response(
      JSON.stringify({
        user_id: a.userId,
        client_id: a.clientId,
        scope: a.scope,
        audience: a.audience,
        expires_at: a.expiresAt,
        props: ctx.props,
      }),
      { headers: { "content-type": "application/json", "cache-control": "no-store" } },
    );
  },
};

const defaultHandler = {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/authorize") {
      const authRequest = await env.OAUTH_PROVIDER.parseAuthRequest(request);
      const scope = authRequest.scope.length ? authRequest.scope : SCOPES.slice(0, 1);
      const { redirectTo } = await env.OAUTH_PROVIDER.completeAuthorization({
        request: authRequest,
        userId: "demo",
        metadata: { label: "bench" },
        scope,
        props: { username: "demo", login: "auto-approve" },
      });
      return Response.redirect(redirectTo, 302);
    }
    return new Response("not found", { status: 404 });
  },
};

// One provider per origin: the resource must be the absolute URL clients
// use, and the port is only known from the request (as our Worker derives
// its issuer from the request's origin on loopback).
const providers = new Map();
function providerFor(origin) {
  let p = providers.get(origin);
  if (!p) {
    p = new OAuthProvider({
      apiRoute: "/mcp",
      apiHandler,
      defaultHandler,
      authorizeEndpoint: "/authorize",
      tokenEndpoint: "/token",
      clientRegistrationEndpoint: "/register",
      scopesSupported: [...SCOPES, "offline_access"],
      resourceMetadata: { resource: `${origin}/mcp`, authorization_servers: [origin] },
      requiredScopes: ["todo:read"],
      accessTokenTTL: 3600,
      refreshTokenTTL: 30 * 24 * 3600,
    });
    providers.set(origin, p);
  }
  return p;
}

function countingKv(kv, counts) {
  let inFlight = 0;
  const wrap = (name) => async (...args) => {
    counts[name] += 1;
    if (inFlight === 0) counts.rounds += 1;
    inFlight += 1;
    try {
      return await kv[name](...args);
    } finally {
      inFlight -= 1;
    }
  };
  return {
    get: wrap("get"),
    put: wrap("put"),
    delete: wrap("delete"),
    list: wrap("list"),
    getWithMetadata: wrap("getWithMetadata"),
  };
}

export default {
  async fetch(request, env, ctx) {
    const provider = providerFor(new URL(request.url).origin);
    if (request.headers.get("x-bench-count-kv") !== "1") return provider.fetch(request, env, ctx);
    const counts = { get: 0, put: 0, delete: 0, list: 0, getWithMetadata: 0, rounds: 0 };
    const counted = { ...env, OAUTH_KV: countingKv(env.OAUTH_KV, counts) };
    const response = await provider.fetch(request, counted, ctx);
    const out = new Response(response.body, response);
    out.headers.set("x-bench-kv-ops", JSON.stringify(counts));
    return out;
  },
};
