//! RFC 8414 authorization-server metadata, RFC 9728 protected-resource
//! metadata, and how the provider routes, answers methods and applies CORS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, Request, Response, StatusCode};
use oauth_core::{Outcome, ProtectedResource, ProviderBuilder};
use serde_json::{Value, json};

const AS_METADATA: &str = "/.well-known/oauth-authorization-server";
const OIDC_METADATA: &str = "/.well-known/openid-configuration";
const PRM: &str = "/.well-known/oauth-protected-resource";

fn request(h: &mut Harness, method: Method, url: &str, headers: &[(&str, &str)]) -> Outcome {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    h.send(b.body(Bytes::new()).unwrap())
}

fn respond(h: &mut Harness, method: Method, path: &str, headers: &[(&str, &str)]) -> Response<Bytes> {
    match request(h, method, &format!("{ISSUER}{path}"), headers) {
        Outcome::Response(r) => r,
        other => panic!("expected a response for {path}, got {other:?}"),
    }
}

fn get_json(h: &mut Harness, path: &str) -> Value {
    let resp = respond(h, Method::GET, path, &[]);
    assert_eq!(resp.status(), StatusCode::OK, "{path}: {}", String::from_utf8_lossy(resp.body()));
    assert_eq!(header(&resp, "content-type"), "application/json", "{path}");
    json(&resp)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array().unwrap_or_else(|| panic!("{v} is not an array")).iter().map(|s| s.as_str().unwrap()).collect()
}

#[test]
fn authorization_server_metadata_has_the_rfc8414_fields() {
    let mut h = Harness::default();
    let doc = get_json(&mut h, AS_METADATA);
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["authorization_endpoint"], "https://as.example.com/authorize");
    assert_eq!(doc["token_endpoint"], "https://as.example.com/token");
    assert_eq!(doc["registration_endpoint"], "https://as.example.com/register");
    assert_eq!(doc["revocation_endpoint"], "https://as.example.com/revoke");
    assert_eq!(strings(&doc["response_types_supported"]), ["code"]);
    assert_eq!(strings(&doc["response_modes_supported"]), ["query"]);
    assert_eq!(strings(&doc["code_challenge_methods_supported"]), ["S256"]);
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(strings(&doc["grant_types_supported"]), ["authorization_code", "refresh_token"]);
    let mut methods = strings(&doc["token_endpoint_auth_methods_supported"]);
    methods.sort_unstable();
    assert_eq!(methods, ["client_secret_basic", "client_secret_post", "none"]);
    let mut methods = strings(&doc["revocation_endpoint_auth_methods_supported"]);
    methods.sort_unstable();
    assert_eq!(methods, ["client_secret_basic", "client_secret_post", "none"]);
    // The AS catalogue may list offline_access (it is an AS-level scope).
    assert_eq!(strings(&doc["scopes_supported"]), ["todo:read", "todo:write", "offline_access"]);
    // Never advertise what is not implemented.
    for absent in ["jwks_uri", "userinfo_endpoint", "introspection_endpoint", "device_authorization_endpoint"] {
        assert!(doc.get(absent).is_none(), "{absent} advertised");
    }
    assert!(!strings(&doc["grant_types_supported"]).contains(&"implicit"));
    assert!(!strings(&doc["grant_types_supported"]).contains(&"password"));
}

#[test]
fn metadata_is_cacheable_json() {
    let mut h = Harness::default();
    for path in [AS_METADATA, OIDC_METADATA, PRM, "/.well-known/oauth-protected-resource/mcp"] {
        let resp = respond(&mut h, Method::GET, path, &[]);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "cache-control"), "public, max-age=3600", "{path}");
    }
}

#[test]
fn the_same_document_is_served_at_both_well_known_names() {
    let mut h = Harness::new(builder().token_exchange(true));
    let a = respond(&mut h, Method::GET, AS_METADATA, &[]);
    let b = respond(&mut h, Method::GET, OIDC_METADATA, &[]);
    assert_eq!(b.status(), StatusCode::OK);
    assert_eq!(a.body(), b.body());
    assert_eq!(json(&a)["issuer"], ISSUER);
}

