//! Configuration is validated once, at `build()`: every `ConfigError` variant
//! is reachable, and good configurations build with normalised values.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{ISSUER, RESOURCE, builder};
use oauth_core::{ConfigError, Hooks, MIN_TTL_SECS, ProtectedResource, ProviderBuilder};

fn res(url: &str) -> ProtectedResource {
    ProtectedResource::new(url).unwrap()
}

/// A minimal valid builder for `issuer`.
fn minimal(issuer: &str) -> ProviderBuilder {
    ProviderBuilder::new(issuer).resource(res(RESOURCE))
}

#[track_caller]
fn err(b: ProviderBuilder) -> ConfigError {
    let e = b.build().expect_err("configuration must be refused");
    assert!(!e.to_string().is_empty());
    e
}

#[test]
fn good_configurations_build() {
    let p = builder().build().unwrap();
    let cfg = p.config();
    assert_eq!(cfg.issuer, ISSUER);
    assert_eq!(cfg.token_endpoint, "https://as.example.com/token");
    assert_eq!(cfg.revocation_endpoint, "https://as.example.com/revoke");
    assert_eq!(cfg.registration_endpoint.as_deref(), Some("https://as.example.com/register"));
    assert_eq!(cfg.authorization_endpoint, "https://as.example.com/authorize");
    assert_eq!(cfg.access_token_ttl, 3600);
    assert_eq!(cfg.code_ttl, 600);
    assert_eq!(cfg.resources.len(), 1);
    assert_eq!(cfg.resources[0].resource().as_str(), RESOURCE);

    // Loopback http issuers are fine for local development.
    for issuer in ["http://localhost:8080", "http://127.0.0.1:3000", "http://[::1]:8787"] {
        let p = ProviderBuilder::new(issuer).resource(res(&format!("{issuer}/mcp"))).build().unwrap();
        assert_eq!(p.config().issuer, issuer);
    }

    // Every bound at its edge.
    minimal(ISSUER)
        .access_token_ttl(MIN_TTL_SECS)
        .code_ttl(MIN_TTL_SECS)
        .refresh_token_ttl(Some(Some(MIN_TTL_SECS)))
        .refresh_token_idle_ttl(Some(MIN_TTL_SECS))
        .client_registration_ttl(Some(MIN_TTL_SECS))
        .build()
        .unwrap();
    minimal(ISSUER).code_ttl(600).access_token_ttl(10 * 365 * 86_400).build().unwrap();
    minimal(ISSUER)
        .refresh_token_ttl(None)
        .client_registration_ttl(None)
        .refresh_token_ttl(Some(None))
        .build()
        .unwrap();
}

#[test]
fn issuer_trailing_slash_is_normalised() {
    for (given, expected) in [
        ("https://as.example.com/", "https://as.example.com"),
        ("https://as.example.com", "https://as.example.com"),
        ("https://AS.Example.com:443/", "https://as.example.com"),
        ("https://as.example.com/tenant1/", "https://as.example.com/tenant1"),
        ("https://as.example.com/tenant1", "https://as.example.com/tenant1"),
    ] {
        let p = minimal(given).build().unwrap();
        assert_eq!(p.config().issuer, expected, "{given}");
        assert_eq!(p.config().token_endpoint, format!("{expected}/token"), "{given}");
    }
}

#[test]
fn invalid_issuers_are_refused() {
    for issuer in [
        "http://as.example.com",
        "http://10.0.0.1",
        "https://as.example.com?tenant=1",
        "https://as.example.com/?",
        "https://as.example.com#frag",
        "https://user:pw@as.example.com",
        "https://user@as.example.com",
        "as.example.com",
        "/relative",
        "",
        "ftp://as.example.com",
        "urn:example:issuer",
    ] {
        assert_eq!(err(minimal(issuer)), ConfigError::InvalidIssuer(issuer.to_owned()), "{issuer}");
    }
}

#[test]
fn invalid_resources_are_refused_when_declared() {
    for r in [
        "http://example.com/mcp",
        "https://example.com/mcp#x",
        "https://u:p@example.com/mcp",
        "/mcp",
        "mcp",
        "urn:example:mcp",
        "",
    ] {
        assert_eq!(ProtectedResource::new(r).unwrap_err(), ConfigError::InvalidResource(r.to_owned()), "{r}");
    }
    assert!(ProtectedResource::new("http://localhost:3000/mcp").is_ok());
}

