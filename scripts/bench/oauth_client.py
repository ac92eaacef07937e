#!/usr/bin/env python3
"""A minimal OAuth client for the benchmarks: gets tokens from a server
through its real flow (dynamic registration, /authorize with the server's
development auto-approve switch, code exchange with PKCE S256), and, for the
incumbent Worker, counts the KV operations of each flow.

    oauth_client.py token BASE_URL            -> {"access_token": ..., "refresh_token": ..., "client_id": ...}
    oauth_client.py count-kv BASE_URL         -> one JSON object per flow (incumbent Worker only)

Standard library only; loopback only; every request times out.
"""
import base64
import hashlib
import json
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request

REDIRECT = "http://127.0.0.1:9/callback"
TIMEOUT = 30


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def call(method, url, body=None, headers=None, form=None):
    headers = dict(headers or {})
    data = None
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["content-type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        resp = OPENER.open(req, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:  # 3xx (no redirects followed) and errors
        resp = e
    raw = resp.read()
    return resp.status, resp.headers, raw


def flow(base, headers=None, record=None, client_id=None):
    """Register (unless given a client), authorize, exchange.
    `record(name, status, headers)` sees every step."""
    record = record or (lambda *a: None)
    base = base.rstrip("/")
    if client_id is None:
        client_id = register(base, headers, record)
    return authorize_and_exchange(base, client_id, headers, record)


def register(base, headers, record):
    status, h, raw = call(
        "POST",
        f"{base}/register",
        body={
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "bench",
        },
        headers=headers,
    )
    record("registration", status, h)
    if status not in (200, 201):
        sys.exit(f"registration at {base}: {status} {raw[:300]!r}")
    return json.loads(raw)["client_id"]


def authorize_and_exchange(base, client_id, headers, record):

    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "todo:read offline_access",
            "state": "bench",
            "resource": f"{base}/mcp",
        },
        quote_via=urllib.parse.quote,
    )
    status, h, raw = call("GET", f"{base}/authorize?{query}", headers=headers)
    record("authorize (auto-approve)", status, h)
    location = h.get("location") or ""
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("code", [None])[0]
    if status not in (302, 303) or not code:
        sys.exit(f"authorize at {base}: {status} {location!r} {raw[:300]!r}")

    status, h, raw = call(
        "POST",
        f"{base}/token",
        form={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "code_verifier": verifier,
            "resource": f"{base}/mcp",
        },
        headers=headers,
    )
    record("code exchange", status, h)
    if status != 200:
        sys.exit(f"token at {base}: {status} {raw[:300]!r}")
    tokens = json.loads(raw)
    tokens["client_id"] = client_id
    return tokens


def count_kv(base):
    """Every flow once against the incumbent Worker with KV counting on."""
    base = base.rstrip("/")
    hdr = {"x-bench-count-kv": "1"}
    rows = []

    def record(name, status, h):
        ops = json.loads(h.get("x-bench-kv-ops") or "null")
        rows.append({"flow": name, "status": status, "kv": ops})

    status, h, _ = call("GET", f"{base}/.well-known/oauth-authorization-server", headers=hdr)
    record("metadata (AS)", status, h)
    status, h, _ = call("GET", f"{base}/mcp/echo", headers=hdr)
    record("401 challenge (no token)", status, h)
    t = flow(base, headers=hdr, record=record)
    status, h, _ = call("GET", f"{base}/mcp/echo", headers={**hdr, "authorization": f"Bearer {t['access_token']}"})
    record("bearer check (GET /mcp/echo)", status, h)
    status, h, raw = call(
        "POST",
        f"{base}/token",
        form={"grant_type": "refresh_token", "refresh_token": t["refresh_token"], "client_id": t["client_id"]},
        headers=hdr,
    )
    record("refresh", status, h)
    t2 = json.loads(raw)
    # Revocation is served at the token endpoint (a form with `token`, no grant_type).
    status, h, _ = call(
        "POST", f"{base}/token", form={"token": t2["access_token"], "client_id": t["client_id"]}, headers=hdr
    )
    record("revocation (access token)", status, h)
    status, h, _ = call(
        "POST",
        f"{base}/token",
        form={"token": t2["refresh_token"], "token_type_hint": "refresh_token", "client_id": t["client_id"]},
        headers=hdr,
    )
    record("revocation (refresh token: grant + its tokens)", status, h)
    # A second authorization of the same user and client replaces the first grant.
    # (the first grant is gone: revoked above; this one is then replaced)
    flow(base, headers=hdr, client_id=t["client_id"])
    flow_rows = []
    flow(base, headers=hdr, client_id=t["client_id"], record=lambda *a: flow_rows.append(a))
    for name, status, h in flow_rows:
        if name.startswith("authorize"):
            record("authorize (replacing a grant)", status, h)
    for r in rows:
        print(json.dumps(r))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("token", "count-kv"):
        sys.exit(__doc__)
    if sys.argv[1] == "token":
        print(json.dumps(flow(sys.argv[2])))
    else:
        count_kv(sys.argv[2])


if __name__ == "__main__":
    main()