#[test]
fn registration_endpoint_is_absent_when_registration_is_off() {
    let mut h = Harness::new(builder().registration_path(None));
    let doc = get_json(&mut h, AS_METADATA);
    assert!(doc.get("registration_endpoint").is_none());
    // And the path is no longer the provider's.
    let post = Request::post(format!("{ISSUER}/register")).body(Bytes::from_static(b"{}")).unwrap();
    assert!(matches!(h.send(post), Outcome::NotHandled(_)));
}

#[test]
fn custom_endpoint_paths_are_advertised_and_routed() {
    let mut h = Harness::new(
        builder()
            .token_path("/oauth/token")
            .revocation_path("/oauth/revoke")
            .registration_path(Some("/oauth/register".into()))
            .authorization_endpoint("/login/authorize"),
    );
    let doc = get_json(&mut h, AS_METADATA);
    assert_eq!(doc["token_endpoint"], "https://as.example.com/oauth/token");
    assert_eq!(doc["revocation_endpoint"], "https://as.example.com/oauth/revoke");
    assert_eq!(doc["registration_endpoint"], "https://as.example.com/oauth/register");
    assert_eq!(doc["authorization_endpoint"], "https://as.example.com/login/authorize");
    // The advertised token endpoint is the routed one; the default is not.
    let resp = h.post_form("/oauth/token", "grant_type=nope&client_id=x", &[]);
    assert_eq!(error_code(&resp), "unsupported_grant_type");
    let post = Request::post(format!("{ISSUER}/token")).body(Bytes::new()).unwrap();
    assert!(matches!(h.send(post), Outcome::NotHandled(_)));
}

#[test]
fn grant_types_follow_the_configuration() {
    let mut h = Harness::new(builder().refresh_token_ttl(None));
    let doc = get_json(&mut h, AS_METADATA);
    assert_eq!(strings(&doc["grant_types_supported"]), ["authorization_code"]);

    let mut h = Harness::new(builder().token_exchange(true));
    let doc = get_json(&mut h, AS_METADATA);
    assert_eq!(
        strings(&doc["grant_types_supported"]),
        ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"]
    );

    let mut h = Harness::new(builder().refresh_token_ttl(None).token_exchange(true));
    let doc = get_json(&mut h, AS_METADATA);
    assert_eq!(
        strings(&doc["grant_types_supported"]),
        ["authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"]
    );
}

#[test]
fn an_issuer_with_a_trailing_slash_is_advertised_without_it() {
    let mut h = Harness::new(
        ProviderBuilder::new("https://as.example.com/").resource(ProtectedResource::new(RESOURCE).unwrap()),
    );
    let doc = get_json(&mut h, AS_METADATA);
    assert_eq!(doc["issuer"], ISSUER);
    assert_eq!(doc["token_endpoint"], "https://as.example.com/token");
    assert!(doc.get("scopes_supported").is_none(), "an empty catalogue is not advertised");
}

