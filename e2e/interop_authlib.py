#!/usr/bin/env python3
"""Real-client interop: Authlib's OAuth2Session against an example server.

    python e2e/interop_authlib.py --base-url http://127.0.0.1:PORT
    INTEROP_BASE_URL=http://127.0.0.1:PORT python e2e/interop_authlib.py

The server must run with the development auto-approve switch for user
`demo`, serve the MCP resource at {base}/mcp (scopes todo:read, todo:write),
dynamic registration, and the echo route {base}/mcp/echo. Dependencies are
pinned in e2e/requirements.txt; scripts/test.d/35-interop-axum.sh installs
them into the venv at ~/.cache/mcp-oauth/venv and runs this file.

Two clients run the whole flow, each registered by plain RFC 7591 requests:
a public client (token_endpoint_auth_method none) and a confidential client
authenticating with client_secret_post. Authlib builds the authorization URL
(PKCE S256 through its code_challenge support, state, RFC 8707 resource),
exchanges the code, calls the echo route with its token, refreshes, and
revokes (RFC 7009). The user agent is a plain GET that reads the redirect
(the server approves at once). Authlib does not check the RFC 9207 `iss`
parameter itself, so this script does, as an application must.

Prints one line per check and closes with "N passed, M failed"; exits
non-zero when anything failed.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import traceback
from urllib.parse import parse_qs, urlparse

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

TIMEOUT = 10
SCOPE = "todo:read todo:write"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the redirect is read, not followed
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class CheckFailed(Exception):
    """A failed expectation, with the reason."""


def ensure(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def describe(resp: requests.Response) -> str:
    return f"HTTP {resp.status_code} {resp.text[:300]}"


def get_json(url: str) -> dict:
    resp = requests.get(url, timeout=TIMEOUT)
    ensure(resp.status_code == 200, f"GET {url}: {describe(resp)}")
    return resp.json()


def well_known(issuer: str, name: str) -> str:
    """RFC 8414 §3.1: the well-known segment goes between host and path."""
    u = urlparse(issuer)
    return f"{u.scheme}://{u.netloc}/.well-known/{name}{u.path.rstrip('/')}"


class Suite:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.passed = 0
        self.failed = 0
        self.meta: dict = {}
        self.resource = ""
        self.issuer = ""

    def run(self, name: str, fn) -> None:
        try:
            fn()
        except CheckFailed as e:
            self.failed += 1
            print(f"FAIL {name}: {e}", flush=True)
        except Exception as e:  # an exception from Authlib or requests is a failure too
            self.failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=4)
        else:
            self.passed += 1
            print(f"ok   {name}", flush=True)

    # ------------------------------------------------------------- discovery

    def discover(self) -> None:
        prm = get_json(well_known(self.base + "/mcp", "oauth-protected-resource"))
        ensure(prm.get("resource") == self.base + "/mcp", f"PRM resource {prm.get('resource')!r}")
        servers = prm.get("authorization_servers") or []
        ensure(servers, "PRM names no authorization server")
        self.issuer = servers[0]
        self.resource = prm["resource"]
        meta = get_json(well_known(self.issuer, "oauth-authorization-server"))
        ensure(meta.get("issuer") == self.issuer, f"RFC 8414 §3.3: issuer {meta.get('issuer')!r} != {self.issuer!r}")
        ensure(meta.get("authorization_response_iss_parameter_supported") is True, "RFC 9207 iss not advertised")
        ensure("S256" in meta.get("code_challenge_methods_supported", []), "S256 not advertised")
        for method in ("none", "client_secret_post"):
            ensure(
                method in meta.get("token_endpoint_auth_methods_supported", []),
                f"token endpoint auth method {method} not advertised",
            )
        for ep in ("authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint"):
            ensure(meta.get(ep), f"{ep} not advertised")
        self.meta = meta

    # ------------------------------------------------------------------ flow

    def register(self, method: str) -> dict:
        resp = requests.post(
            self.meta["registration_endpoint"],
            json={
                "client_name": f"Authlib interop ({method})",
                "redirect_uris": [REDIRECT_URI],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": method,
            },
            timeout=TIMEOUT,
        )
        ensure(resp.status_code == 201, f"registration: {describe(resp)}")
        body = resp.json()
        ensure(body.get("token_endpoint_auth_method") == method, f"registered method {body.get('token_endpoint_auth_method')}")
        if method == "none":
            ensure("client_secret" not in body, "a public client got a secret")
        else:
            ensure(body.get("client_secret"), "a confidential client got no secret")
        return body

    def authorize(self, session: OAuth2Session) -> tuple[str, str, str]:
        """Authlib builds the URL; a plain GET plays the user agent. Returns (callback, state, verifier)."""
        verifier = secrets.token_urlsafe(48)
        url, state = session.create_authorization_url(
            self.meta["authorization_endpoint"], code_verifier=verifier, resource=self.resource
        )
        query = parse_qs(urlparse(url).query)
        ensure(query.get("code_challenge_method") == ["S256"], f"Authlib sent no S256 challenge: {url}")
        ensure(query.get("code_challenge"), "no code_challenge")
        resp = requests.get(url, allow_redirects=False, timeout=TIMEOUT)
        ensure(resp.status_code in (302, 303), f"authorize: {describe(resp)}")
        location = resp.headers.get("location", "")
        ensure(location.startswith(REDIRECT_URI + "?"), f"redirected elsewhere: {location}")
        params = parse_qs(urlparse(location).query)
        ensure("error" not in params, f"authorization error: {location}")
        # RFC 9207 §2.4: the client compares iss with the issuer it talked to.
        ensure(params.get("iss") == [self.issuer], f"iss {params.get('iss')} is not {self.issuer}")
        ensure(params.get("state") == [state], "state did not round-trip")
        return location, state, verifier

    def echo(self, session: OAuth2Session) -> requests.Response:
        return session.get(self.base + "/mcp/echo", timeout=TIMEOUT)

    def assert_refused(self, session: OAuth2Session, why: str) -> None:
        resp = self.echo(session)
        ensure(resp.status_code == 401, f"{why}: expected 401, got {describe(resp)}")
        challenge = resp.headers.get("www-authenticate", "")
        ensure(challenge.lower().startswith("bearer ") and 'error="invalid_token"' in challenge, f"{why}: challenge {challenge!r}")

    def revoke(self, session: OAuth2Session, token: str, hint: str) -> None:
        resp = session.revoke_token(self.meta["revocation_endpoint"], token=token, token_type_hint=hint, timeout=TIMEOUT)
        ensure(resp.status_code == 200, f"revoke {hint}: {describe(resp)}")

    def flow(self, method: str) -> None:
        reg = self.register(method)
        session = OAuth2Session(
            client_id=reg["client_id"],
            client_secret=reg.get("client_secret"),
            token_endpoint_auth_method=method,
            revocation_endpoint_auth_method=method,
            scope=SCOPE,
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
        )
        with session:
            callback, state, verifier = self.authorize(session)
            token = session.fetch_token(
                self.meta["token_endpoint"],
                authorization_response=callback,
                state=state,
                code_verifier=verifier,
                resource=self.resource,
                timeout=TIMEOUT,
            )
            ensure(str(token.get("token_type", "")).lower() == "bearer", f"token_type {token.get('token_type')}")
            ensure(token.get("access_token") and token.get("refresh_token"), f"tokens missing: {sorted(token)}")
            ensure(sorted(str(token.get("scope", "")).split()) == ["todo:read", "todo:write"], f"scope {token.get('scope')!r}")

            resp = self.echo(session)
            ensure(resp.status_code == 200, f"echo: {describe(resp)}")
            who = resp.json()
            ensure(who.get("user_id") == "demo", f"user {who.get('user_id')}")
            ensure(who.get("client_id") == reg["client_id"], f"client {who.get('client_id')}")
            ensure(who.get("audience") == self.resource, f"audience {who.get('audience')}")

            first = dict(token)
            refreshed = session.refresh_token(self.meta["token_endpoint"], resource=self.resource, timeout=TIMEOUT)
            ensure(refreshed["access_token"] != first["access_token"], "refresh returned the same access token")
            ensure(refreshed.get("refresh_token") and refreshed["refresh_token"] != first["refresh_token"], "no rotation")
            ensure(session.token["access_token"] == refreshed["access_token"], "Authlib did not keep the new token")
            resp = self.echo(session)
            ensure(resp.status_code == 200, f"echo after refresh: {describe(resp)}")

            # RFC 7009: the access token alone; the grant survives.
            self.revoke(session, refreshed["access_token"], "access_token")
            self.assert_refused(session, "revoked access token")
            again = session.refresh_token(self.meta["token_endpoint"], resource=self.resource, timeout=TIMEOUT)
            resp = self.echo(session)
            ensure(resp.status_code == 200, f"echo after refreshing past a revoked access token: {describe(resp)}")

            # RFC 7009: the refresh token revokes the grant.
            self.revoke(session, again["refresh_token"], "refresh_token")
            self.assert_refused(session, "access token of a revoked grant")
            try:
                session.refresh_token(self.meta["token_endpoint"], resource=self.resource, timeout=TIMEOUT)
            except OAuthError as e:
                ensure(e.error == "invalid_grant", f"refresh after revocation: {e.error} {e.description}")
            else:
                raise CheckFailed("a revoked refresh token still refreshed")

    def wrong_secret(self) -> None:
        reg = self.register("client_secret_post")
        session = OAuth2Session(
            client_id=reg["client_id"],
            client_secret="not-the-secret",
            token_endpoint_auth_method="client_secret_post",
            scope=SCOPE,
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
        )
        with session:
            callback, state, verifier = self.authorize(session)
            try:
                session.fetch_token(
                    self.meta["token_endpoint"],
                    authorization_response=callback,
                    state=state,
                    code_verifier=verifier,
                    resource=self.resource,
                    timeout=TIMEOUT,
                )
            except OAuthError as e:
                ensure(e.error == "invalid_client", f"wrong secret: {e.error} {e.description}")
            else:
                raise CheckFailed("a wrong client secret was accepted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.environ.get("INTEROP_BASE_URL"))
    args = parser.parse_args()
    if not args.base_url:
        print("error: pass --base-url or set INTEROP_BASE_URL", file=sys.stderr)
        return 2
    host = urlparse(args.base_url).hostname or ""
    if urlparse(args.base_url).scheme == "http":
        if host not in LOOPBACK and not host.startswith("127."):
            print(f"error: {args.base_url} is plain http and not loopback", file=sys.stderr)
            return 2
        # Authlib refuses http endpoints unless told; loopback test servers are http.
        os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

    suite = Suite(args.base_url)
    suite.run("discovery (RFC 9728, RFC 8414, RFC 9207 advertised)", suite.discover)
    if suite.failed:
        print(f"{suite.passed} passed, {suite.failed} failed")
        return 1
    suite.run("public client (none): code + PKCE, echo, refresh, revoke", lambda: suite.flow("none"))
    suite.run(
        "confidential client (client_secret_post): code + PKCE, echo, refresh, revoke",
        lambda: suite.flow("client_secret_post"),
    )
    suite.run("confidential client with a wrong secret is refused (invalid_client)", suite.wrong_secret)
    print(f"{suite.passed} passed, {suite.failed} failed")
    return 0 if suite.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