#[test]
fn no_resources_is_refused() {
    assert_eq!(err(ProviderBuilder::new(ISSUER)), ConfigError::NoResources);
}

#[test]
fn duplicate_resources_are_refused_after_canonicalisation() {
    assert!(matches!(
        err(minimal(ISSUER).resource(res(RESOURCE))),
        ConfigError::DuplicateResource(r) if r == RESOURCE
    ));
    assert!(matches!(
        err(minimal(ISSUER).resource(res("HTTPS://AS.example.com:443/mcp"))),
        ConfigError::DuplicateResource(_)
    ));
    // A trailing slash is another resource (RFC 8707 compares exactly).
    minimal(ISSUER).resource(res("https://as.example.com/mcp/").routes(["/mcp2"])).build().unwrap();
}

#[test]
fn bad_default_resource_index_is_refused() {
    assert_eq!(err(minimal(ISSUER).default_resource(1)), ConfigError::InvalidDefaultResource);
    minimal(ISSUER).resource(res("https://as.example.com/b")).default_resource(1).build().unwrap();
}

#[test]
fn ttls_below_the_minimum_are_refused() {
    let cases: [(ProviderBuilder, &str, u64); 6] = [
        (minimal(ISSUER).access_token_ttl(59), "access_token_ttl", 59),
        (minimal(ISSUER).access_token_ttl(0), "access_token_ttl", 0),
        (minimal(ISSUER).code_ttl(59), "code_ttl", 59),
        (minimal(ISSUER).refresh_token_ttl(Some(Some(59))), "refresh_token_ttl", 59),
        (minimal(ISSUER).refresh_token_idle_ttl(Some(1)), "refresh_token_idle_ttl", 1),
        (minimal(ISSUER).client_registration_ttl(Some(30)), "client_registration_ttl", 30),
    ];
    for (b, setting, value) in cases {
        assert_eq!(err(b), ConfigError::TtlOutOfRange { setting, value }, "{setting}");
    }
}

#[test]
fn code_ttl_above_ten_minutes_is_refused() {
    assert_eq!(err(minimal(ISSUER).code_ttl(601)), ConfigError::TtlOutOfRange { setting: "code_ttl", value: 601 });
    assert_eq!(err(minimal(ISSUER).code_ttl(3600)), ConfigError::TtlOutOfRange { setting: "code_ttl", value: 3600 });
}

#[test]
fn absurdly_long_ttls_are_refused() {
    let ten_years = 10 * 365 * 86_400;
    assert_eq!(
        err(minimal(ISSUER).access_token_ttl(ten_years + 1)),
        ConfigError::TtlOutOfRange { setting: "access_token_ttl", value: ten_years + 1 }
    );
    assert_eq!(
        err(minimal(ISSUER).refresh_token_ttl(Some(Some(u64::MAX)))),
        ConfigError::TtlOutOfRange { setting: "refresh_token_ttl", value: u64::MAX }
    );
}

#[test]
fn invalid_scope_tokens_are_refused_wherever_they_appear() {
    for bad in ["todo read", "a\"b", "a\\b", "", "é"] {
        assert_eq!(err(minimal(ISSUER).scopes_supported([bad])), ConfigError::InvalidScope(bad.to_owned()), "{bad:?}");
        assert_eq!(
            err(ProviderBuilder::new(ISSUER).resource(res(RESOURCE).scopes_supported([bad]))),
            ConfigError::InvalidScope(bad.to_owned())
        );
        assert_eq!(
            err(ProviderBuilder::new(ISSUER).resource(res(RESOURCE).required_scopes([bad]))),
            ConfigError::InvalidScope(bad.to_owned())
        );
        assert_eq!(err(minimal(ISSUER).scope_implies("ok", [bad])), ConfigError::InvalidScope(bad.to_owned()));
        assert_eq!(err(minimal(ISSUER).scope_implies(bad, ["ok"])), ConfigError::InvalidScope(bad.to_owned()));
    }
}