#[test]
fn an_issuer_with_a_path_uses_path_inserted_well_known_urls() {
    let issuer = "https://as.example.com/tenant1";
    let mut h = Harness::new(
        ProviderBuilder::new(issuer).resource(ProtectedResource::new("https://as.example.com/tenant1/mcp").unwrap()),
    );
    // RFC 8414 §3.1: the well-known segment goes between host and path.
    let doc = get_json(&mut h, "/.well-known/oauth-authorization-server/tenant1");
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["authorization_endpoint"], "https://as.example.com/tenant1/authorize");
    assert_eq!(doc["token_endpoint"], "https://as.example.com/tenant1/token");
    assert_eq!(doc["registration_endpoint"], "https://as.example.com/tenant1/register");
    assert_eq!(doc["revocation_endpoint"], "https://as.example.com/tenant1/revoke");
    // OIDC discovery appends the well-known segment to the issuer instead.
    assert_eq!(get_json(&mut h, "/tenant1/.well-known/openid-configuration"), doc);
    assert_eq!(get_json(&mut h, "/.well-known/openid-configuration/tenant1"), doc);

    // The root forms name another issuer: 404, not this document.
    for wrong in [AS_METADATA, OIDC_METADATA, "/.well-known/oauth-authorization-server/tenant2"] {
        let resp = respond(&mut h, Method::GET, wrong, &[]);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{wrong}");
    }

    // The advertised endpoints are routed.
    let resp = h.post_form("/tenant1/token", "grant_type=nope&client_id=x", &[]);
    assert_eq!(error_code(&resp), "unsupported_grant_type");
    let post = Request::post(format!("{ISSUER}/token")).body(Bytes::new()).unwrap();
    assert!(matches!(h.send(post), Outcome::NotHandled(_)));
    let resp = h.post_json(
        "/tenant1/register",
        &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"}),
        &[],
    );
    assert_eq!(resp.status(), StatusCode::CREATED);

    // The resource's metadata is path-suffixed and names the issuer.
    let prm = get_json(&mut h, "/.well-known/oauth-protected-resource/tenant1/mcp");
    assert_eq!(prm["resource"], "https://as.example.com/tenant1/mcp");
    assert_eq!(strings(&prm["authorization_servers"]), [issuer]);
}

#[test]
fn protected_resource_metadata_per_resource() {
    let mut h = Harness::new(
        builder()
            .resource(
                ProtectedResource::new("https://as.example.com/files/mcp")
                    .unwrap()
                    .scopes_supported(["files:read", "offline_access"])
                    .documentation("https://docs.example.com/files"),
            )
            .resource(
                ProtectedResource::new("https://as.example.com/ext")
                    .unwrap()
                    .authorization_servers(["https://idp.example.com", "https://as.example.com"]),
            )
            .scopes_supported(["todo:read", "todo:write", "files:read", "offline_access"]),
    );
    let mcp = get_json(&mut h, "/.well-known/oauth-protected-resource/mcp");
    assert_eq!(mcp["resource"], RESOURCE);
    assert_eq!(strings(&mcp["authorization_servers"]), [ISSUER]);
    assert_eq!(strings(&mcp["scopes_supported"]), ["todo:read", "todo:write"]);
    assert_eq!(strings(&mcp["bearer_methods_supported"]), ["header"]);
    assert_eq!(mcp["resource_name"], "Todo MCP");

    let files = get_json(&mut h, "/.well-known/oauth-protected-resource/files/mcp");
    assert_eq!(files["resource"], "https://as.example.com/files/mcp");
    // offline_access is not a permission on a resource (MCP SEP-2207).
    assert_eq!(strings(&files["scopes_supported"]), ["files:read"]);
    assert_eq!(files["resource_documentation"], "https://docs.example.com/files");
    assert!(files.get("resource_name").is_none());

    let ext = get_json(&mut h, "/.well-known/oauth-protected-resource/ext");
    assert_eq!(ext["resource"], "https://as.example.com/ext");
    assert_eq!(strings(&ext["authorization_servers"]), ["https://idp.example.com", "https://as.example.com"]);
    assert!(ext.get("scopes_supported").is_none());

    // The root form answers for the default resource.
    assert_eq!(get_json(&mut h, PRM), mcp);

    // The URLs the provider hands out are the ones it serves.
    assert_eq!(
        h.provider.resource_metadata_url(1).as_deref(),
        Some("https://as.example.com/.well-known/oauth-protected-resource/files/mcp")
    );
    assert_eq!(h.provider.resource_metadata_url(3), None);
}

#[test]
fn the_root_form_follows_the_configured_default_resource() {
    let mut h = Harness::new(
        builder().resource(ProtectedResource::new("https://as.example.com/second").unwrap()).default_resource(1),
    );
    assert_eq!(get_json(&mut h, PRM)["resource"], "https://as.example.com/second");
}

