//! RFC 8414 authorization-server metadata and RFC 9728 protected-resource
//! metadata. Both are pure functions of the configuration.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::config::{Config, ProtectedResource};
use crate::http_util;
use crate::provider::resource_path_suffix;
use crate::scope::OFFLINE_ACCESS;

/// The grant type URI of RFC 8693.
pub(crate) const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The RFC 8414 document.
pub(crate) fn authorization_server_document(cfg: &Config) -> Value {
    let mut grant_types = vec!["authorization_code"];
    if cfg.refresh_token_ttl.is_some() {
        grant_types.push("refresh_token");
    }
    if cfg.token_exchange {
        grant_types.push(TOKEN_EXCHANGE_GRANT);
    }
    let auth_methods = ["client_secret_basic", "client_secret_post", "none"];
    // private_key_jwt is offered only to clients with a metadata document
    // that publishes keys, at both endpoints that authenticate clients.
    let mut client_auth_methods = auth_methods.to_vec();
    if cfg.cimd.is_some() {
        client_auth_methods.push(crate::client::METHOD_PRIVATE_KEY_JWT);
    }
    let mut doc = json!({
        "issuer": cfg.issuer,
        "authorization_endpoint": cfg.authorization_endpoint,
        "token_endpoint": cfg.token_endpoint,
        "revocation_endpoint": cfg.revocation_endpoint,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types,
        "token_endpoint_auth_methods_supported": client_auth_methods,
        "revocation_endpoint_auth_methods_supported": client_auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "protected_resources": cfg.resources.iter().map(|r| r.resource.as_str()).collect::<Vec<_>>(),
    });
    if let Some(obj) = doc.as_object_mut() {
        if let Some(reg) = &cfg.registration_endpoint {
            obj.insert("registration_endpoint".into(), json!(reg));
        }
        if !cfg.scopes_supported.is_empty() {
            obj.insert("scopes_supported".into(), json!(cfg.scopes_supported));
        }
        if cfg.cimd.is_some() {
            obj.insert("client_id_metadata_document_supported".into(), json!(true));
            obj.insert("token_endpoint_auth_signing_alg_values_supported".into(), json!(crate::jose::ALGORITHMS));
        }
    }
    doc
}

/// Serve the RFC 8414 document.
pub(crate) fn authorization_server(cfg: &Config, method: &Method) -> Response<Bytes> {
    serve(method, &authorization_server_document(cfg))
}

/// The RFC 9728 document for one resource. `offline_access` is never listed:
/// it is not a permission on the resource (MCP SEP-2207).
pub(crate) fn protected_resource_document(cfg: &Config, r: &ProtectedResource) -> Value {
    let servers: Vec<&str> = if r.authorization_servers.is_empty() {
        vec![cfg.issuer.as_str()]
    } else {
        r.authorization_servers.iter().map(String::as_str).collect()
    };
    let scopes: Vec<&str> = r.scopes_supported.iter().map(String::as_str).filter(|s| *s != OFFLINE_ACCESS).collect();
    let mut doc = json!({
        "resource": r.resource.as_str(),
        "authorization_servers": servers,
        "bearer_methods_supported": ["header"],
    });
    if let Some(obj) = doc.as_object_mut() {
        if !scopes.is_empty() {
            obj.insert("scopes_supported".into(), json!(scopes));
        }
        if let Some(name) = &r.resource_name {
            obj.insert("resource_name".into(), json!(name));
        }
        if let Some(d) = &r.resource_documentation {
            obj.insert("resource_documentation".into(), json!(d));
        }
    }
    doc
}

/// Serve the RFC 9728 document of the resource at `index`.
pub(crate) fn protected_resource(cfg: &Config, index: usize, method: &Method) -> Response<Bytes> {
    match cfg.resources.get(index) {
        Some(r) => serve(method, &protected_resource_document(cfg, r)),
        None => http_util::not_found(),
    }
}

/// Where the RFC 9728 document of `r` is served (path-suffixed form).
pub(crate) fn resource_metadata_url(r: &ProtectedResource) -> String {
    format!(
        "{}/.well-known/oauth-protected-resource{}",
        r.resource.origin().ascii_serialization(),
        resource_path_suffix(r)
    )
}

fn serve(method: &Method, doc: &Value) -> Response<Bytes> {
    if method != Method::GET && method != Method::HEAD {
        return http_util::method_not_allowed("GET, HEAD, OPTIONS");
    }
    let mut resp = http_util::json(StatusCode::OK, doc, true);
    if method == Method::HEAD {
        *resp.body_mut() = Bytes::new();
    }
    resp
}