#[test]
fn resource_scopes_outside_the_catalogue_are_refused() {
    let catalogue = ProviderBuilder::new(ISSUER).scopes_supported(["todo:read"]);
    assert_eq!(
        err(catalogue.clone().resource(res(RESOURCE).required_scopes(["todo:write"]))),
        ConfigError::UnknownRequiredScope("todo:write".into())
    );
    assert_eq!(
        err(catalogue.clone().resource(res(RESOURCE).scopes_supported(["todo:read", "admin"]))),
        ConfigError::UnknownRequiredScope("admin".into())
    );
    catalogue.resource(res(RESOURCE).required_scopes(["todo:read"])).build().unwrap();
    // Without a catalogue, resources may declare what they like.
    ProviderBuilder::new(ISSUER).resource(res(RESOURCE).required_scopes(["anything"])).build().unwrap();
}

#[test]
fn endpoint_paths_must_be_absolute_and_distinct() {
    let cases: [(ProviderBuilder, &str); 9] = [
        (minimal(ISSUER).revocation_path("/token"), "/token"),
        (minimal(ISSUER).registration_path(Some("/token".into())), "/token"),
        (minimal(ISSUER).registration_path(Some("/revoke".into())), "/revoke"),
        (minimal(ISSUER).token_path("token"), "token"),
        (minimal(ISSUER).token_path("/token?x=1"), "/token?x=1"),
        (minimal(ISSUER).token_path("/tok#en"), "/tok#en"),
        (minimal(ISSUER).revocation_path("/re voke"), "/re voke"),
        // A resource may not swallow an endpoint.
        (ProviderBuilder::new(ISSUER).resource(res(RESOURCE).routes(["/token"])), "/token"),
        (ProviderBuilder::new(ISSUER).resource(res(RESOURCE).routes(["mcp"])), "mcp"),
    ];
    for (b, path) in cases {
        assert_eq!(err(b), ConfigError::InvalidPath(path.to_owned()), "{path}");
    }
    // Registration off frees its path.
    minimal(ISSUER).registration_path(None).revocation_path("/register").build().unwrap();
}

#[test]
fn endpoint_collisions_are_judged_after_the_issuer_path_is_applied() {
    let issuer = "https://as.example.com/t1";
    let b = || ProviderBuilder::new(issuer).resource(res("https://as.example.com/t1/mcp"));
    let p = b().build().unwrap();
    assert_eq!(p.config().token_path, "/t1/token");
    assert_eq!(err(b().revocation_path("/token")), ConfigError::InvalidPath("/t1/token".into()));
    assert_eq!(
        err(ProviderBuilder::new(issuer).resource(res("https://as.example.com/t1/mcp").routes(["/t1/token"]))),
        ConfigError::InvalidPath("/t1/token".into())
    );
}

#[test]
fn an_initial_access_token_requirement_needs_a_checker() {
    assert_eq!(err(builder().require_initial_access_token(true)), ConfigError::InitialAccessTokenUncheckable);
    builder().require_initial_access_token(true).initial_access_token("iat-secret").build().unwrap();
    let mut hooks = Hooks::default();
    hooks.client_registration = true;
    builder().require_initial_access_token(true).hooks(hooks).build().unwrap();
    // The token-issuance hook does not check registrations.
    let mut hooks = Hooks::default();
    hooks.token_issuance = true;
    assert_eq!(
        err(builder().require_initial_access_token(true).hooks(hooks)),
        ConfigError::InitialAccessTokenUncheckable
    );
}

#[test]
fn the_authorization_endpoint_is_validated_and_resolved() {
    for bad in
        ["http://login.example.com/authorize", "https://login.example.com/a#f", "not a url", "javascript:alert(1)"]
    {
        assert_eq!(
            err(builder().authorization_endpoint(bad)),
            ConfigError::InvalidAuthorizationEndpoint(bad.to_owned()),
            "{bad}"
        );
    }
    let p = builder().authorization_endpoint("/login").build().unwrap();
    assert_eq!(p.config().authorization_endpoint, "https://as.example.com/login");
    let p = builder().authorization_endpoint("https://login.example.com/oauth/authorize?tenant=1").build().unwrap();
    assert_eq!(p.config().authorization_endpoint, "https://login.example.com/oauth/authorize?tenant=1");
    let p = ProviderBuilder::new("https://as.example.com/t1")
        .resource(res("https://as.example.com/t1/mcp"))
        .build()
        .unwrap();
    assert_eq!(p.config().authorization_endpoint, "https://as.example.com/t1/authorize");
}