#[test]
fn offline_access_is_never_advertised_by_a_resource_even_if_it_is_the_only_scope() {
    let mut h = Harness::new(
        ProviderBuilder::new(ISSUER)
            .resource(ProtectedResource::new(RESOURCE).unwrap().scopes_supported(["offline_access"])),
    );
    let doc = get_json(&mut h, "/.well-known/oauth-protected-resource/mcp");
    let listed = doc.get("scopes_supported").map(strings).unwrap_or_default();
    assert!(!listed.contains(&"offline_access"), "{doc}");
}

#[test]
fn unknown_well_known_paths_are_404() {
    let mut h = Harness::default();
    for path in [
        "/.well-known/oauth-protected-resource/nope",
        "/.well-known/oauth-protected-resource/mcp/",
        "/.well-known/oauth-protected-resource/mcpx",
        "/.well-known/oauth-authorization-server/extra",
        "/.well-known/openid-configuration/x",
    ] {
        let resp = respond(&mut h, Method::GET, path, &[]);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

#[test]
fn metadata_answers_get_and_head_only() {
    let mut h = Harness::default();
    for path in [AS_METADATA, OIDC_METADATA, "/.well-known/oauth-protected-resource/mcp"] {
        let get = respond(&mut h, Method::GET, path, &[]);
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let resp = respond(&mut h, method.clone(), path, &[]);
            assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            let allow = header(&resp, "allow");
            let allowed: Vec<&str> = allow.split(',').map(str::trim).collect();
            assert!(allowed.contains(&"GET") && allowed.contains(&"HEAD"), "{allow}");
            assert!(!allowed.contains(&method.as_str()), "{allow}");
        }
        let head = respond(&mut h, Method::HEAD, path, &[]);
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.body().is_empty(), "HEAD has no body");
        assert!(!get.body().is_empty());
        assert_eq!(header(&head, "content-type"), header(&get, "content-type"));
    }
}

#[test]
fn preflight_is_answered_with_cors_headers() {
    let mut h = Harness::default();
    let origin = "https://inspector.example";
    for (path, method) in [(AS_METADATA, "GET"), ("/token", "POST"), ("/register", "POST"), ("/mcp", "POST")] {
        let resp = respond(
            &mut h,
            Method::OPTIONS,
            path,
            &[
                ("origin", origin),
                ("access-control-request-method", method),
                ("access-control-request-headers", "authorization, content-type"),
            ],
        );
        assert_eq!(resp.status(), StatusCode::NO_CONTENT, "{path}");
        assert!(resp.body().is_empty());
        assert_eq!(header(&resp, "access-control-allow-origin"), origin);
        let methods = header(&resp, "access-control-allow-methods");
        assert!(methods.split(',').map(str::trim).any(|m| m == method), "{path}: {methods}");
        let allow_headers = header(&resp, "access-control-allow-headers").to_ascii_lowercase();
        assert!(allow_headers.contains("authorization") && allow_headers.contains("content-type"));
        assert!(header(&resp, "vary").contains("Origin"));
    }
    // Preflight for a token endpoint never lists GET.
    let resp = respond(&mut h, Method::OPTIONS, "/token", &[("origin", origin)]);
    assert!(!header(&resp, "access-control-allow-methods").contains("GET"));
    // The application's own paths are not the provider's to answer.
    let out = request(&mut h, Method::OPTIONS, &format!("{ISSUER}/authorize"), &[("origin", origin)]);
    assert!(matches!(out, Outcome::NotHandled(_)));
}

