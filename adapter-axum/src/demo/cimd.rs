//! Client ID metadata documents in the demo: the policy from the
//! environment, and the development-only loosening of the fetcher that lets
//! a local test serve documents (see `docs/cimd.md`).
//!
//! Production settings (`MCP_CIMD`, `MCP_CIMD_ALLOW_HOSTS`,
//! `MCP_CIMD_DENY_HOSTS`, `MCP_CIMD_FETCH_TIMEOUT_MS`) only choose the
//! policy; the fetcher stays `SafeFetcher::new()`: system resolver, web PKI
//! roots, every special-use address refused.
//!
//! The `MCP_DEV_CIMD_*` settings loosen the fetcher for tests and are
//! refused unless `MCP_DEV_CIMD_INSECURE=1` is set as well:
//!
//! | variable | effect |
//! |---|---|
//! | `MCP_DEV_CIMD_EXTRA_CA` | a PEM file of CA certificates trusted besides the web PKI |
//! | `MCP_DEV_CIMD_LOOPBACK_HOSTS` | host names (comma-separated) allowed to resolve to `127/8` or `::1` |
//! | `MCP_DEV_CIMD_RESOLVE` | `name=addr[|addr…]`, comma-separated: these names resolve to these addresses instead of asking DNS (the address checks still run on them) |

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use oauth_core::CimdPolicy;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;

use super::DemoError;
use crate::fetch::{Resolve, ResolveFuture, SafeFetcher, SystemResolver};

/// The switch that lets the `MCP_DEV_CIMD_*` settings take effect.
pub const DEV_FLAG: &str = "MCP_DEV_CIMD_INSECURE";

/// DEVELOPMENT ONLY: how the demo's document fetcher is loosened so tests
/// can serve client ID metadata documents from a local HTTPS server. Every
/// field defaults to off; [`DemoConfig::from_vars`](super::DemoConfig::from_vars)
/// fills it only when [`DEV_FLAG`] is `1`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevCimdFetch {
    /// CA certificates (DER) trusted besides the web PKI roots.
    pub extra_roots: Vec<Vec<u8>>,
    /// Host names that may resolve to loopback (see
    /// [`SafeFetcherBuilder::insecure_allow_loopback_host`](crate::SafeFetcherBuilder::insecure_allow_loopback_host)).
    pub loopback_hosts: Vec<String>,
    /// Names answered with these addresses instead of DNS, as a hostile
    /// resolver could answer: the fetcher's address checks still apply.
    pub resolve: Vec<(String, Vec<IpAddr>)>,
}

impl DevCimdFetch {
    /// Whether anything is loosened.
    pub fn is_empty(&self) -> bool {
        self.extra_roots.is_empty() && self.loopback_hosts.is_empty() && self.resolve.is_empty()
    }

    /// The fetcher: production settings with these loosenings.
    pub fn fetcher(&self) -> Result<SafeFetcher, DemoError> {
        let mut builder = SafeFetcher::builder();
        if !self.resolve.is_empty() {
            builder = builder.resolver(OverrideResolver(self.resolve.iter().cloned().collect()));
        }
        for der in &self.extra_roots {
            builder = builder.add_root_certificate(der.clone());
        }
        for host in &self.loopback_hosts {
            builder = builder.insecure_allow_loopback_host(host.clone());
        }
        builder.build().map_err(|e| DemoError::new(format!("{DEV_FLAG}: cannot build the fetcher: {e}")))
    }

    /// What an operator must be told at start-up.
    pub(crate) fn warnings(&self) -> Vec<String> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut lines = vec![format!("WARNING: {DEV_FLAG}=1: the client metadata fetcher is loosened for tests.")];
        if !self.extra_roots.is_empty() {
            lines
                .push(format!("It trusts {} extra CA certificate(s) (MCP_DEV_CIMD_EXTRA_CA).", self.extra_roots.len()));
        }
        if !self.loopback_hosts.is_empty() {
            lines.push(format!("These names may reach loopback: {}.", self.loopback_hosts.join(", ")));
        }
        for (name, addresses) in &self.resolve {
            let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            lines.push(format!("{name} resolves to {} (not DNS).", addresses.join(" ")));
        }
        lines.push("Never set these outside a test.".to_owned());
        lines
    }
}

/// Chosen names to chosen addresses; every other name through the system
/// resolver.
struct OverrideResolver(HashMap<String, Vec<IpAddr>>);

