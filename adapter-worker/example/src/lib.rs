//! An OAuth 2.1-protected MCP server on Cloudflare Workers: adapter-worker's
//! example, and the Worker the project's black-box suites run against.
//!
//! ```text
//! npx wrangler dev                                   # from adapter-worker/example
//! npx wrangler dev --var MCP_AUTO_APPROVE:demo       # headless clients (development only)
//! ```
//!
//! What is where:
//! * OAuth, all of it (metadata, registration, token, revocation, the bearer
//!   check on `/mcp`), is oauth-core, run by adapter-worker's
//!   [`OAuthWorker`](adapter_worker::OAuthWorker);
//! * `app` is this Worker's configuration and routes, `pages` the sign-in
//!   and consent page around the core's authorization helpers; the pages'
//!   HTML and the development accounts are the `demo-ui` crate's, shared
//!   with the axum example;
//! * `mcp` is the MCP endpoint with its tools, `todos` their data, `records`
//!   the typed access to KV both use;
//! * `dev` holds development-only test routes (storage conformance in
//!   workerd), compiled in with the `dev-routes` feature and answered only
//!   when `MCP_DEV_TEST_ROUTES=1`.
//!
//! The routes are those of the axum example (`adapter-axum`'s demo), so the
//! same HTTP scenarios and end-to-end tests run against both.
//!
//! On targets other than wasm32 only the runtime-independent parts (todos,
//! MCP messages) are compiled, for the host's unit tests.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]
// Most of this crate only runs inside the Worker; on the host its
// runtime-independent parts are compiled for their unit tests alone.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod mcp;
mod records;
mod todos;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(all(target_arch = "wasm32", feature = "dev-routes"))]
mod dev;
#[cfg(target_arch = "wasm32")]
mod pages;

#[cfg(test)]
mod wrangler_toml {
    /// The `compatibility_flags` of the shipped `wrangler.toml`: the one
    /// top-level, uncommented `compatibility_flags = [...]` line.
    fn flags(toml: &str) -> Vec<String> {
        let top_level = toml.lines().take_while(|l| !l.trim_start().starts_with('['));
        let lines: Vec<&str> = top_level.filter(|l| l.trim_start().starts_with("compatibility_flags")).collect();
        assert_eq!(lines.len(), 1, "exactly one top-level compatibility_flags line: {lines:?}");
        let value = lines[0].split_once('=').expect("key = value").1.trim();
        let inner = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).expect("a one-line array");
        inner.split(',').map(|f| f.trim().trim_matches('"').to_owned()).filter(|f| !f.is_empty()).collect()
    }

    /// Client ID metadata documents rely on the platform for what a Worker
    /// cannot check itself (addresses): the shipped configuration must send
    /// every global fetch out as a public request.
    #[test]
    fn ships_global_fetch_strictly_public() {
        let flags = flags(include_str!("../wrangler.toml"));
        assert!(flags.iter().any(|f| f == "global_fetch_strictly_public"), "{flags:?}");
        assert!(!flags.iter().any(|f| f == "global_fetch_private_origin"), "{flags:?}");
    }

    #[test]
    fn the_reader_sees_only_real_settings() {
        assert_eq!(flags("a = 1\ncompatibility_flags = [\"x\", \"y\"]\n[vars]\n"), ["x", "y"]);
        assert!(std::panic::catch_unwind(|| flags("# compatibility_flags = [\"x\"]\n")).is_err());
        assert!(std::panic::catch_unwind(|| flags("[vars]\ncompatibility_flags = [\"x\"]\n")).is_err());
    }
}