#[test]
fn cors_on_a_401_from_the_resource_exposes_www_authenticate() {
    let mut h = Harness::default();
    let origin = "https://inspector.example";
    let resp = respond(&mut h, Method::GET, "/mcp", &[("origin", origin)]);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&resp, "access-control-allow-origin"), origin);
    assert!(header(&resp, "vary").split(',').map(str::trim).any(|v| v.eq_ignore_ascii_case("origin")));
    let exposed = header(&resp, "access-control-expose-headers");
    assert!(exposed.split(',').map(str::trim).any(|v| v.eq_ignore_ascii_case("www-authenticate")), "{exposed}");
    assert!(resp.headers().get("access-control-allow-credentials").is_none());
    assert!(header(&resp, "www-authenticate").starts_with("Bearer "));

    // Metadata and token errors carry it too.
    let md = respond(&mut h, Method::GET, AS_METADATA, &[("origin", origin)]);
    assert_eq!(header(&md, "access-control-allow-origin"), origin);
    let mut b = Request::post(format!("{ISSUER}/token")).header("origin", origin);
    b = b.header("content-type", "application/x-www-form-urlencoded");
    let Outcome::Response(tok) = h.send(b.body(Bytes::from_static(b"grant_type=x")).unwrap()) else { panic!() };
    assert_eq!(header(&tok, "access-control-allow-origin"), origin);

    // Without Origin, no CORS headers.
    let plain = respond(&mut h, Method::GET, "/mcp", &[]);
    assert!(plain.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn cors_can_be_turned_off() {
    let mut h = Harness::new(builder().cors(false));
    let origin = "https://inspector.example";
    let resp = respond(&mut h, Method::GET, "/mcp", &[("origin", origin)]);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let pre = respond(&mut h, Method::OPTIONS, AS_METADATA, &[("origin", origin)]);
    // OPTIONS is still answered (RFC 9110), but grants no cross-origin access.
    assert!(pre.headers().get("access-control-allow-origin").is_none());
    assert!(header(&pre, "allow").contains("GET"));
}

/// RFC 9110 §15.5.6: a 405 lists the methods the resource supports, so it
/// can never list the method it just refused.
#[test]
fn a_405_never_lists_the_method_it_refused() {
    for cors in [true, false] {
        let mut h = Harness::new(builder().cors(cors));
        for path in [AS_METADATA, "/.well-known/oauth-protected-resource/mcp", "/token", "/register", "/revoke"] {
            for method in [Method::OPTIONS, Method::GET, Method::PUT, Method::DELETE] {
                let resp = respond(&mut h, method.clone(), path, &[]);
                if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
                    let allow = header(&resp, "allow");
                    let listed: Vec<&str> = allow.split(',').map(str::trim).collect();
                    assert!(!listed.is_empty() && !listed.contains(&""), "cors={cors} {method} {path}: {allow:?}");
                    assert!(!listed.contains(&method.as_str()), "cors={cors} {method} {path}: 405 with Allow: {allow}");
                }
            }
        }
    }
}

#[test]
fn the_application_response_is_decorated_for_cors() {
    let h = Harness::default();
    let origin = http::HeaderValue::from_static("https://inspector.example");
    let mut resp = Response::new(Bytes::from_static(b"ok"));
    h.provider.finish_api_response(Some(&origin), &mut resp);
    assert_eq!(resp.headers()["access-control-allow-origin"], origin);
    let mut resp = Response::new(Bytes::from_static(b"ok"));
    h.provider.finish_api_response(None, &mut resp);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[test]
fn paths_that_are_not_the_providers_are_returned_intact() {
    let mut h = Harness::default();
    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/authorize?response_type=code&client_id=x"),
        (Method::POST, "/authorize"),
        (Method::GET, "/mcpx"),
        (Method::GET, "/mc"),
        (Method::GET, "/tokens"),
        (Method::POST, "/token/x"),
        (Method::GET, "/.well-known/change-password"),
        (Method::GET, "/static/app.js"),
    ] {
        let url = format!("{ISSUER}{path}");
        let req = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header("x-custom", "kept")
            .header("authorization", "Bearer something")
            .body(Bytes::from_static(b"payload"))
            .unwrap();
        match h.send(req) {
            Outcome::NotHandled(back) => {
                assert_eq!(back.method(), method);
                assert_eq!(back.uri().to_string(), url);
                assert_eq!(back.headers()["x-custom"], "kept");
                assert_eq!(back.headers()["authorization"], "Bearer something");
                assert_eq!(back.body().as_ref(), b"payload");
            }
            other => panic!("{method} {path}: expected NotHandled, got {other:?}"),
        }
        assert_eq!(h.last_stats.round_trips, 0, "{path}");
    }
}