impl Resolve for OverrideResolver {
    fn resolve<'a>(&'a self, host: &'a str) -> ResolveFuture<'a> {
        match self.0.get(&host.to_ascii_lowercase()) {
            Some(addresses) => {
                let answer: io::Result<Vec<IpAddr>> = Ok(addresses.clone());
                Box::pin(async move { answer })
            }
            None => SystemResolver.resolve(host),
        }
    }
}

impl fmt::Debug for OverrideResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OverrideResolver").field(&self.0).finish()
    }
}

/// The CIMD settings read from the environment: the policy (`None`: off)
/// and the development loosening (`None`: none).
pub(crate) fn from_vars(
    var: &impl Fn(&str) -> Option<String>,
) -> Result<(Option<CimdPolicy>, Option<DevCimdFetch>), DemoError> {
    let invalid = |name: &str, e: String| DemoError::new(format!("{name}: {e}"));
    let on = match var("MCP_CIMD") {
        None => false,
        Some(v) => parse_switch(&v).map_err(|e| invalid("MCP_CIMD", e))?,
    };
    let policy_vars = ["MCP_CIMD_ALLOW_HOSTS", "MCP_CIMD_DENY_HOSTS", "MCP_CIMD_FETCH_TIMEOUT_MS"];
    let dev_vars = ["MCP_DEV_CIMD_EXTRA_CA", "MCP_DEV_CIMD_LOOPBACK_HOSTS", "MCP_DEV_CIMD_RESOLVE"];
    let dev_flag = match var(DEV_FLAG) {
        None => false,
        Some(v) => parse_switch(&v).map_err(|e| invalid(DEV_FLAG, e))?,
    };
    if !on {
        if let Some(name) = policy_vars.iter().chain(&dev_vars).find(|n| var(n).is_some()) {
            return Err(DemoError::new(format!("{name} is set but MCP_CIMD is not 1: set MCP_CIMD=1 or unset it")));
        }
        return Ok((None, None));
    }

    let mut policy = CimdPolicy::default();
    if let Some(v) = var("MCP_CIMD_ALLOW_HOSTS") {
        policy = policy.allow_hosts(list(&v));
    }
    if let Some(v) = var("MCP_CIMD_DENY_HOSTS") {
        policy = policy.deny_hosts(list(&v));
    }
    if let Some(v) = var("MCP_CIMD_FETCH_TIMEOUT_MS") {
        let ms: u64 = v
            .trim()
            .parse()
            .map_err(|_| invalid("MCP_CIMD_FETCH_TIMEOUT_MS", format!("not a number of milliseconds: {v:?}")))?;
        policy = policy.fetch_timeout(Duration::from_millis(ms));
    }

    let set: Vec<&str> = dev_vars.iter().copied().filter(|n| var(n).is_some()).collect();
    if set.is_empty() {
        return Ok((Some(policy), None));
    }
    if !dev_flag {
        return Err(DemoError::new(format!(
            "{} loosen the document fetcher for tests and are refused unless {DEV_FLAG}=1 is set too \
             (never in a deployment)",
            set.join(", ")
        )));
    }
    let mut dev = DevCimdFetch::default();
    if let Some(path) = var("MCP_DEV_CIMD_EXTRA_CA") {
        let path = path.trim();
        let pem = std::fs::read(path).map_err(|e| invalid("MCP_DEV_CIMD_EXTRA_CA", format!("{path}: {e}")))?;
        dev.extra_roots = CertificateDer::pem_slice_iter(&pem)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("MCP_DEV_CIMD_EXTRA_CA", format!("{path}: {e}")))?;
        if dev.extra_roots.is_empty() {
            return Err(invalid("MCP_DEV_CIMD_EXTRA_CA", format!("{path}: no certificate in the file")));
        }
    }
    if let Some(v) = var("MCP_DEV_CIMD_LOOPBACK_HOSTS") {
        dev.loopback_hosts = list(&v).into_iter().map(|h| h.to_ascii_lowercase()).collect();
    }
    if let Some(v) = var("MCP_DEV_CIMD_RESOLVE") {
        dev.resolve = parse_resolve(&v).map_err(|e| invalid("MCP_DEV_CIMD_RESOLVE", e))?;
    }
    Ok((Some(policy), Some(dev)))
}

fn parse_switch(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" => Ok(true),
        "0" | "false" | "off" => Ok(false),
        _ => Err(format!("expected 1 or 0, got {v:?}")),
    }
}

fn list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// `name=addr|addr,name=addr`.
fn parse_resolve(v: &str) -> Result<Vec<(String, Vec<IpAddr>)>, String> {
    list(v)
        .into_iter()
        .map(|entry| {
            let (name, addresses) =
                entry.split_once('=').ok_or_else(|| format!("expected name=address[|address...], got {entry:?}"))?;
            let addresses = addresses
                .split('|')
                .map(|a| a.trim().parse::<IpAddr>().map_err(|_| format!("not an IP address: {a:?} (in {entry:?})")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((name.trim().to_ascii_lowercase(), addresses))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<(Option<CimdPolicy>, Option<DevCimdFetch>), DemoError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        from_vars(&|name: &str| vars.get(name).cloned())
    }

    #[test]
    fn off_by_default_and_knobs_need_the_switch() {
        assert_eq!(read(&[]).unwrap(), (None, None));
        assert_eq!(read(&[("MCP_CIMD", "0")]).unwrap(), (None, None));
        assert!(read(&[("MCP_CIMD_DENY_HOSTS", "evil.example")]).is_err());
        assert!(read(&[("MCP_DEV_CIMD_LOOPBACK_HOSTS", "client.test"), (DEV_FLAG, "1")]).is_err());
        assert!(read(&[("MCP_CIMD", "yes please")]).is_err());
    }

    #[test]
    fn the_policy() {
        let (policy, dev) = read(&[
            ("MCP_CIMD", "1"),
            ("MCP_CIMD_ALLOW_HOSTS", "*.trusted.example, app.example"),
            ("MCP_CIMD_DENY_HOSTS", "evil.example"),
            ("MCP_CIMD_FETCH_TIMEOUT_MS", "1500"),
        ])
        .unwrap();
        let policy = policy.unwrap();
        assert_eq!(policy.allow_hosts, ["*.trusted.example", "app.example"]);
        assert_eq!(policy.deny_hosts, ["evil.example"]);
        assert_eq!(policy.fetch_timeout, Duration::from_millis(1500));
        assert_eq!(dev, None, "nothing loosened");
        assert!(read(&[("MCP_CIMD", "1"), ("MCP_CIMD_FETCH_TIMEOUT_MS", "soon")]).is_err());
    }

    #[test]
    fn development_knobs_are_refused_without_the_flag() {
        for (name, value) in [
            ("MCP_DEV_CIMD_LOOPBACK_HOSTS", "client.test"),
            ("MCP_DEV_CIMD_RESOLVE", "client.test=127.0.0.1"),
            ("MCP_DEV_CIMD_EXTRA_CA", "/nonexistent.pem"),
        ] {
            let error = read(&[("MCP_CIMD", "1"), (name, value)]).unwrap_err().to_string();
            assert!(error.contains(DEV_FLAG), "{error}");
            let error = read(&[("MCP_CIMD", "1"), (name, value), (DEV_FLAG, "0")]).unwrap_err().to_string();
            assert!(error.contains(DEV_FLAG), "{error}");
        }
    }

    #[test]
    fn development_knobs_with_the_flag() {
        let (_, dev) = read(&[
            ("MCP_CIMD", "1"),
            (DEV_FLAG, "1"),
            ("MCP_DEV_CIMD_LOOPBACK_HOSTS", "Client.Test"),
            ("MCP_DEV_CIMD_RESOLVE", "client.test=127.0.0.1, mixed.test=8.8.8.8|10.0.0.1,v6.test=::ffff:127.0.0.1"),
        ])
        .unwrap();
        let dev = dev.unwrap();
        assert_eq!(dev.loopback_hosts, ["client.test"]);
        assert_eq!(dev.resolve.len(), 3);
        assert_eq!(dev.resolve[1].1, ["8.8.8.8".parse::<IpAddr>().unwrap(), "10.0.0.1".parse().unwrap()]);
        assert!(dev.fetcher().is_ok());
        assert!(!dev.warnings().is_empty());
        assert!(read(&[("MCP_CIMD", "1"), (DEV_FLAG, "1"), ("MCP_DEV_CIMD_RESOLVE", "x.test=nowhere")]).is_err());
        assert!(read(&[("MCP_CIMD", "1"), (DEV_FLAG, "1"), ("MCP_DEV_CIMD_EXTRA_CA", "/nonexistent.pem")]).is_err());
    }
}
